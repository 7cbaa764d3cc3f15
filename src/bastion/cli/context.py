"""What every command shares: the two consoles, settings, and errors turned into exit codes.

Exit codes: 0 success, 1 a runtime failure (exchange unreachable, run failed), 2 bad
configuration or usage, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console

from bastion.cli.terminal import safe
from bastion.config import Settings, load_settings
from bastion.errors import BastionError, ConfigError

if TYPE_CHECKING:
    from bastion.store import Store

__all__ = [
    "ConfigOption",
    "JsonOption",
    "err",
    "exit_on_error",
    "live_console",
    "load",
    "never_halted",
    "out",
    "parse_duration",
    "print_json",
    "run_async",
    "try_store",
]

out = Console(soft_wrap=True)  # URLs and paths must stay copy-pasteable
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="A bastion.toml to read (default ./bastion.toml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``90``, ``60s``, ``5m``, ``1.5h`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 60s, 5m or 1h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def load(config: Path | None, **overrides: Any) -> Settings:
    """The settings, or exit 2 with the field and the fix."""
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        err.print(f"[bold red]{safe(str(exc))}[/]", soft_wrap=True, markup=True, highlight=False)
        raise typer.Exit(2) from None


@contextlib.contextmanager
def exit_on_error() -> Iterator[None]:
    """Our errors become a one-line message and an exit code, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        _fail(str(exc), 2)
    except BastionError as exc:
        _fail(str(exc), 1)
    except Exception as exc:
        if not _is_store_error(exc):
            raise
        _fail(
            f"store: {type(exc).__name__} ({str(exc).splitlines()[0][:200]}). Fix: check that "
            "the database at BASTION_STORE_URL is up and not locked, then retry.",
            1,
        )


def _is_store_error(exc: Exception) -> bool:
    """A SQLAlchemy error, without importing SQLAlchemy: only code that imported it raises one."""
    module = sys.modules.get("sqlalchemy.exc")
    return module is not None and isinstance(exc, module.SQLAlchemyError)


def _fail(message: str, code: int) -> None:
    err.print(safe(message), style="bold red", highlight=False)  # may quote a remote error
    raise typer.Exit(code) from None


def never_halted(*, reduce_only: bool = False) -> None:
    """The halt check of a command's exchange client, which sends no order (kill cancels,
    health observes): nothing it sends can be halted."""


def run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine with our errors turned into exit codes."""
    with exit_on_error():
        return asyncio.run(factory())


def try_store(settings: Settings) -> Store | None:
    """The store, or None with a warning: status, kill and resume must work without it."""
    from bastion.store import Store  # noqa: PLC0415  lazy: see cli/app.py

    try:
        return Store.open(settings.resolved_store_url)
    except BastionError as exc:
        err.print("Store unavailable: ", style="yellow", end="", highlight=False)
        err.print(safe(str(exc)), highlight=False)
        return None


@dataclass(frozen=True, slots=True)
class LiveConsole:
    """Where the run holding a data directory serves its console, and the token it takes."""

    host: str
    port: int
    token: str


def live_console(settings: Settings) -> LiveConsole | None:
    """The console of the run holding ``settings.data_dir``, or None when no run holds it, it
    serves no console, or no token is known (neither configured nor the run's generated
    ``console_token`` file)."""
    from bastion.runtime.lock import is_held, read_holder  # noqa: PLC0415  kill's fast path

    holder = read_holder(settings.data_dir)
    if holder is None or holder.console_port is None or not is_held(settings.data_dir):
        return None
    token_file = settings.data_dir / "console_token"
    token = (
        settings.console_token.get_secret_value()
        if settings.console_token
        else (token_file.read_text().strip() if token_file.exists() else "")
    )
    if not token:
        return None
    return LiveConsole(holder.console_host or settings.console_host, holder.console_port, token)


def print_json(data: Any) -> None:
    """Indented JSON on stdout, for scripts."""
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
