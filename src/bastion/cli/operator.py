"""``bastion operator``: the operator agent alone, and how well its actions have worked.

``bastion operator serve`` runs the operator without a trading run: a console-like app on
loopback (by default ``console_host``/``console_port``, where ``deploy/alertmanager`` delivers)
with the alert intake, the operator routes, the approvals a person decides its actions with,
status and ``/metrics``. Its halt and flatten actions raise this data directory's flag, which a
``bastion run`` on the same directory follows; its healthcheck runs every check as ``bastion
health`` does. ``bastion run`` serves the same routes itself (``operator_enabled``).

``bastion operator actions`` prints, per alert type and action, how many actions ran and how
validation judged them (effective: the alert resolved and health read OK within
``operator_validation_minutes``). Alert names are untrusted text, printed through ``safe()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bastion.cli.context import ConfigOption, JsonOption, exit_on_error, load, out, print_json
from bastion.cli.terminal import safe
from bastion.clock import WallClock
from bastion.config import Settings, ensure_data_dir

if TYPE_CHECKING:
    from bastion.guard.health import HealthReport
    from bastion.ops.operator.effectiveness import Effectiveness

__all__ = ["operator_app"]

operator_app = typer.Typer(
    help="The operator agent: Alertmanager's alerts analysed, safe actions proposed.",
    no_args_is_help=True,
)


@operator_app.command("actions")
def actions(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """How well each action worked, per alert type (effective, ineffective, pending)."""
    from bastion.ops.operator.effectiveness import tally  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.store import Store  # noqa: PLC0415  lazy: see cli/app.py

    settings = load(config)
    with exit_on_error():
        ensure_data_dir(settings)
        with Store.open(settings.resolved_store_url) as store:
            rows = tally(store.alerts.executed())
    if as_json:
        print_json([row.to_dict() for row in rows])
        return
    if not rows:
        out.print("No operator action has run yet.")
        return
    out.print(_table(rows))


def _table(rows: list[Effectiveness]) -> Table:
    table = Table(title="Operator actions by alert type")
    for column in ("alert", "action", "ran", "failed", "effective", "ineffective", "pending"):
        table.add_column(column, justify="left" if column in ("alert", "action") else "right")
    table.add_column("rate", justify="right")
    for row in rows:
        rate = "—" if row.rate is None else f"{row.rate:.0%}"
        table.add_row(
            safe(row.alertname),
            safe(row.action),
            str(row.executed),
            str(row.failed),
            f"[green]{row.effective}[/]",
            f"[red]{row.ineffective}[/]" if row.ineffective else "0",
            str(row.pending + row.undecided),
            rate,
        )
    return table


@operator_app.command("serve")
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Interface to bind (default console_host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to bind (default console_port; 0: any).")
    ] = None,
) -> None:
    """Run the operator agent alone: the alert intake, the operator and approvals routes."""
    settings = load(config)
    with exit_on_error():
        ensure_data_dir(settings)
        asyncio.run(_serve(settings, host or settings.console_host, port))


async def _serve(settings: Settings, host: str, port: int | None) -> None:
    # lazy: see cli/app.py
    from bastion.api.app import create_app  # noqa: PLC0415
    from bastion.api.server import ConsoleServer  # noqa: PLC0415
    from bastion.api.token import ensure_console_token  # noqa: PLC0415
    from bastion.build import (  # noqa: PLC0415
        build_approvals,
        build_budget,
        build_halt,
        build_journal,
        build_llm_routes,
        build_operator,
        build_redactor,
        build_resilience,
        build_status_service,
    )
    from bastion.store import Store  # noqa: PLC0415
    from bastion.telemetry.metrics import Metrics  # noqa: PLC0415

    clock = WallClock()
    metrics = Metrics()
    store = Store.open(settings.resolved_store_url)
    journal = build_journal(settings, clock, store=store)
    halt = build_halt(settings, clock, store=store, journal=journal, metrics=metrics)
    approvals = build_approvals(settings, store, clock, agent="operator")
    resilience = build_resilience(settings, clock, metrics, journal)
    routes = build_llm_routes(settings)
    operator = build_operator(
        settings,
        store=store,
        clock=clock,
        halt=halt,
        approvals=approvals,
        resilience=resilience,
        budget=build_budget(settings, store, clock, "operator", metrics=metrics),
        healthcheck=lambda: _healthcheck(settings, store),
        llm_routes=routes,
        metrics=metrics,
        journal=journal,
    )
    status = build_status_service(settings, clock, halt=halt, store=store)
    token = (
        settings.console_token.get_secret_value()
        if settings.console_token
        else ensure_console_token(settings.data_dir / "console_token")
    )
    secret = settings.operator_webhook_secret
    app = create_app(
        status=lambda: status.report(None),
        halt=halt,
        metrics=metrics,
        token=token,
        redactor=build_redactor(settings),
        approvals=approvals,
        allowed_hosts=[host, *settings.console_allowed_hosts],
        named_tokens={n: t.get_secret_value() for n, t in settings.console_named_tokens.items()},
        operator=operator,
        operator_webhook_secret=secret.get_secret_value() if secret else None,
    )
    server = ConsoleServer(app, host=host, port=settings.console_port if port is None else port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server.start()
    operator.start()
    shown = f"{server.base_url}/?token={token}" if settings.console_token is None else "(token)"
    out.print(f"Operator serving at {shown}", highlight=False)
    out.print(f"Alertmanager intake: {server.base_url}/api/alerts/alertmanager", highlight=False)
    try:
        await stop.wait()
    finally:
        await operator.aclose()
        await server.stop()
        for llm in {id(r.llm): r.llm for r in routes}.values():
            with contextlib.suppress(Exception):
                await llm.aclose()
        store.close()


async def _healthcheck(settings: Settings, store: Any) -> HealthReport:
    """Every health check once, as ``bastion health`` runs them (recorded in the store)."""
    # lazy: see cli/app.py
    from bastion.build import (  # noqa: PLC0415
        build_exchange,
        build_health_checker,
        build_observer,
        build_resilience,
    )
    from bastion.cli.context import never_halted  # noqa: PLC0415
    from bastion.telemetry.metrics import Metrics  # noqa: PLC0415

    clock = WallClock()
    metrics = Metrics()
    deadline = settings.health_check_timeout_seconds * 0.8
    resilience = build_resilience(settings, clock, metrics, deadline=deadline)
    exchange = build_exchange(settings, clock, metrics, never_halted, resilience=resilience)
    observer = build_observer(settings, exchange, clock)
    checker = build_health_checker(
        settings, clock=clock, exchange=exchange, store=store, observe=observer.observe
    )
    try:
        return await checker.run_and_cache_healthcheck()
    finally:
        await exchange.close()
