"""``bastion kill`` and ``bastion resume``: the one halt path, from another terminal.

The halt is built by :func:`bastion.build.build_halt` and records through the same redacting
store sink as a run. Both commands work without the store (the flag file is what stops a
running agent) and say what they could not record. On a SQLite store at head they record
through :mod:`bastion.store.emergency`, which spares them the database layer's import time.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from bastion.cli.context import (
    ConfigOption,
    err,
    exit_on_error,
    load,
    never_halted,
    out,
    run_async,
    try_store,
)
from bastion.cli.terminal import safe
from bastion.clock import WallClock
from bastion.config import Settings, ensure_data_dir

if TYPE_CHECKING:
    from bastion.events import Event, Journal
    from bastion.guard.halt import Halt
    from bastion.status import HaltState

__all__ = ["halt_path", "kill", "resume", "say_problems"]


FleetOption = Annotated[
    bool,
    typer.Option(
        "--fleet",
        help="Every agent on the shared store, not just this data directory's (each follows "
        "within one poll).",
    ),
]


def kill(
    config: ConfigOption = None,
    reason: Annotated[str, typer.Option("--reason", help="Why trading must stop.")] = "operator",
    fleet: FleetOption = False,
) -> None:
    """Trip the kill switch: no new orders; resting orders are cancelled."""
    settings = load(config)
    with exit_on_error():
        ensure_data_dir(settings)
    if fleet:
        _kill_fleet(settings, reason)
        return
    with halt_path(settings) as (halt, _, emitted):
        state = run_async(lambda: _kill(settings, halt, reason))
        say_problems(emitted)
    out.print(
        f"[bold red]Kill switch active[/]: {safe(state.reason)} (by {safe(state.who)} at "
        f"{safe(state.when)})",
        highlight=False,
    )
    if settings.resolved_exchange_url:
        out.print("Resting orders on the exchange were cancelled.")
    else:
        out.print("The running agent cancels its resting orders within a moment.")
    out.print(
        f"Flag: {safe(str(settings.kill_switch_path))}. Run `bastion resume --reason ...` to "
        "continue.",
        highlight=False,
    )
    if any("flag_error" in event.payload for event in emitted):
        raise typer.Exit(1)  # the flag is the step a running agent on this host watches


async def _kill(settings: Settings, halt: Halt, reason: str) -> HaltState:
    """Flag first, then cancel: the flag is what stops a running agent (whose watcher cancels
    at once), so it must not wait for this process to import and reach the exchange client."""
    state = await halt.trip(reason, who=getpass.getuser())
    if settings.resolved_exchange_url:  # the in-process paper exchange lives in the run
        from bastion.build import build_exchange  # noqa: PLC0415  lazy: see cli/app.py
        from bastion.telemetry.metrics import Metrics  # noqa: PLC0415  lazy: see cli/app.py

        exchange = build_exchange(settings, WallClock(), Metrics(), never_halted)
        halt.set_canceller(exchange.cancel_all)
        try:
            await halt.enforce(always=True)
        finally:
            await exchange.close()
    return state


def resume(
    config: ConfigOption = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why it is safe to trade again.")
    ] = "operator resumed",
    fleet: FleetOption = False,
) -> None:
    """Clear the kill switch and record who resumed and why."""
    settings = load(config)
    if fleet:
        _resume_fleet(settings, reason)
        return
    with halt_path(settings) as (halt, _, emitted):
        cleared = halt.resume(who=getpass.getuser(), why=reason)
        say_problems(emitted)
    if cleared is None:
        out.print("The kill switch was not active; nothing to resume.")
        return
    out.print(
        f"[bold green]Resumed[/]: cleared halt '{safe(cleared.reason)}' ({safe(reason)}).",
        highlight=False,
    )


def _kill_fleet(settings: Settings, reason: str) -> None:
    with halt_path(settings) as (halt, _, emitted), exit_on_error():
        record = run_async(lambda: halt.trip_fleet(reason, who=getpass.getuser()))
        say_problems(emitted)
    out.print(
        f"[bold red]Fleet halt active[/]: {safe(record.reason)} (by {safe(record.who)} at "
        f"{safe(record.tripped_at.isoformat())})",
        highlight=False,
    )
    out.print(
        "Every running agent on this store halts and cancels its resting orders within one "
        "poll. Run `bastion resume --fleet --reason ...` to continue."
    )


def _resume_fleet(settings: Settings, reason: str) -> None:
    with halt_path(settings) as (halt, _, emitted), exit_on_error():
        cleared = halt.resume_fleet(who=getpass.getuser(), why=reason)
        say_problems(emitted)
    if cleared is None:
        out.print("No fleet halt was active; nothing to resume.")
        return
    out.print(
        f"[bold green]Fleet resumed[/]: cleared fleet halt '{safe(cleared.reason)}' "
        f"({safe(reason)}); each agent lifts the halt it followed within one poll.",
        highlight=False,
    )


@contextlib.contextmanager
def halt_path(settings: Settings) -> Iterator[tuple[Halt, Journal, list[Event]]]:
    """The halt path of this data directory, recording into the store when it opens; the
    journal it records through (for a command's own events) and what was emitted on it."""
    from bastion.build import (  # noqa: PLC0415  lazy: see cli/app.py
        build_emergency_store,
        build_halt,
        build_journal,
    )

    clock = WallClock()
    store = build_emergency_store(settings) or try_store(settings)
    emitted: list[Event] = []
    journal = build_journal(settings, clock, store=store, also=emitted.append)
    try:
        yield build_halt(settings, clock, store=store, journal=journal), journal, emitted
    finally:
        if store is not None:
            store.close()


def say_problems(emitted: list[Event]) -> None:
    for event in emitted:
        for key, what in (
            (
                "flag_error",
                "the kill-switch flag could not be written, so an agent on this "
                "host sees the halt only through a shared store; free the disk or fix the "
                "directory's permissions and run `bastion kill` again",
            ),
            ("store_error", "not recorded in the store"),
            ("cancel_error", "could not cancel resting orders"),
        ):
            if key in event.payload:
                err.print(
                    f"[yellow]Warning[/]: {what}: {safe(str(event.payload[key]))}",
                    highlight=False,
                )
