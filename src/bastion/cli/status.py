"""``bastion status``: the status report, asked of the console that is actually running.

The running process records where its console listens in ``data/run.json``; this command asks
that console only while the run lock is held, so a dead run's port (or someone else's process
on the default port) is never taken for the agent. The report itself is the
:class:`~bastion.ops.status.StatusService`'s, the same as the console's ``/api/status``.
"""

from __future__ import annotations

from typing import Any

from rich.progress_bar import ProgressBar
from rich.table import Table

from bastion.cli.budget import used_today_line
from bastion.cli.context import (
    ConfigOption,
    JsonOption,
    live_console,
    load,
    out,
    print_json,
    try_store,
)
from bastion.cli.terminal import safe
from bastion.clock import WallClock
from bastion.config import Settings

__all__ = ["status"]


def status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show whether the agent is trading or halted, and what it holds."""
    settings = load(config)
    data = report(settings)
    if as_json:
        print_json(data)
        return
    _render(data)


def report(settings: Settings) -> dict[str, Any]:
    """The status report as this process can assemble it, with the live console's part."""
    from bastion.build import build_halt, build_status_service  # noqa: PLC0415  lazy: see cli/app.py

    live = _live_status(settings)
    clock = WallClock()
    store = try_store(settings)
    try:
        # With the store, a halt that lapsed and lifts itself here closes its record too.
        halt = build_halt(settings, clock, store=store)
        service = build_status_service(settings, clock, halt=halt, store=store)
        data = service.report(live)
    finally:
        if store is not None:
            store.close()
    data["console"] = "reachable" if live else "not reachable"
    return data


def _live_status(settings: Settings) -> dict[str, Any] | None:
    """The running console's own report, or None when no run serves one."""
    console = live_console(settings)
    if console is None:
        return None
    from bastion.api.client import fetch_status  # noqa: PLC0415  lazy: see cli/app.py

    return fetch_status(console.host, console.port, console.token)


def _render(data: dict[str, Any]) -> None:
    if data["halted"]:
        h = data["halt"]
        title = _halt_title(reducing=h.get("state") == "reducing", enforced=bool(h.get("enforced")))
        until = _halt_until(h.get("until"), auto_resume=bool(data.get("halt_auto_resume")))
        out.print(
            f"[bold red]{title}[/]: {safe(h['reason'])} (by {safe(h['who'])} at "
            f"{safe(h['when'])}{until})",
            highlight=False,
        )
    else:
        out.print(f"[bold green]Not halted[/]; agent {safe(data['state'])}", highlight=False)
    fleet = data.get("fleet_halt")
    if fleet:
        out.print(
            f"[bold red]Fleet halt active[/]: {safe(fleet['reason'])} (by {safe(fleet['who'])} "
            f"at {safe(fleet['when'])}); every agent on this store follows it",
            highlight=False,
        )
    if data.get("run_id"):
        out.print(
            f"Run {data['run_id']}: step {data['last_step']} ({data['last_outcome']}) at "
            f"{data['last_step_at']}; equity {data['equity']} {data['currency']}",
            highlight=False,
        )
    elif data.get("last_run"):
        _render_last_run(data["last_run"])
    _render_run_state(data)
    if data.get("budget"):
        out.print(used_today_line(data["budget"]), highlight=False)
    if data.get("approvals_pending"):
        out.print(
            f"[bold yellow]Approvals pending: {data['approvals_pending']}[/] "
            "(bastion approvals to review)"
        )
    _render_tables(data)
    _render_breakers(data.get("breakers") or [])
    _render_alerts(data)


def _render_run_state(data: dict[str, Any]) -> None:
    """The trading state, the loop's phase and, for a bounded run, how far it has got."""
    from bastion.ops.status import run_progress  # noqa: PLC0415  lazy: see cli/app.py

    line = f"Trading state: [bold]{safe(data.get('trading_state', 'active'))}[/]"
    if data.get("phase"):
        line += f"; phase {safe(data['phase'])}"
    out.print(line, highlight=False)
    progress = run_progress(data)
    if progress is None:
        return
    done, total = progress
    text = f"{done}/{total} steps ({100 * done // total}%)"
    if not out.is_terminal:
        out.print(f"Progress: {text}", highlight=False)
        return
    grid = Table.grid(padding=(0, 1))
    grid.add_row("Progress", ProgressBar(total=total, completed=done, width=40), text)
    out.print(grid)


def _render_breakers(breakers: list[dict[str, Any]]) -> None:
    if not breakers:
        return
    table = Table(title="Breakers")
    for col in ("dependency", "layer", "circuit", "failures"):
        table.add_column(col)
    for b in breakers:
        state = str(b.get("state", "?"))
        colour = {"closed": "green", "open": "red"}.get(state, "yellow")
        table.add_row(
            safe(str(b.get("dependency", "?"))),
            safe(str(b.get("layer", ""))),
            f"[{colour}]{safe(state.replace('_', '-'))}[/]",
            safe(str(b.get("opened_because") or b.get("failures", ""))),
        )
    out.print(table)


def _render_alerts(data: dict[str, Any]) -> None:
    """Firing alerts (the evaluators add them to the report); "none" when nothing fires."""
    from bastion.ops.status import firing_alerts  # noqa: PLC0415  lazy: see cli/app.py

    alerts = firing_alerts(data)
    if not alerts:
        out.print("Firing alerts: none", highlight=False)
        return
    table = Table(title=f"Firing alerts ({len(alerts)})")
    table.add_column("severity", no_wrap=True)
    table.add_column("alert", no_wrap=True)
    table.add_column("summary", ratio=1)
    table.add_column("since", no_wrap=True)
    for a in alerts:
        table.add_row(
            safe(str(a.get("severity", ""))),
            safe(str(a.get("alertname") or a.get("name") or "?")),
            safe(str(a.get("summary") or ""), limit=200),
            safe(str(a.get("since") or a.get("starts_at") or "")),
        )
    out.print(table)


def _render_last_run(run: dict[str, Any]) -> None:
    line = f"Last run {run['run_id']}: {run['status']} after {run['steps']} steps"
    if run.get("last_step_at"):
        line += f" (last step at {run['last_step_at']})"
    if run["status"] == "crashed":
        out.print(f"[bold yellow]{line}[/]", highlight=False)
        out.print(f"  {safe(run.get('note', 'its process died without finishing'))}")
        return
    out.print(line, highlight=False)


def _render_tables(data: dict[str, Any]) -> None:
    for title, rows, cols in (
        ("Positions", data.get("positions", []), ("instrument", "size", "mark_price")),
        (
            "Open orders",
            data.get("open_orders", []),
            ("order_id", "instrument", "direction", "amount", "price", "label"),
        ),
    ):
        if rows:
            table = Table(title=title)
            for col in cols:
                table.add_column(col)
            for row in rows:
                table.add_row(*(safe(str(row[c])) for c in cols))
            out.print(table)


def _halt_until(until: object, *, auto_resume: bool) -> str:
    """When the halt lapses and what happens then; nothing for a halt only a person lifts."""
    if not until:
        return ""
    then = "trading resumes by itself" if auto_resume else "then a person resumes"
    return f"; until {safe(str(until))}, {then}"


def _halt_title(*, reducing: bool, enforced: bool) -> str:
    pending = "resting orders not yet cancelled"
    if reducing:
        return "REDUCING (reduce-only orders)" if enforced else f"REDUCING ({pending})"
    return "HALTED" if enforced else f"HALTING ({pending})"
