"""``bastion smoke``: a bounded check of the configured exchange and agent; never sends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bastion.cli.context import (
    ConfigOption,
    JsonOption,
    load,
    out,
    parse_duration,
    print_json,
    run_async,
)
from bastion.cli.terminal import safe
from bastion.config import Settings
from bastion.telemetry.logs import configure_logging

if TYPE_CHECKING:
    from bastion.ops.smoke import SmokeReport
    from bastion.runner import Runner

__all__ = ["smoke"]


def smoke(
    config: ConfigOption = None,
    for_: Annotated[str, typer.Option("--for", help="Time box, e.g. 30s.")] = "30s",
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="End the dry run after N steps.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A bounded check of the configured exchange and agent; never sends an order.

    Exit codes: 0 PASS, 1 FAIL, 2 bad configuration, 3 SKIPPED (exchange offline: unreachable,
    forbidden, rate-limited or failing), 4 WARN (reachable, but some dry-run steps failed).
    """
    from bastion.ops.smoke import run_smoke  # noqa: PLC0415  lazy: see cli/app.py

    seconds = parse_duration(for_)
    settings = load(config)
    configure_logging("WARNING", settings.secret_values(), fmt=settings.log_format)
    report = run_async(
        lambda: run_smoke(settings, _dry_runner, duration_seconds=seconds, max_steps=steps)
    )
    if as_json:
        print_json(report.to_dict())
    else:
        _render(report, seconds)
    raise typer.Exit(report.exit_code)


def _dry_runner(settings: Settings) -> Runner:
    """A dry run beside any live run: no console, no run lock (it never sends an order)."""
    from bastion.runner import Runner  # noqa: PLC0415  lazy: see cli/app.py

    return Runner(settings, console=False, exclusive=False)


def _render(report: SmokeReport, seconds: float) -> None:
    out.print(
        f"Smoke against {safe(report.exchange)} ({seconds:g} s time box; no order is sent)",
        highlight=False,
    )
    for check in report.checks:
        mark = "[green]ok[/]  " if check.ok else "[red]fail[/]"
        out.print(f"  {mark} {safe(check.name)}: {safe(check.detail)}", highlight=False)
    if report.offline_reason:
        out.print(f"[yellow]OFFLINE mode[/]: {safe(report.offline_reason)}", highlight=False)
    colour = {"PASS": "green", "WARN": "yellow", "SKIPPED": "yellow", "FAIL": "red"}
    outcome = report.outcome.value
    out.print(
        f"[bold {colour[outcome]}]{outcome}[/] in {report.elapsed_s:.1f} s "
        f"(exit {report.exit_code})"
    )
