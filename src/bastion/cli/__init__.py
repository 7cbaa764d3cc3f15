"""The ``bastion`` command line; :mod:`bastion.cli.app` assembles it, a module per group."""

from bastion.cli.app import app, main
from bastion.cli.context import parse_duration

__all__ = ["app", "main", "parse_duration"]
