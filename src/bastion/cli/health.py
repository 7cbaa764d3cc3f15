"""``bastion health``: every health check once, as a table or the API's JSON.

Exit codes (for cron and CI): 0 OK, 1 WARN, 2 FAIL (a configuration error is also 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bastion.cli.context import (
    ConfigOption,
    exit_on_error,
    load,
    never_halted,
    out,
    print_json,
    run_async,
)
from bastion.cli.terminal import safe
from bastion.clock import WallClock
from bastion.config import Settings, ensure_data_dir
from bastion.telemetry.logs import configure_logging

if TYPE_CHECKING:
    from bastion.guard.health import HealthReport

__all__ = ["health"]


def health(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON shape.")] = False,
) -> None:
    """Run every health check once and print them.

    Exit codes (for cron and CI): 0 OK, 1 WARN, 2 FAIL (a configuration error is also 2).
    """
    from bastion.build import build_halt  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.guard.limits import HaltReason  # noqa: PLC0415  lazy: see cli/app.py

    settings = load(config)
    configure_logging("ERROR", settings.secret_values(), fmt=settings.log_format)
    with exit_on_error():
        ensure_data_dir(settings)
    report = run_async(lambda: _check(settings))
    state = build_halt(settings, WallClock()).state()
    paused = state is not None and state.reason == HaltReason.HEALTH_FAIL
    if as_json:
        print_json({**report.to_dict(), "agent_paused_due_to_health": paused})
    else:
        _render(report, paused)
    raise typer.Exit(report.overall_status.rank)


async def _check(settings: Settings) -> HealthReport:
    from bastion.build import (  # noqa: PLC0415  lazy: see cli/app.py
        build_exchange,
        build_health_checker,
        build_observer,
        build_resilience,
    )
    from bastion.store import Store  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.telemetry.metrics import Metrics  # noqa: PLC0415  lazy: see cli/app.py

    clock = WallClock()
    metrics = Metrics()
    # Calls give up (classified) inside the check timeout, so details say why, not just "slow".
    deadline = settings.health_check_timeout_seconds * 0.8
    resilience = build_resilience(settings, clock, metrics, deadline=deadline)
    store = Store.open(settings.resolved_store_url)
    exchange = build_exchange(settings, clock, metrics, never_halted, resilience=resilience)
    observer = build_observer(settings, exchange, clock)  # no agent: held instruments only
    checker = build_health_checker(
        settings, clock=clock, exchange=exchange, store=store, observe=observer.observe
    )
    try:
        return await checker.run_and_cache_healthcheck()
    finally:
        await exchange.close()
        store.close()


def _render(report: HealthReport, paused: bool) -> None:
    colour = {"OK": "green", "WARN": "yellow", "FAIL": "red"}
    table = Table(title=f"System Health — {report.run_at:%Y-%m-%d %H:%M:%S} UTC")
    for column in ("check", "status", "detail", "ms"):
        table.add_column(column)
    for check in report.checks:
        status = check.status.value
        table.add_row(
            check.name,
            f"[{colour[status]}]{status}[/]",
            safe(check.detail),
            f"{check.latency_ms:.0f}",
        )
    out.print(table)
    overall = report.overall_status.value
    out.print(f"[bold {colour[overall]}]{overall}[/]: {safe(report.summary)}", highlight=False)
    if paused:
        out.print("Agent status: PAUSED by health guard (auto_kill_on_health_fail)")
