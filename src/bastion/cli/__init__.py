"""The ``bastion`` command: thin. It parses, calls the services and renders with Rich.

Exit codes: 0 success, 1 a runtime failure (exchange unreachable, run failed), 2 bad
configuration or usage, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import orjson
import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from bastion.build import (
    build_agent,
    build_budget,
    build_exchange,
    build_health_checker,
    build_paper_app,
    build_resilience,
    risk_limits,
)
from bastion.clock import WallClock
from bastion.config import ENV_PREFIX, Settings, ensure_data_dir, load_settings, markdown_table
from bastion.errors import BastionError, ConfigError
from bastion.events import Event, EventKind, Journal
from bastion.guard.halt import Halt
from bastion.guard.health import HealthReport
from bastion.guard.health_guard import HEALTH_FAIL_REASON
from bastion.market import Order
from bastion.ops.smoke import SmokeReport, run_smoke
from bastion.runner import Runner, RunSummary
from bastion.runtime.loop import Loop, LoopConfig
from bastion.simulators.llm import LLMFault
from bastion.simulators.llm import serve as serve_fake_llm
from bastion.store import Store
from bastion.telemetry.logs import configure_logging
from bastion.telemetry.metrics import Metrics

__all__ = ["app", "main"]

app = typer.Typer(
    help="Bastion: run LLM trading agents inside a guarded loop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
exchange_app = typer.Typer(help="The Deribit-compatible paper exchange.", no_args_is_help=True)
app.add_typer(exchange_app, name="exchange")
llm_app = typer.Typer(help="Language-model tools.", no_args_is_help=True)
app.add_typer(llm_app, name="llm")

out = Console(soft_wrap=True)  # URLs and paths must stay copy-pasteable
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="A bastion.toml to read (default ./bastion.toml).")
]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``90``, ``60s``, ``5m``, ``1.5h`` → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 60s, 5m or 1h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        err.print(f"[bold red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None


@contextlib.contextmanager
def _exit_on_error() -> Iterator[None]:
    """Our errors become a one-line message and an exit code, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        err.print(f"[bold red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    except BastionError as exc:
        err.print(f"[bold red]{exc}[/]", highlight=False)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        err.print(
            f"[bold red]store: {type(exc).__name__} ({str(exc).splitlines()[0][:200]}). Fix: "
            "check that the database at BASTION_STORE_URL is up and not locked, then retry.[/]",
            highlight=False,
        )
        raise typer.Exit(1) from None


def _run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with _exit_on_error():
        return asyncio.run(factory())


# -- run ------------------------------------------------------------------------------------
@app.command()
def run(
    config: ConfigOption = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Stop after N steps.")] = None,
    for_: Annotated[
        str | None, typer.Option("--for", help="Stop after a duration, e.g. 60s or 5m.")
    ] = None,
    dry_run: Annotated[
        bool | None, typer.Option("--dry-run", help="Decide and record, never send.")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Console port.")] = None,
) -> None:
    """Run the guarded agent (paper exchange in-process by default) with its console."""
    duration = parse_duration(for_) if for_ else None
    settings = _settings(config, dry_run=dry_run, console_port=port)
    configure_logging(settings.log_level, settings.secret_values())
    try:
        summary, signum = _run_async(lambda: _run(settings, steps, duration))
    except KeyboardInterrupt:
        raise typer.Exit(128 + signal.SIGINT) from None
    if signum is not None:
        raise typer.Exit(128 + signum)
    raise typer.Exit(0 if summary.status in ("completed", "halted") else 1)


class _Stopper:
    """SIGINT/SIGTERM: the first ends the run after the current step, the second at once."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signum: int | None = None
        self._task = asyncio.current_task()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
            self.event.set()
            out.print(
                f"\n{signal.Signals(signum).name}: stopping after the current step "
                "(again to stop at once)."
            )
        elif self._task is not None:
            self._task.cancel()

    @property
    def name(self) -> str:
        if self.signum is None:
            return "a signal"
        return "Ctrl-C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name


async def _run(
    settings: Settings, steps: int | None, duration: float | None
) -> tuple[RunSummary, int | None]:
    stopper = _Stopper()
    async with Runner(settings) as runner:
        stopper.install()
        _banner(runner)
        runner.journal.subscribe(_narrate)
        try:
            summary = await runner.run(
                max_steps=steps, duration_seconds=duration, stop=stopper.event
            )
        except asyncio.CancelledError:
            left = await runner.resting()
            out.print(f"[bold]Stopped at once by {stopper.name}.[/] Run recorded as interrupted.")
            _say_resting(left, settings)
            raise KeyboardInterrupt from None
        if stopper.signum is not None:
            out.print(f"[bold]Stopped by {stopper.name}.[/] Run recorded as interrupted.")
        out.print(f"Run {summary.run_id} {summary.status} after {summary.steps} steps.")
        _say_resting(summary.left_resting, settings)
        out.print(f"Trace: {summary.trace_path}")
        return summary, stopper.signum


def _banner(runner: Runner) -> None:
    info = runner.describe()
    out.print(f"[bold]Bastion[/] run [cyan]{info['run_id']}[/] — agent {runner.agent.name}")
    if info["console_url"]:
        out.print(f"  Console:     [link={info['console_url']}]{info['console_url']}[/link]")
    out.print(f"  Exchange:    {info['exchange']}")
    out.print(f"  Trace:       {info['trace_path']}")
    out.print(f"  Store:       {info['store']}")
    out.print(f"  Kill switch: {info['kill_switch']}  (bastion kill / bastion resume)")
    state = runner.halt.state()
    if state is not None:
        out.print(
            f"[bold red]Kill switch is active[/] ({state.reason}, by {state.who}): no order "
            "will be sent until `bastion resume`."
        )
    out.print("Press Ctrl-C to stop.")


_NARRATED = {
    EventKind.ORDER_SENT: "[cyan]order sent[/]",
    EventKind.ORDER_FILLED: "[green]order filled[/]",
    EventKind.ORDER_REJECTED: "[yellow]order rejected[/]",
    EventKind.ORDER_FAILED: "[red]order failed[/]",
    EventKind.HALT_TRIPPED: "[bold red]HALT[/]",
    EventKind.HALT_ENFORCED: "[bold red]HALT enforced[/]",
    EventKind.HALT_RESUMED: "[bold green]resumed[/]",
    EventKind.STEP_TIMEOUT: "[yellow]step timeout[/]",
    EventKind.STEP_FAILED: "[yellow]step failed[/]",
}


def _narrate(event: Event) -> None:
    """One line per event a person watching the terminal wants to see."""
    label = _NARRATED.get(event.kind)
    if label is None:
        return
    p = event.payload
    if "order_id" in p:
        price = "market" if p.get("price") is None else p["price"]
        text = f"{p['direction']} {p['amount']:g} {p['instrument']} @ {price} ({p['order_id']})"
    elif "reason" in p and "who" in p:
        text = f"{p['reason']} (by {p['who']}); cancelled {p.get('cancelled_orders', 0)} order(s)"
    elif "error" in p:
        text = str(p["error"].get("message") or p["error"])
    else:
        text = str(p.get("detail", ""))
    out.print(f"{label} {text}", highlight=False)


def _say_resting(left: tuple[Order, ...], settings: Settings) -> None:
    if not left:
        out.print("Left resting: no orders.")
        return
    where = "" if settings.resolved_exchange_url else " (paper orders end with the process)"
    out.print(f"Left resting: {len(left)} order(s){where}:")
    for order in left:
        out.print(
            f"  {order.order_id} {order.direction} {order.amount:g} {order.instrument_name} "
            f"@ {order.price}"
        )


# -- status ---------------------------------------------------------------------------------
@app.command()
def status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show whether the agent is trading or halted, and what it holds."""
    settings = _settings(config)
    data = _status(settings)
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _render_status(data)


def _status(settings: Settings) -> dict[str, Any]:
    live = _console_status(settings)
    halt = Halt(flag_path=settings.kill_switch_path, clock=WallClock()).state()
    data: dict[str, Any] = live or {"state": "not running"}
    data["console"] = "reachable" if live else "not reachable"
    data["halted"] = halt is not None
    data["halt_reason"] = halt.reason if halt else None
    data["halt"] = halt.to_dict() if halt else None
    store = _try_store(settings)
    if store is None:
        data["last_run"] = None
        data["store"] = "unavailable"
        return data
    with store:
        last = store.runs.latest()
        data["approvals_pending"] = store.approvals.count_pending(now=WallClock().now())
        if data.get("budget") is None:
            data["budget"] = _budget_usage(settings, store)
    data["last_run"] = (
        None
        if last is None
        else {
            "run_id": last.run_id,
            "status": last.status,
            "steps": last.steps,
            "started_at": last.started_at.isoformat(),
        }
    )
    return data


def _budget_usage(settings: Settings, store: Store) -> dict[str, Any]:
    agent = build_agent(settings).name
    return build_budget(settings, store, WallClock(), agent).usage_today()


def _used_today_line(budget: dict[str, Any]) -> str:
    """`Used today: 12,345 tokens (2.5%)` with a bar, or without a limit just the count."""
    used = int(budget["tokens_used_today"])
    limit = budget.get("daily_budget")
    if not limit:
        return f"Used today: {used:,} tokens (no daily limit)"
    share = used / limit
    filled = min(20, round(share * 20))
    bar = "█" * filled + "░" * (20 - filled)
    return f"Used today: {used:,} tokens ({share:.1%}) {bar} of {limit:,}"


def _try_store(settings: Settings) -> Store | None:
    """The store, or None with a warning: status, kill and resume must work without it."""
    try:
        return Store.open(settings.resolved_store_url)
    except BastionError as exc:
        err.print(f"[yellow]Store unavailable[/]: {exc}", highlight=False)
        return None


def _console_status(settings: Settings) -> dict[str, Any] | None:
    """The running agent's /api/status, or None when no console answers as ours does."""
    token_file = settings.data_dir / "console_token"
    token = (
        settings.console_token.get_secret_value()
        if settings.console_token
        else (token_file.read_text().strip() if token_file.exists() else "")
    )
    if not token or settings.console_port == 0:
        return None
    host = settings.console_host
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.console_port}/api/status"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2.0)
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return None
        result = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return result if isinstance(result, dict) and "run_id" in result else None


def _render_status(data: dict[str, Any]) -> None:
    if data["halted"]:
        h = data["halt"]
        out.print(f"[bold red]HALTED[/]: {h['reason']} (by {h['who']} at {h['when']})")
    else:
        out.print(f"[bold green]Not halted[/]; agent {data['state']}")
    if data.get("run_id"):
        out.print(
            f"Run {data['run_id']}: step {data['last_step']} ({data['last_outcome']}) at "
            f"{data['last_step_at']}; equity {data['equity']} {data['currency']}"
        )
    elif data.get("last_run"):
        r = data["last_run"]
        out.print(f"Last run {r['run_id']}: {r['status']} after {r['steps']} steps")
    if data.get("budget"):
        out.print(_used_today_line(data["budget"]), highlight=False)
    if data.get("approvals_pending"):
        out.print(
            f"[bold yellow]Approvals pending: {data['approvals_pending']}[/] "
            "(bastion approvals to review)"
        )
    for title, rows, cols in (
        ("Positions", data.get("positions", []), ("instrument", "size", "mark_price")),
        (
            "Open orders",
            data.get("open_orders", []),
            ("order_id", "instrument", "direction", "amount", "price"),
        ),
    ):
        if rows:
            table = Table(title=title)
            for col in cols:
                table.add_column(col)
            for row in rows:
                table.add_row(*(str(row[c]) for c in cols))
            out.print(table)


# -- kill / resume --------------------------------------------------------------------------
def _halt_for_cli(settings: Settings, store: Store | None) -> tuple[Halt, list[Event]]:
    """A Halt for this process, recording into the store and returning what it emitted."""
    journal = Journal()
    clock = WallClock()
    emitted: list[Event] = []
    journal.subscribe(emitted.append)
    if store is not None:

        def to_store(event: Event) -> None:
            store.events.append(event.kind.value, dict(event.payload), at=clock.now())

        journal.subscribe(to_store)
    halt = Halt(flag_path=settings.kill_switch_path, clock=clock, store=store, journal=journal)
    return halt, emitted


def _say_problems(emitted: list[Event]) -> None:
    for event in emitted:
        for key, what in (
            ("store_error", "not recorded in the store"),
            ("cancel_error", "could not cancel resting orders"),
        ):
            if key in event.payload:
                err.print(f"[yellow]Warning[/]: {what}: {event.payload[key]}", highlight=False)


@app.command()
def kill(
    config: ConfigOption = None,
    reason: Annotated[str, typer.Option("--reason", help="Why trading must stop.")] = "operator",
) -> None:
    """Trip the kill switch: no new orders; resting orders are cancelled."""
    settings = _settings(config)
    with _exit_on_error():
        ensure_data_dir(settings)
    store = _try_store(settings)
    try:
        halt, emitted = _halt_for_cli(settings, store)
        _run_async(lambda: _kill(settings, halt, reason))
        _say_problems(emitted)
    finally:
        if store is not None:
            store.close()


async def _kill(settings: Settings, halt: Halt, reason: str) -> None:
    remote = bool(settings.resolved_exchange_url)
    exchange = None
    if remote:
        exchange = build_exchange(settings, WallClock(), Metrics(), lambda: None)
        halt.set_canceller(exchange.cancel_all)
    try:
        state = await halt.trip(reason, who=getpass.getuser())
    finally:
        if exchange is not None:
            await exchange.close()
    out.print(f"[bold red]Kill switch active[/]: {state.reason} (by {state.who} at {state.when})")
    if remote:
        out.print("Resting orders on the exchange were cancelled.")
    else:
        out.print("The running agent cancels its resting orders within a moment.")
    out.print(f"Flag: {settings.kill_switch_path}. Run `bastion resume --reason ...` to continue.")


@app.command()
def resume(
    config: ConfigOption = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why it is safe to trade again.")
    ] = "operator resumed",
) -> None:
    """Clear the kill switch and record who resumed and why."""
    settings = _settings(config)
    store = _try_store(settings)
    try:
        halt, emitted = _halt_for_cli(settings, store)
        cleared = halt.resume(who=getpass.getuser(), why=reason)
        _say_problems(emitted)
    finally:
        if store is not None:
            store.close()
    if cleared is None:
        out.print("The kill switch was not active; nothing to resume.")
        return
    out.print(f"[bold green]Resumed[/]: cleared halt '{cleared.reason}' ({reason}).")


