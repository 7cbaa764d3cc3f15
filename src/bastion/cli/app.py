"""The ``bastion`` command: one Typer app, a module per command group.

Commands only translate: they parse, ask the services that :mod:`bastion.build` wires, and
render with Rich. Untrusted text (halt reasons, approval reasons, check details) is printed
through :func:`bastion.cli.terminal.safe`.

Every command pays for the imports of all of them, because Typer needs each signature to build
the app; ``bastion kill`` is what a person types when something is wrong, so it must not wait
for the console's server, the SDKs or Alembic. The command modules therefore import at the top
only Typer, Rich, :mod:`bastion.cli.context` and the ground floor (settings, clock, events), and
import the rest (``bastion.build``, ``bastion.runner``, ``bastion.api``, the simulators,
uvicorn, the store) inside the function that uses it, marked ``# lazy: see cli/app.py``.
``tests/unit/cli/test_cli_imports.py`` checks which modules ``kill``, ``resume`` and ``status``
import.
"""

from __future__ import annotations

import sys
import traceback

import typer

from bastion.cli.approvals import approvals_app
from bastion.cli.budget import budget_app
from bastion.cli.exchange import exchange_app
from bastion.cli.flatten import flatten
from bastion.cli.halt import kill, resume
from bastion.cli.health import health
from bastion.cli.llm import llm_app
from bastion.cli.operator import operator_app
from bastion.cli.replay import replay
from bastion.cli.run import run
from bastion.cli.settings import show_config
from bastion.cli.slo import slo
from bastion.cli.smoke import smoke
from bastion.cli.status import status
from bastion.cli.why import why
from bastion.sensitive import mask_url

__all__ = ["app", "main"]

app = typer.Typer(
    help="Bastion: run LLM trading agents inside a guarded loop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help shows a flag as a flag (`--dry-run / --no-dry-run`, `--json`); the rich
    # panels of this Typer release print every flag with a `<bool>` value to type.
    rich_markup_mode=None,
)
app.command()(run)
app.command()(status)
app.command()(kill)
app.command()(resume)
app.command()(flatten)
app.command()(health)
app.command()(smoke)
app.command()(replay)
app.command()(slo)
app.command()(why)
app.command("config")(show_config)
app.add_typer(budget_app, name="budget")
app.add_typer(approvals_app, name="approvals")
app.add_typer(exchange_app, name="exchange")
app.add_typer(llm_app, name="llm")
app.add_typer(operator_app, name="operator")


def main() -> None:
    """Console-script entry point.

    Our errors end as a one-line message (:func:`bastion.cli.context.exit_on_error`); anything
    else is a bug whose traceback is printed, but redacted first: its messages may quote a URL
    or an answer carrying a secret.
    """
    try:
        app()
    except Exception:
        sys.stderr.write(_redacted(traceback.format_exc()))
        raise SystemExit(1) from None


def _redacted(text: str) -> str:
    """``text`` with URL secrets masked and, when the settings load, every secret they hold."""
    try:
        from bastion.config import load_settings  # noqa: PLC0415  lazy: only on a crash
        from bastion.trace.redact import Redactor  # noqa: PLC0415

        return Redactor(load_settings().secret_values()).redact_text(text)
    except Exception:  # the settings are what failed: URL shapes are what is left to go on
        return mask_url(text)
