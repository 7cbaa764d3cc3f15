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

import typer

from bastion.cli.approvals import approvals_app
from bastion.cli.budget import budget_app
from bastion.cli.exchange import exchange_app
from bastion.cli.halt import kill, resume
from bastion.cli.health import health
from bastion.cli.llm import llm_app
from bastion.cli.replay import replay
from bastion.cli.run import run
from bastion.cli.settings import show_config
from bastion.cli.smoke import smoke
from bastion.cli.status import status

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
app.command()(health)
app.command()(smoke)
app.command()(replay)
app.command("config")(show_config)
app.add_typer(budget_app, name="budget")
app.add_typer(approvals_app, name="approvals")
app.add_typer(exchange_app, name="exchange")
app.add_typer(llm_app, name="llm")


def main() -> None:
    """Console-script entry point."""
    app()