# -- budget ---------------------------------------------------------------------------------
@app.command()
def budget(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Today's LLM token and USD spend against the budgets, by model."""
    settings = _settings(config)
    with _exit_on_error():
        ensure_data_dir(settings)
        with Store.open(settings.resolved_store_url) as store:
            usage = _budget_usage(settings, store)
    if as_json:
        sys.stdout.write(orjson.dumps(usage, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    out.print(f"Agent {usage['agent']} (budgets are per agent; BASTION_AGENT picks it)")
    out.print(_used_today_line(usage), highlight=False)
    usd_limit = usage.get("daily_usd_budget")
    usd = f"${usage['usd_used_today']:,.2f}" + (f" of ${usd_limit:,.2f}" if usd_limit else "")
    out.print(f"USD today: {usd}; invocations: {usage['invocations_today']}")
    out.print(
        f"Budget available: {'yes' if usage['budget_available'] else 'NO'}; "
        f"resets {usage['reset_date']} 00:00 UTC"
    )
    if usage["by_model"]:
        table = Table(title="By model")
        for column in ("model", "invocations", "tokens", "usd"):
            table.add_column(column)
        for model, row in sorted(usage["by_model"].items()):
            table.add_row(model, str(row["invocations"]), f"{row['tokens']:,}", f"{row['usd']:.4f}")
        out.print(table)


# -- approvals ------------------------------------------------------------------------------
approvals_app = typer.Typer(
    help="Questions waiting for a person (LLM escalations); list, approve or reject them.",
    invoke_without_command=True,
)
app.add_typer(approvals_app, name="approvals")


@approvals_app.callback()
def approvals_list(
    ctx: typer.Context,
    config: ConfigOption = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Every entry, decided ones too, newest first.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the pending entries (with --all, the decided ones too)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(config)
    with _exit_on_error():
        ensure_data_dir(settings)
        with Store.open(settings.resolved_store_url) as store:
            store.approvals.expire(WallClock().now())
            records = store.approvals.list(status=None if show_all else "pending", limit=100)
    if as_json:
        rows = [r.to_dict() for r in records]
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not records:
        out.print("No approvals pending." if not show_all else "No approvals recorded.")
        return
    title = "approvals" if show_all else "pending approvals"
    out.print(f"{len(records)} {title}, newest first:")
    for r in records:
        run = f", run {r.run_id}" if r.run_id else ""
        out.print(
            f"[bold]{r.id}[/]  {r.kind}  {r.status.value}  asked "
            f"{r.created_at:%Y-%m-%d %H:%M:%S} UTC by {r.agent}{run}",
            highlight=False,
        )
        out.print(f"    {r.reason}", highlight=False, soft_wrap=True)


def _decide(config: Path | None, approval_id: str, *, approve: bool, note: str | None) -> None:
    settings = _settings(config)
    with _exit_on_error():
        ensure_data_dir(settings)
        with Store.open(settings.resolved_store_url) as store:
            record = store.approvals.decide(
                approval_id,
                approve=approve,
                who=getpass.getuser(),
                note=note,
                at=WallClock().now(),
            )
    out.print(f"Approval {record.id} {record.status.value} by {record.decided_by}.")


@approvals_app.command("approve")
def approvals_approve(
    approval_id: Annotated[str, typer.Argument(help="The entry's id (bastion approvals).")],
    note: Annotated[str | None, typer.Option("--note", help="Why, for the record.")] = None,
    config: ConfigOption = None,
) -> None:
    """Approve a pending entry."""
    _decide(config, approval_id, approve=True, note=note)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: Annotated[str, typer.Argument(help="The entry's id (bastion approvals).")],
    note: Annotated[str | None, typer.Option("--note", help="Why, for the record.")] = None,
    config: ConfigOption = None,
) -> None:
    """Reject a pending entry."""
    _decide(config, approval_id, approve=False, note=note)


# -- health ---------------------------------------------------------------------------------
@app.command()
def health(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON shape.")] = False,
) -> None:
    """Run every health check once and print them.

    Exit codes (for cron and CI): 0 OK, 1 WARN, 2 FAIL (a configuration error is also 2).
    """
    settings = _settings(config)
    configure_logging("ERROR", settings.secret_values())
    with _exit_on_error():
        ensure_data_dir(settings)
    report = _run_async(lambda: _health(settings))
    paused = _paused_by_health(settings)
    if as_json:
        data = {**report.to_dict(), "agent_paused_due_to_health": paused}
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _render_health(report, paused)
    raise typer.Exit(report.overall_status.rank)


async def _health(settings: Settings) -> HealthReport:
    clock = WallClock()
    metrics = Metrics()
    # Calls give up (classified) inside the check timeout, so details say why, not just "slow".
    deadline = settings.health_check_timeout_seconds * 0.8
    resilience = build_resilience(settings, clock, metrics, deadline=deadline)
    store = Store.open(settings.resolved_store_url)
    exchange = build_exchange(settings, clock, metrics, lambda: None, resilience=resilience)
    loop = Loop(
        run_id="health",
        agent=build_agent(settings),
        exchange=exchange,
        halt=Halt(flag_path=settings.kill_switch_path, clock=clock),
        journal=Journal(),
        clock=clock,
        limits=risk_limits(settings),
        config=LoopConfig(currency=settings.currency),
    )
    checker = build_health_checker(
        settings, clock=clock, exchange=exchange, store=store, observe=loop.build_observation
    )
    try:
        return await checker.run_and_cache_healthcheck()
    finally:
        await exchange.close()
        store.close()


def _paused_by_health(settings: Settings) -> bool:
    state = Halt(flag_path=settings.kill_switch_path, clock=WallClock()).state()
    return state is not None and state.reason == HEALTH_FAIL_REASON


def _render_health(report: HealthReport, paused: bool) -> None:
    colour = {"OK": "green", "WARN": "yellow", "FAIL": "red"}
    table = Table(title=f"System Health — {report.run_at:%Y-%m-%d %H:%M:%S} UTC")
    for column in ("check", "status", "detail", "ms"):
        table.add_column(column)
    for check in report.checks:
        status = check.status.value
        table.add_row(
            check.name, f"[{colour[status]}]{status}[/]", check.detail, f"{check.latency_ms:.0f}"
        )
    out.print(table)
    overall = report.overall_status.value
    out.print(f"[bold {colour[overall]}]{overall}[/]: {report.summary}", highlight=False)
    if paused:
        out.print("Agent status: PAUSED by health guard (auto_kill_on_health_fail)")


# -- smoke ----------------------------------------------------------------------------------
@app.command()
def smoke(
    config: ConfigOption = None,
    for_: Annotated[str, typer.Option("--for", help="Time box, e.g. 30s.")] = "30s",
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="End the dry run after N steps.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A bounded check of the configured exchange and agent; never sends an order.

    Exit codes: 0 PASS, 1 FAIL, 2 bad configuration, 3 SKIPPED (exchange offline: unreachable,
    forbidden, rate-limited or failing), 4 WARN (reachable, but some dry-run steps failed).
    """
    seconds = parse_duration(for_)
    settings = _settings(config)
    configure_logging("WARNING", settings.secret_values())
    report = _run_async(lambda: run_smoke(settings, duration_seconds=seconds, max_steps=steps))
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _render_smoke(report, seconds)
    raise typer.Exit(report.exit_code)


def _render_smoke(report: SmokeReport, seconds: float) -> None:
    out.print(f"Smoke against {report.exchange} ({seconds:g} s time box; no order is sent)")
    for check in report.checks:
        mark = "[green]ok[/]  " if check.ok else "[red]fail[/]"
        out.print(f"  {mark} {check.name}: {check.detail}", highlight=False)
    if report.offline_reason:
        out.print(f"[yellow]OFFLINE mode[/]: {report.offline_reason}", highlight=False)
    colour = {"PASS": "green", "WARN": "yellow", "SKIPPED": "yellow", "FAIL": "red"}
    outcome = report.outcome.value
    out.print(
        f"[bold {colour[outcome]}]{outcome}[/] in {report.elapsed_s:.1f} s "
        f"(exit {report.exit_code})"
    )


# -- config ---------------------------------------------------------------------------------
@app.command("config")
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
    settings = _settings(config)
    table = Table(title=f"Effective settings (config hash {settings.config_hash()})")
    table.add_column("setting")
    table.add_column("value")
    for name, value in settings.public_dict().items():
        table.add_row(f"{ENV_PREFIX}{name.upper()}", str(value))
    out.print(table)


# -- exchange serve -------------------------------------------------------------------------
@exchange_app.command("serve")
def exchange_serve(
    port: Annotated[int, typer.Option("--port", help="Port on loopback.")] = 8788,
    seed: Annotated[int, typer.Option("--seed", help="Market seed.")] = 1,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    config: ConfigOption = None,
) -> None:
    """Serve the paper exchange over HTTP (Deribit API v2 at /api/v2)."""
    settings = _settings(config)
    paper = build_paper_app(settings.model_copy(update={"paper_seed": seed}), WallClock())
    out.print(f"Paper exchange (seed {seed}) on http://{host}:{port}/api/v2 — Ctrl-C to stop.")
    uvicorn.run(paper, host=host, port=port, log_level="warning")


# -- llm fake-server -----------------------------------------------------------------------
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
    try:
        faults = [LLMFault.model_validate(orjson.loads(text)) for text in fault or ()]
    except orjson.JSONDecodeError as exc:
        err.print(f"[bold red]--fault is not JSON ({exc}). Fix: quote one JSON object.[/]")
        raise typer.Exit(2) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'fault'}: {e['msg']}" for e in exc.errors()
        )
        err.print(f"[bold red]--fault: {problems}[/]", highlight=False)
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
        err.print(f"[bold red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None


def main() -> None:
    """Console-script entry point."""
    app()
