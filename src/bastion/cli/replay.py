"""``bastion replay``: does the agent still decide what it decided? (the replay audit).

Exit codes: 0 every step replayed as recorded, 1 the audit is incomplete (a trace could not
be read, no trace on the day asked, a live model failed), 2 bad usage or configuration,
3 drift (the report says where). The logic is :mod:`bastion.ops.replay`'s.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bastion.cli.context import ConfigOption, JsonOption, err, load, out, print_json, run_async
from bastion.cli.terminal import safe
from bastion.clock import WallClock
from bastion.config import Settings
from bastion.telemetry.logs import configure_logging

if TYPE_CHECKING:
    from bastion.ops.replay import ReplayReport

__all__ = ["replay"]

_MODES = ("recorded", "live")


def replay(  # noqa: PLR0917  typer maps each option to a parameter
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Runs to replay (default: every run of --date).",
            metavar="[RUN_ID]...",
            show_default=False,
        ),
    ] = None,
    day: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="yesterday, today or YYYY-MM-DD (UTC): the day the runs started. "
            "Default: yesterday, or any day for the RUN_IDs given.",
        ),
    ] = None,
    llm: Annotated[
        str,
        typer.Option(
            "--llm",
            help="recorded: answer the agent's LLM calls from the trace; live: ask the "
            "configured model again (catches model drift; costs tokens).",
        ),
    ] = "recorded",
    agent_version: Annotated[
        str | None,
        typer.Option(
            "--agent-version",
            help="The version under test: refuse to replay unless the configured agent is it "
            "(the deploy gate).",
        ),
    ] = None,
    report: Annotated[
        Path, typer.Option("--report", help="Where to write the Markdown report.")
    ] = Path("replay-report.md"),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay recorded runs with the current agent and settings; write replay-report.md.

    Exit codes: 0 no drift, 1 incomplete (a trace unreadable, nothing to replay, a live model
    failed), 2 bad usage or configuration, 3 drift.
    """
    if llm not in _MODES:
        raise typer.BadParameter(f"{llm!r}: use recorded or live", param_hint="--llm")
    wanted = list(run_ids or [])
    on_day = _parse_day(day) if day is not None else None
    if on_day is None and not wanted:
        on_day = _parse_day("yesterday")
    settings = load(config)
    configure_logging("WARNING", settings.secret_values(), fmt=settings.log_format)
    if agent_version is not None:
        _require_version(settings, agent_version)
    result = run_async(lambda: _replay(settings, on_day, wanted, llm, agent_version))
    _write(report, result.to_markdown())
    if as_json:
        print_json({**result.to_dict(), "report": str(report)})
    else:
        _render(result, report)
    raise typer.Exit(result.exit_code)


def _parse_day(text: str) -> date:
    today = WallClock().now().date()
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a day: use yesterday, today or YYYY-MM-DD", param_hint="--date"
        ) from None


def _require_version(settings: Settings, wanted: str) -> None:
    """The deploy gate replays the candidate, so a different installed agent is a usage error."""
    from bastion.build import build_agent  # noqa: PLC0415  lazy: see cli/app.py

    agent = build_agent(settings)
    if agent.version != wanted:
        err.print(
            f"--agent-version {safe(wanted)}: the configured agent is {safe(agent.name)} "
            f"{safe(agent.version)}. Fix: install the candidate (or set BASTION_AGENT to it) "
            "in this environment, then replay again.",
            style="bold red",
            highlight=False,
        )
        raise typer.Exit(2)


async def _replay(
    settings: Settings, on_day: date | None, run_ids: list[str], llm: str, candidate: str | None
) -> ReplayReport:
    from bastion.build import build_replay_llm, build_replayer  # noqa: PLC0415  lazy
    from bastion.ops.replay import ReplayReport  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.trace.replay import find_traces  # noqa: PLC0415  lazy: see cli/app.py

    paths = find_traces(settings.traces_dir, day=on_day, run_ids=run_ids)
    if not paths:
        where = settings.traces_dir / (on_day.isoformat() if on_day else "")
        return ReplayReport(
            llm="live" if llm == "live" else "recorded",
            candidate=candidate,
            note=f"no trace under {where}: nothing was replayed",
        )
    if llm != "live":
        return await build_replayer(settings).replay(paths, candidate=candidate)
    from bastion.store import Store  # noqa: PLC0415  lazy: see cli/app.py

    store = Store.open(settings.resolved_store_url)
    chain = build_replay_llm(settings, store, WallClock())
    try:
        replayer = build_replayer(settings, llm="live", live_llm=chain)
        return await replayer.replay(paths, candidate=candidate)
    finally:
        if chain is not None:
            await chain.aclose()
        store.close()


def _write(path: Path, text: str) -> None:
    """Replace the report whole: a reader never sees half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(text, encoding="utf-8")
    staging.replace(path)


def _render(result: ReplayReport, report: Path) -> None:
    for run in result.runs:
        line = (
            f"{safe(run.run_id)}: {run.replayed} of {run.steps} steps replayed, "
            f"{run.matches} match, {len(run.drifts)} drift"
        )
        if run.error is not None:
            line += f" [red]error[/]: {safe(run.error)}"
        out.print(line, highlight=False)
        for drift in run.drifts[:5]:
            out.print(f"  step {drift.step}: {safe(drift.drifts[0])}", highlight=False)
    if result.note:
        out.print(f"[yellow]{safe(result.note)}[/]", highlight=False)
    word = {0: "[green]no drift[/]", 1: "[red]INCOMPLETE[/]", 3: "[red]DRIFT[/]"}
    out.print(
        f"{word[result.exit_code]}: {result.steps_replayed} steps in {result.elapsed_s:.2f} s; "
        f"report: {safe(str(report))} (exit {result.exit_code})",
        highlight=False,
    )
