"""Reading a trace back by step, and finding the traces a replay is asked for."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from bastion.errors import BastionError, ErrorCode
from bastion.trace.replay import find_traces, read_run


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"".join(orjson.dumps({"seq": n, **line}) + b"\n" for n, line in enumerate(lines, 1))
    )
    return path


def test_lines_without_a_step_belong_to_the_step_in_progress(tmp_path: Path) -> None:
    """The chain's llm_call / llm_escalated lines attach to the step that was deciding."""
    path = _write(
        tmp_path / "run-1.ndjson",
        [
            {"kind": "run_started", "run_id": "run-1", "agent": "a", "agent_version": "2"},
            {"kind": "trading_resumed", "step": 1},
            {"kind": "observation", "step": 1},
            {"kind": "llm_call", "text": "first"},
            {"kind": "llm_fallback"},
            {"kind": "llm_escalated", "approval_id": "7"},
            {"kind": "decision", "step": 1, "intents": []},
            {"kind": "step_completed", "step": 1},
            {"kind": "observation", "step": 2},
            {"kind": "step_failed", "step": 2, "error": {"kind": "budget_exhausted"}},
            {"kind": "step_completed", "step": 2},
        ],
    )
    run = read_run(path)
    assert (run.run_id, run.agent) == ("run-1", "a 2")
    first, second = run.steps
    assert [a["kind"] for a in first.answers] == ["llm_call", "llm_escalated"]
    assert first.first_line == 2
    assert first.observation is not None
    assert second.failure == {"kind": "budget_exhausted"}
    assert second.answers == []


def test_a_step_that_is_not_a_whole_number_names_the_line(tmp_path: Path) -> None:
    """A hand-edited step number is refused with the file and line, not a crash later."""
    path = _write(tmp_path / "r.ndjson", [{"kind": "observation", "step": "one"}])
    with pytest.raises(BastionError, match=r"r\.ndjson:1 \(observation\) has step 'one'"):
        read_run(path)


def test_find_traces_by_day_and_by_run_id(tmp_path: Path) -> None:
    """A day lists its runs; a run id is found under any day, or under the day given."""
    a = _write(tmp_path / "2026-12-01" / "run-a.ndjson", [])
    b = _write(tmp_path / "2026-12-02" / "run-b.ndjson", [])
    assert find_traces(tmp_path, day=date(2026, 12, 1)) == [a]
    assert find_traces(tmp_path, day=None, run_ids=["run-b", "run-a"]) == [b, a]
    with pytest.raises(BastionError) as missing:
        find_traces(tmp_path, day=date(2026, 12, 1), run_ids=["run-b"])
    assert missing.value.code is ErrorCode.NOT_FOUND
    assert find_traces(tmp_path / "nowhere", day=None) == []


@pytest.mark.parametrize("run_id", ["../2026-12-01/run-a", "/etc/passwd", "", ".hidden"])
def test_a_run_id_cannot_reach_outside_the_traces_directory(tmp_path: Path, run_id: str) -> None:
    """Run ids are checked against the names trace files get, so no path escapes."""
    with pytest.raises(BastionError) as refused:
        find_traces(tmp_path, day=None, run_ids=[run_id])
    assert refused.value.code is ErrorCode.BAD_REQUEST
