"""``bastion llm fake-server``: a fake OpenAI-compatible LLM for tests and demos."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from pydantic import ValidationError

from bastion.cli.context import err, out
from bastion.errors import ConfigError

__all__ = ["llm_app"]

llm_app = typer.Typer(help="Language-model tools.", no_args_is_help=True)


@llm_app.command("fake-server")
def llm_fake_server(  # noqa: PLR0917  typer maps each option to a parameter
    port: Annotated[int, typer.Option("--port", help="Port on loopback.")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    reply: Annotated[
        list[str] | None,
        typer.Option("--reply", help="A scripted reply, used in order (repeat the option)."),
    ] = None,
    default_reply: Annotated[
        str, typer.Option("--default-reply", help="The reply once the script is used up.")
    ] = "OK",
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help='A fault as JSON, e.g. \'{"kind": "status", "status": 429, "retry_after": 3}\' '
            "(kinds: status, delay, hang, malformed, truncated, drop).",
        ),
    ] = None,
    latency: Annotated[
        float, typer.Option("--latency", min=0, help="Seconds added to every answer.")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of probabilistic faults.")] = 0,
) -> None:
    """Serve a fake OpenAI-compatible LLM (chat completions at /v1) for tests and demos."""
    from bastion.simulators.llm import LLMFault  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.simulators.llm import serve as serve_fake_llm  # noqa: PLC0415  lazy: see cli/app.py

    try:
        faults = [LLMFault.model_validate(orjson.loads(text)) for text in fault or ()]
    except orjson.JSONDecodeError as exc:
        err.print(f"--fault is not JSON ({exc}). Fix: quote one JSON object.", style="bold red")
        raise typer.Exit(2) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'fault'}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"--fault: {problems}", style="bold red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    out.print(
        f"Fake LLM on http://{host}:{port}/v1 (BASTION_LLM_BASE_URL) — faults and script at "
        f"/_fake — Ctrl-C to stop."
    )
    try:
        serve_fake_llm(
            host,
            port,
            log_level="warning",
            replies=list(reply or ()),
            default_reply=default_reply,
            faults=faults,
            latency_seconds=latency,
            seed=seed,
        )
    except ConfigError as exc:
        err.print(str(exc), style="bold red", markup=False, highlight=False)
        raise typer.Exit(2) from None
