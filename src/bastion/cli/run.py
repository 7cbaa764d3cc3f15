"""``bastion run``: the guarded agent with its console, narrated in the terminal."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli.context import ConfigOption, load, out, parse_duration, run_async
from bastion.cli.terminal import safe
from bastion.config import Settings
from bastion.events import Event, EventKind
from bastion.telemetry.logs import configure_logging

if TYPE_CHECKING:
    from bastion.market import Order
    from bastion.runner import Runner, RunSummary

__all__ = ["run"]


def run(
    config: ConfigOption = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Stop after N steps.")] = None,
    for_: Annotated[
        str | None, typer.Option("--for", help="Stop after a duration, e.g. 60s or 5m.")
    ] = None,
    dry_run: Annotated[
        bool | None,
        typer.Option(
            "--dry-run/--no-dry-run",
            help="Decide and record, never send (default: BASTION_DRY_RUN).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Console port.")] = None,
) -> None:
    """Run the guarded agent (paper exchange in-process by default) with its console.

    Exit codes: 0 completed or halted, 1 failed (no step succeeded) or refused, 2 bad
    configuration, 130 interrupted by Ctrl-C (143 by SIGTERM).
    """
    duration = parse_duration(for_) if for_ else None
    settings = load(config, dry_run=dry_run, console_port=port)
    configure_logging(settings.log_level, settings.secret_values(), fmt=settings.log_format)
    try:
        summary, signum = run_async(lambda: _run(settings, steps, duration))
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
    from bastion.runner import Runner  # noqa: PLC0415  lazy: see cli/app.py

    stopper = _Stopper()
    async with Runner(settings) as runner:
        stopper.install()
        _banner(runner)
        await _say_crashed(runner)
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
        out.print(_closing_line(summary), highlight=False)
        _say_resting(summary.left_resting, settings)
        out.print(f"Trace: {summary.trace_path}", markup=False, highlight=False)
        return summary, stopper.signum


def _closing_line(summary: RunSummary) -> str:
    """``Run X completed after 8 steps (6 ok, 2 failed)``; a failed run says why."""
    parts = [f"{summary.steps_ok} ok"]
    if summary.steps_halted:
        parts.append(f"{summary.steps_halted} halted")
    if summary.steps_failed:
        parts.append(f"{summary.steps_failed} failed")
    line = f"Run {summary.run_id} {summary.status} after {summary.steps} steps ({', '.join(parts)})"
    if summary.status == "failed" and summary.last_failure:
        line += f"; last failure: {safe(summary.last_failure, limit=300)}"
    return line + "."


def _banner(runner: Runner) -> None:
    info = runner.describe()
    out.print(f"[bold]Bastion[/] run [cyan]{info['run_id']}[/] — agent {safe(runner.agent.name)}")
    if info["console_url"]:
        url = info["console_url"]
        out.print(f"  Console:     [link={url}]{url}[/link]")
        if runner.settings.console_token is not None:
            out.print("               (token=***: the console token is BASTION_CONSOLE_TOKEN)")
    for label, key in (
        ("Exchange:   ", "exchange"),
        ("Trace:      ", "trace_path"),
        ("Store:      ", "store"),
    ):
        out.print(f"  {label} {safe(str(info[key]))}", highlight=False)
    out.print(
        f"  Kill switch: {safe(info['kill_switch'])}  (bastion kill / bastion resume)",
        highlight=False,
    )
    state = runner.halt.state()
    if state is not None:
        out.print(
            f"[bold red]Kill switch is active[/] ({safe(state.reason)}, by {safe(state.who)}): "
            "no order will be sent until `bastion resume`.",
            highlight=False,
        )
    out.print("Press Ctrl-C to stop.")


async def _say_crashed(runner: Runner) -> None:
    """The last run on this data directory died without finishing: say so, and what it left."""
    crashed = runner.crashed_run
    if crashed is None:
        return
    last = (crashed.detail or {}).get("last_step_at") or "before its first step"
    out.print(
        f"[bold yellow]Previous run {crashed.run_id} crashed[/] (its process died without "
        f"finishing): last step {crashed.steps} at {safe(str(last))}; recorded as crashed.",
        highlight=False,
    )
    if runner.settings.resolved_exchange_url:
        left = await runner.resting()
        if left:
            out.print(
                f"  It may have left orders resting: {len(left)} open on the exchange now "
                "(this run adopts those its predecessor sent, by their labels; cancel the rest "
                "or `bastion kill` if unwanted):"
            )
            _list_orders(left)
    else:
        out.print("  Its paper orders ended with its process.")


_NARRATED = {
    EventKind.ORDER_SENT: "[cyan]order sent[/]",
    EventKind.ORDER_FILLED: "[green]order filled[/]",
    EventKind.ORDER_REJECTED: "[yellow]order rejected[/]",
    EventKind.ORDER_FAILED: "[red]order failed[/]",
    EventKind.HALT_TRIPPED: "[bold red]HALT[/]",
    EventKind.HALT_ENFORCED: "[bold red]HALT enforced[/]",
    EventKind.HALT_RESUMED: "[bold green]resumed[/]",
    EventKind.TRADING_RESUMED: "[bold green]trading resumed[/]",
    EventKind.STEP_TIMEOUT: "[yellow]step timeout[/]",
    EventKind.STEP_FAILED: "[yellow]step failed[/]",
}


def _narrate(event: Event) -> None:
    """One line per event a person watching the terminal wants to see; untrusted text is safe."""
    if event.kind is EventKind.RUN_RECOVERED:
        _say_recovered(event.payload)
        return
    label = _NARRATED.get(event.kind)
    if label is None:
        return
    out.print(f"{label} {safe(_narration(event), limit=500)}", highlight=False)


def _narration(event: Event) -> str:
    p = event.payload
    if "order_id" in p:
        price = "market" if p.get("price") is None else p["price"]
        return f"{p['direction']} {p['amount']:g} {p['instrument']} @ {price} ({p['order_id']})"
    if "reason" in p and "who" in p:
        return f"{p['reason']} (by {p['who']}); cancelled {p.get('cancelled_orders', 0)} order(s)"
    if event.kind is EventKind.TRADING_RESUMED:
        return f"at step {p.get('step', '?')}: the kill switch was cleared"
    if "error" in p:
        return str(p["error"].get("message") or p["error"])
    return str(p.get("detail", ""))


def _say_recovered(found: Mapping[str, Any]) -> None:
    """What the start found of the crashed run, before its first step."""
    last = found.get("last_step")
    state = "agent state restored" if found.get("state_restored") else "no agent state to restore"
    out.print(
        f"[bold yellow]Recovered[/] from run {safe(str(found['crashed_run_id']))}: last completed "
        f"step {last if last is not None else 'unknown'}; {state}.",
        highlight=False,
    )
    for order in found.get("orders", ()):
        how = "was being sent; " if order.get("in_outbox") else ""
        out.print(
            safe(
                f"  adopted {order['order_id']} ({order['label']}): {how}{order['state']}, "
                f"{order['direction']} {order['amount']:g} {order['instrument']}, filled "
                f"{order['filled_amount']:g}"
            ),
            highlight=False,
        )
    for label in found.get("not_sent", ()):
        out.print(
            f"  {safe(str(label))}: not on the exchange (never accepted, or gone with an "
            "in-process paper exchange); not sent again",
            highlight=False,
        )
    for problem in found.get("problems", ()):
        out.print(f"  [yellow]{safe(str(problem), limit=500)}[/]", highlight=False)


def _say_resting(left: tuple[Order, ...], settings: Settings) -> None:
    if not left:
        out.print("Left resting: no orders.")
        return
    where = "" if settings.resolved_exchange_url else " (paper orders end with the process)"
    out.print(f"Left resting: {len(left)} order(s){where}:")
    _list_orders(left)


def _list_orders(orders: tuple[Order, ...]) -> None:
    for order in orders:
        out.print(
            safe(
                f"  {order.order_id} {order.direction} {order.amount:g} {order.instrument_name} "
                f"@ {order.price}"
            ),
            highlight=False,
        )
