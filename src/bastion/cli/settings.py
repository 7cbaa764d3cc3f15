"""``bastion config``: the effective settings (secrets masked) or their reference table."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from bastion.cli.context import ConfigOption, load, out
from bastion.cli.terminal import safe
from bastion.config import ENV_PREFIX, markdown_table

__all__ = ["show_config"]


def show_config(
    config: ConfigOption = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the documentation table instead.")
    ] = False,
) -> None:
    """Print the effective settings (secrets masked) or, with --markdown, their reference."""
    if markdown:
        sys.stdout.write(markdown_table() + "\n")
        return
    settings = load(config)
    table = Table(title=f"Effective settings (config hash {settings.config_hash()})")
    table.add_column("setting")
    table.add_column("value")
    for name, value in settings.public_dict().items():
        table.add_row(f"{ENV_PREFIX}{name.upper()}", safe(str(value)))
    out.print(table)
