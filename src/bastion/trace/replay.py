"""A recorded run read back as steps: what a replay needs from a trace, and where traces are.

A trace is a flat list of lines (:mod:`bastion.trace.record`); a replay wants them by step:
the observation the agent saw, the answers its LLM calls got, the decision it made, the
verdicts the risk review gave, and how the step ended. :func:`read_run` groups the lines:
a line with a ``step`` starts or continues that step, and a line without one (``llm_call``,
``llm_escalated``, ``llm_fallback``, emitted by the fallback chain while the agent decides)
belongs to the step in progress, which the trace's order makes unambiguous: the loop runs one
step at a time.

Only parsing lives here, on plain dictionaries; rebuilding the market types and deciding again
is :mod:`bastion.ops.replay`'s.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from bastion.errors import BastionError, ErrorCode
from bastion.trace.record import iter_trace

__all__ = [
    "ANSWER_KINDS",
    "RecordedRun",
    "RecordedStep",
    "find_traces",
    "read_run",
    "stream_run",
]

ANSWER_KINDS = frozenset({"llm_call", "llm_escalated"})
"""The lines that are the answer to one ``ctx.llm.complete`` call (a model, the cache, a person)."""

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(slots=True)
class RecordedStep:
    """One step's lines, by role. ``failure`` is a ``step_failed`` line's ``error``."""

    step: int
    observation: Mapping[str, Any] | None = None
    decision: Mapping[str, Any] | None = None
    verdicts: list[Mapping[str, Any]] = field(default_factory=list)
    answers: list[Mapping[str, Any]] = field(default_factory=list)
    failure: Mapping[str, Any] | None = None
    timed_out: bool = False
    completed: Mapping[str, Any] | None = None
    orders: list[Mapping[str, Any]] = field(default_factory=list)
    """The step's ``order_*`` lines (sends, fills, refusals, skips), in order."""
    approvals: list[Mapping[str, Any]] = field(default_factory=list)
    """Its ``approval_resolved`` lines and the ``approval_requested`` ones emitted while it ran
    (those carry no step)."""
    first_line: int = 0
    """The line number (``seq``) where the step starts, for messages that point into the file."""


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """A trace by step, with its ``run_started`` line (agent, version and public settings).

    ``steps`` is a tuple from :func:`read_run`, or a one-pass iterator from
    :func:`stream_run` (which raises, as it reaches it, what :func:`read_run` raises at once).
    """

    run_id: str
    path: Path
    started: Mapping[str, Any] | None
    steps: Iterable[RecordedStep]

    @property
    def agent(self) -> str:
        """``name version`` of the agent that recorded the run, or ``unknown``."""
        if self.started is None:
            return "unknown"
        return f"{self.started.get('agent', '?')} {self.started.get('agent_version', '?')}"

    @property
    def settings(self) -> Mapping[str, Any]:
        """The run's public settings (secrets masked), empty when the trace lacks them."""
        data = self.started.get("settings") if self.started is not None else None
        return data if isinstance(data, Mapping) else {}


def read_run(path: Path) -> RecordedRun:
    """The run recorded in ``path``, by step, all read now.

    A torn last line (a crash mid-write) is ignored, as
    :func:`~bastion.trace.record.read_trace` does; any other line that is not a trace line, or
    a step line without a whole-number ``step``, raises :class:`~bastion.errors.BastionError`
    naming the file and the line.
    """
    run = stream_run(path)
    return RecordedRun(run.run_id, run.path, run.started, tuple(run.steps))


