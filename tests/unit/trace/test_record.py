"""TraceWriter and read_trace: layout, line format, durability and crash tolerance."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from bastion.clock import SimClock
from bastion.errors import BastionError, UsageError
from bastion.trace import REDACTED, TraceWriter, read_trace

# 2026-01-01T23:59:59.250Z: a quarter second before midnight.
NEAR_MIDNIGHT = 1_767_311_999.25
SECRET = "exchange-secret-9f3a"


@pytest.fixture
def clock() -> SimClock:
    """A simulated clock just before UTC midnight."""
    return SimClock(start=NEAR_MIDNIGHT)


def _writer(tmp_path: Path, clock: SimClock, run_id: str = "run-1") -> TraceWriter:
    return TraceWriter(tmp_path / "traces", run_id, clock, [SECRET])


def test_the_file_is_named_by_utc_date_and_run_and_stays_put_past_midnight(
    tmp_path: Path, clock: SimClock
) -> None:
    """traces_dir/YYYY-MM-DD/<run_id>.ndjson, dated at creation; a run past midnight keeps it."""
    with _writer(tmp_path, clock) as writer:
        assert writer.path == tmp_path / "traces" / "2026-01-01" / "run-1.ndjson"
        writer.write("before", {})
        clock.advance(1.0)
        writer.write("after", {})
    assert [r["ts"] for r in read_trace(writer.path)] == [
        "2026-01-01T23:59:59.250Z",
        "2026-01-02T00:00:00.250Z",
    ]


def test_each_write_is_one_json_line_with_the_envelope_first(
    tmp_path: Path, clock: SimClock
) -> None:
    """One write, one newline-terminated line: ts (ms, Z), seq, run_id, kind, then the payload."""
    with _writer(tmp_path, clock) as writer:
        writer.write("decision", {"intents": [{"side": "sell", "amount": 0.1}], "why": "rich"})
        clock.advance(0.0014)
        writer.write("step_completed", {"step": 1})
    raw = writer.path.read_bytes()
    assert raw.count(b"\n") == 2
    assert raw.endswith(b"\n")
    first = raw.splitlines()[0]
    assert first.startswith(b'{"ts":"2026-01-01T23:59:59.250Z","seq":1,"run_id":"run-1",')
    assert orjson.loads(first) == {
        "ts": "2026-01-01T23:59:59.250Z",
        "seq": 1,
        "run_id": "run-1",
        "kind": "decision",
        "intents": [{"side": "sell", "amount": 0.1}],
        "why": "rich",
    }
    assert read_trace(writer.path)[1]["ts"] == "2026-01-01T23:59:59.251Z"


def test_seq_counts_lines_from_one(tmp_path: Path, clock: SimClock) -> None:
    """seq increments by one per line, so it equals the line number."""
    with _writer(tmp_path, clock) as writer:
        for n in range(5):
            writer.write("tick", {"n": n})
    assert [r["seq"] for r in read_trace(writer.path)] == [1, 2, 3, 4, 5]


def test_a_line_is_readable_before_flush(tmp_path: Path, clock: SimClock) -> None:
    """write() hands the line to the OS at once: another reader sees it without flush()."""
    writer = _writer(tmp_path, clock)
    try:
        writer.write("observed", {"price": 97_000})
        assert [r["kind"] for r in read_trace(writer.path)] == ["observed"]
        writer.write("decided", {})
        assert writer.path.read_bytes().count(b"\n") == 2
    finally:
        writer.close()


def test_secrets_are_redacted_before_anything_reaches_the_file(
    tmp_path: Path, clock: SimClock
) -> None:
    """Secret values, secret-named fields and SecretStr never appear in the written bytes."""
    with _writer(tmp_path, clock) as writer:
        writer.write(
            "llm_call",
            {
                "prompt": f"use key {SECRET} please",
                "headers": {"Authorization": "Bearer other-thing", "X-Api-Key": "k-123456"},
                "settings": {"exchange_client_secret": SecretStr(SECRET)},
                "nested": [{"error": f"401 for {SECRET}"}],
                "usage": {"input_tokens": 120},
            },
        )
    raw = writer.path.read_text()
    assert SECRET not in raw
    assert "other-thing" not in raw
    assert "k-123456" not in raw
    (record,) = read_trace(writer.path)
    assert record["prompt"] == f"use key {REDACTED} please"
    assert record["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED}
    assert record["settings"] == {"exchange_client_secret": REDACTED}
    assert record["nested"] == [{"error": f"401 for {REDACTED}"}]
    assert record["usage"] == {"input_tokens": 120}


def test_payload_keys_never_overwrite_the_envelope(tmp_path: Path, clock: SimClock) -> None:
    """A payload key named like an envelope field is kept as payload_<key>, seq stays true."""
    with _writer(tmp_path, clock) as writer:
        writer.write("error", {"kind": "timeout", "seq": 99, "run_id": "run-1", "message": "m"})
    (record,) = read_trace(writer.path)
    assert (record["kind"], record["seq"], record["run_id"]) == ("error", 1, "run-1")
    assert (record["payload_kind"], record["payload_seq"]) == ("timeout", 99)
    assert "payload_run_id" not in record  # same value as the envelope: nothing to keep


def test_a_second_writer_for_the_run_appends_and_continues_seq(
    tmp_path: Path, clock: SimClock
) -> None:
    """A restarted process appends to the same file and carries on from the last seq."""
    with _writer(tmp_path, clock) as first:
        first.write("a", {})
        first.write("b", {})
    with _writer(tmp_path, clock) as second:
        assert second.path == first.path
        second.write("c", {})
    assert [(r["seq"], r["kind"]) for r in read_trace(first.path)] == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
    ]


def test_a_torn_last_line_is_ignored_by_the_reader(tmp_path: Path, clock: SimClock) -> None:
    """A crash mid-write leaves a partial line; read_trace returns every complete one."""
    with _writer(tmp_path, clock) as writer:
        writer.write("a", {})
        writer.write("b", {})
    with writer.path.open("ab") as file:
        file.write(b'{"ts":"2026-01-01T23:59:59.250Z","seq":3,"run_id":"run-1","ki')
    assert [r["kind"] for r in read_trace(writer.path)] == ["a", "b"]


def test_a_torn_line_that_happens_to_parse_is_still_ignored(tmp_path: Path) -> None:
    """Only newline-terminated lines are complete: a parseable fragment is still a fragment."""
    path = tmp_path / "t.ndjson"
    path.write_bytes(b'{"seq":1}\n{"seq":2}')
    assert read_trace(path) == [{"seq": 1}]


def test_the_next_writer_trims_a_torn_tail_and_continues(tmp_path: Path, clock: SimClock) -> None:
    """After a crash, the resumed writer drops the fragment so the file stays readable."""
    with _writer(tmp_path, clock) as writer:
        writer.write("a", {})
    with writer.path.open("ab") as file:
        file.write(b'{"ts":"2026-01-01T23:59:59.250Z","se')
    with _writer(tmp_path, clock) as resumed:
        resumed.write("b", {})
    assert [(r["seq"], r["kind"]) for r in read_trace(writer.path)] == [(1, "a"), (2, "b")]


def test_a_bad_line_in_the_middle_is_corruption(tmp_path: Path) -> None:
    """Only the last line may be torn; garbage before it raises instead of vanishing."""
    path = tmp_path / "t.ndjson"
    path.write_bytes(b'{"seq":1}\nnot json\n{"seq":3}\n')
    with pytest.raises(BastionError, match=r"t\.ndjson:2 is not a trace line"):
        read_trace(path)


def test_a_file_that_is_not_a_trace_is_refused(tmp_path: Path, clock: SimClock) -> None:
    """Appending to a file whose last line is not ours would corrupt it; the writer refuses."""
    path = tmp_path / "traces" / "2026-01-01" / "run-1.ndjson"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"hello\n")
    writer = _writer(tmp_path, clock)
    with pytest.raises(BastionError, match="not a Bastion trace"):
        writer.write("run_started", {})
    assert path.read_bytes() == b"hello\n"


def test_a_writer_that_never_wrote_leaves_no_file(tmp_path: Path, clock: SimClock) -> None:
    """A run refused at start (busy port, data directory in use) leaves no empty trace."""
    writer = _writer(tmp_path, clock)
    writer.flush()
    writer.close()
    assert not writer.path.exists()


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "", ".hidden", "x" * 200])
def test_run_ids_that_are_not_file_names_are_refused(
    tmp_path: Path, clock: SimClock, run_id: str
) -> None:
    """A run id cannot steer the trace file outside its day directory."""
    with pytest.raises(UsageError, match="run_id"):
        _writer(tmp_path, clock, run_id)


def test_flush_close_and_use_after_close(tmp_path: Path, clock: SimClock) -> None:
    """flush() fsyncs an open writer; close() is idempotent; writing after it is a UsageError."""
    writer = _writer(tmp_path, clock)
    writer.write("a", {})
    writer.flush()
    writer.close()
    writer.close()
    with pytest.raises(UsageError, match="closed"):
        writer.write("b", {})
    with pytest.raises(UsageError, match="closed"):
        writer.flush()


def test_writes_from_several_threads_keep_seq_in_file_order(
    tmp_path: Path, clock: SimClock
) -> None:
    """Concurrent writers never interleave bytes, and seq follows the order of lines."""
    with _writer(tmp_path, clock) as writer:

        def burst(name: str) -> None:
            for n in range(50):
                writer.write("tick", {"thread": name, "n": n, "pad": "x" * 500})

        threads = [threading.Thread(target=burst, args=(str(t),)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    records = read_trace(writer.path)
    assert [r["seq"] for r in records] == list(range(1, 201))
    for name in map(str, range(4)):
        assert [r["n"] for r in records if r["thread"] == name] == list(range(50))
