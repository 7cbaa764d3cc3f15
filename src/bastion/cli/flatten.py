"""``bastion flatten``: close positions with reduce-only orders, from another terminal.

Without ``--instrument`` it closes everything: the trading state becomes REDUCING first (flag,
cancel resting orders, alert, record: the one halt path), so the agent cannot open anything
while the book is being closed, and a running loop flattens too. With ``--instrument`` it closes
only those positions and leaves the trading state as it is. A HALTED state is kept: nothing but
cancels goes out under it, so flattening is refused with the way out.

The orders are planned, reviewed under REDUCING and sent by :mod:`bastion.ops.flatten`; every
step is recorded in the flatten's own trace (``traces/<date>/flatten-*.ndjson``), the orders and
the halt in the store's event log too. On the embedded paper exchange (which lives inside
``bastion run``) this process cannot reach the exchange: it raises REDUCING and the running
agent flattens within one step.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer

from bastion.cli.context import ConfigOption, err, exit_on_error, load, out, run_async
from bastion.cli.halt import halt_path, say_problems
from bastion.cli.terminal import safe
from bastion.clock import WallClock
from bastion.config import Settings, ensure_data_dir
from bastion.status import TradingState

if TYPE_CHECKING:
    from bastion.events import Journal
    from bastion.guard.halt import Halt
    from bastion.ops.flatten import FlattenPlan, FlattenResult

__all__ = ["flatten"]


def flatten(
    config: ConfigOption = None,
    instrument: Annotated[
        list[str] | None,
        typer.Option(
            "--instrument",
            help="Close only this instrument's position (repeat for more); the trading state "
            "is left as it is. Without it every position is closed under REDUCING.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the orders and their verdicts; send nothing."),
    ] = False,
    reason: Annotated[
        str, typer.Option("--reason", help="Why the positions must be closed.")
    ] = "flatten",
) -> None:
    """Close positions with reduce-only market orders that still pass the risk review."""
    settings = load(config)
    with exit_on_error():
        ensure_data_dir(settings)
    instruments = tuple(instrument or ())
    if not settings.resolved_exchange_url and (instruments or dry_run):
        _fail_embedded("--instrument" if instruments else "--dry-run")
    with halt_path(settings) as (halt, journal, emitted):
        if halt.trading_state() is TradingState.HALTED:
            _fail_halted(halt)
        if not instruments and not dry_run:
            run_async(lambda: _reduce(halt, reason))
        if not settings.resolved_exchange_url:
            say_problems(emitted)
            out.print(
                "[bold yellow]REDUCING[/]: the running agent cancels its resting orders and "
                "closes every position within one step (the embedded paper exchange lives in "
                "`bastion run`). Run `bastion status` to watch it.",
                highlight=False,
            )
            return
        result = run_async(
            lambda: _flatten(
                settings, halt, journal, instruments=instruments, reason=reason, dry_run=dry_run
            )
        )
        say_problems(emitted)
    _report(result, dry_run=dry_run)
    if not result.complete:
        raise typer.Exit(1)


async def _reduce(halt: Halt, reason: str) -> None:
    """REDUCING through the one halt path: a running agent on this host follows the flag."""
    await halt.trip(reason, who=getpass.getuser(), state=TradingState.REDUCING)


async def _flatten(
    settings: Settings,
    halt: Halt,
    journal: Journal,
    *,
    instruments: tuple[str, ...],
    reason: str,
    dry_run: bool,
) -> FlattenResult:
    """Cancel what rests (under REDUCING), plan, review and, unless a dry run, send."""
    from bastion.build import build_exchange, build_flattener  # noqa: PLC0415  lazy
    from bastion.telemetry.metrics import Metrics  # noqa: PLC0415  lazy: see cli/app.py

    clock = WallClock()
    exchange = build_exchange(settings, clock, Metrics(), halt.check)
    try:
        if halt.active():
            halt.set_canceller(exchange.cancel_all)
            await halt.enforce(always=True)
        flattener, trace = build_flattener(settings, exchange, clock, journal)
        try:
            why = f"{reason} by {getpass.getuser()}"
            plan = await flattener.plan(instruments or None, why=why)
            return flattener.unsent(plan) if dry_run else await flattener.execute(plan)
        finally:
            trace.close()
            out.print(f"Trace: {safe(str(trace.path))}", highlight=False)
    finally:
        await exchange.close()


def _report(result: FlattenResult, *, dry_run: bool) -> None:
    plan = result.plan
    if not plan.decision.intents:
        out.print("Nothing to close: no position is held" + _among(plan) + ".")
        return
    for verdict in plan.verdicts:
        intent = verdict.intent
        ask = f"{intent.direction} {intent.amount:g} {safe(intent.instrument_name)} at market"
        if verdict.approved:
            out.print(f"  {ask} (reduce-only): approved", highlight=False)
        else:
            out.print(f"  {ask}: [red]rejected[/] ({safe(verdict.reason)})", highlight=False)
    if dry_run:
        out.print("Dry run: nothing was sent.")
        return
    for order in result.sent:
        out.print(
            f"[green]Sent[/] {safe(order.label)}: {order.direction} {order.filled_amount:g} of "
            f"{order.amount:g} {safe(order.instrument_name)} filled ({order.order_state})",
            highlight=False,
        )
    for intent, why in result.not_sent:
        err.print(
            f"[yellow]Not closed[/]: {safe(intent.instrument_name)}: {safe(why)}",
            highlight=False,
        )


def _among(plan: FlattenPlan) -> str:
    names = {p.instrument_name for p in plan.observation.positions if p.size != 0}
    return f" among those asked for (held: {', '.join(sorted(names))})" if names else ""


def _fail_embedded(flag: str) -> None:
    err.print(
        f"{flag} needs an exchange this process can reach (BASTION_EXCHANGE_URL, or "
        "BASTION_MODE=testnet|live): the embedded paper exchange lives inside `bastion run`. "
        "Run `bastion flatten` without it: the running agent then closes every position.",
        style="bold red",
        highlight=False,
    )
    raise typer.Exit(2)


def _fail_halted(halt: Halt) -> None:
    state = halt.state()
    why = f" ({safe(state.reason)} by {safe(state.who)})" if state is not None else ""
    err.print(
        f"Trading is HALTED{why}: nothing but cancels goes out, so nothing was flattened. "
        "To close positions, run `bastion resume --reason ...` and then `bastion flatten` "
        "(it raises REDUCING at once, so nothing new opens meanwhile).",
        style="bold red",
        highlight=False,
    )
    raise typer.Exit(1)