def stream_run(path: Path) -> RecordedRun:
    """The run recorded in ``path``, its steps read one at a time as they are iterated.

    A day's trace parsed whole would take gigabytes; a replay holds one step at a time.
    Lines up to the first step (``run_started``) are read now.
    """
    path = Path(path)
    lines = iter_trace(path)
    started: Mapping[str, Any] | None = None
    head: list[tuple[int, Mapping[str, Any]]] = []
    number = 0
    for number, line in enumerate(lines, start=1):
        if line.get("kind") == "run_started" and started is None:
            started = line
        if line.get("step") is not None:
            head.append((number, line))
            break
    rest = enumerate(lines, start=number + 1)
    run_id = str(started.get("run_id", path.stem)) if started is not None else path.stem
    return RecordedRun(run_id, path, started, _steps(path, itertools.chain(head, rest)))


def _steps(path: Path, lines: Iterable[tuple[int, Mapping[str, Any]]]) -> Iterator[RecordedStep]:
    """Group numbered lines into steps, each yielded once the next one starts."""
    current: RecordedStep | None = None
    for number, line in lines:
        kind = line.get("kind")
        if kind == "run_started":  # a restarted writer appends to the same file
            if current is not None:
                yield current
            current = None
            continue
        if line.get("step") is None:  # an approval withdrawn as the run ended has step None
            if kind in ANSWER_KINDS and current is not None:
                current.answers.append(line)
            elif kind == "approval_requested" and current is not None:
                current.approvals.append(line)
            continue
        step = line["step"]
        if not isinstance(step, int) or isinstance(step, bool):
            raise BastionError(
                f"{path}:{number} ({kind}) has step {step!r}, not a whole number. "
                "Fix: restore the file from a backup, or leave this run out of the replay.",
                code=ErrorCode.INVALID_RESPONSE,
                dependency="trace",
            )
        restarted = kind == "observation" and current is not None and current.observation
        if current is None or current.step != step or restarted:
            if current is not None:
                yield current
            current = RecordedStep(step=step, first_line=number)
        _place(current, kind, line)
    if current is not None:
        yield current


def _place(step: RecordedStep, kind: Any, line: Mapping[str, Any]) -> None:
    if kind == "observation":
        step.observation = line
    elif kind == "decision":
        step.decision = line
    elif kind == "risk_verdict":
        step.verdicts.append(line)
    elif kind == "step_failed":
        error = line.get("error")
        step.failure = error if isinstance(error, Mapping) else {"kind": "unknown"}
    elif kind == "step_timeout":
        step.timed_out = True
    elif kind == "step_completed":
        step.completed = line
    elif kind == "approval_resolved":
        step.approvals.append(line)
    elif isinstance(kind, str) and kind.startswith("order_"):
        step.orders.append(line)


def find_traces(traces_dir: Path, *, day: date | None, run_ids: Iterable[str] = ()) -> list[Path]:
    """The trace files to replay: ``run_ids`` (on ``day`` only, when given), else all of ``day``.

    A run id is checked against the names a trace writer gives files, so it cannot reach
    outside ``traces_dir``. A run id with no trace raises
    :class:`~bastion.errors.BastionError` (``not_found``) saying where it looked.
    """
    root = Path(traces_dir)
    days = [root / day.isoformat()] if day is not None else _day_dirs(root)
    wanted = list(dict.fromkeys(run_ids))
    if not wanted:
        return sorted(p for d in days for p in d.glob("*.ndjson") if p.is_file())
    found: list[Path] = []
    for run_id in wanted:
        if not _RUN_ID.fullmatch(run_id):
            raise BastionError(
                f"{run_id!r} is not a run id (letters, digits, '.', '_', '-'). "
                "Fix: copy the run id from `bastion status` or a trace file's name.",
                code=ErrorCode.BAD_REQUEST,
            )
        matches = [d / f"{run_id}.ndjson" for d in days if (d / f"{run_id}.ndjson").is_file()]
        if not matches:
            where = days[0] if day is not None else root
            raise BastionError(
                f"no trace for run {run_id} under {where}. Fix: check the run id and --date "
                "(a run's trace is filed under the UTC day it started).",
                code=ErrorCode.NOT_FOUND,
            )
        found.extend(matches)
    return found


def _day_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _DAY.fullmatch(p.name))
