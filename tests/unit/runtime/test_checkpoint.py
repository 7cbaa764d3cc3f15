"""The checkpoint file: whole or not at all, whatever instant a crash picks; garbage is named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bastion.runtime.checkpoint as checkpoint_module
from bastion.agent import OrderIntent
from bastion.runtime.checkpoint import (
    Checkpoint,
    CheckpointFile,
    OutboxEntry,
    UnreadableCheckpoint,
)

SELL = OrderIntent("BTC-27DEC26-100000-C", "sell", 0.1, price=0.0125)
BUY = OrderIntent("BTC-PERPETUAL", "buy", 10.0, order_type="market", reduce_only=True)


def _checkpoint(step: int, *outbox: OutboxEntry) -> Checkpoint:
    return Checkpoint(
        run_id="r1",
        step=step,
        at="2026-12-02T10:00:00+00:00",
        agent="seller 1.0.0",
        agent_state={"asked": step, "seen": ["a", "b"]},
        outbox=outbox,
    )


def test_a_checkpoint_round_trips_with_its_outbox(tmp_path: Path) -> None:
    file = CheckpointFile(tmp_path)
    saved = _checkpoint(4, OutboxEntry("r1-5-0", SELL), OutboxEntry("r1-5-1", BUY))
    file.save(saved)
    loaded = file.load()
    assert loaded is not None
    assert loaded == saved
    assert [e.intent for e in loaded.outbox] == [SELL, BUY]


def test_no_file_is_no_checkpoint(tmp_path: Path) -> None:
    assert CheckpointFile(tmp_path).load() is None


def test_a_crash_before_the_rename_leaves_the_old_checkpoint_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new one is written and fsynced aside; dying before the rename changes nothing."""
    file = CheckpointFile(tmp_path)
    file.save(_checkpoint(1))

    def die(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # the process ends between the write and the rename

    monkeypatch.setattr(checkpoint_module.os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        file.save(_checkpoint(2, OutboxEntry("r1-3-0", SELL)))
    monkeypatch.undo()
    assert file.load() == _checkpoint(1)
    assert os.listdir(tmp_path) == ["checkpoint.json"], "no temporary file left behind"


@pytest.mark.parametrize(
    "raw",
    [b"", b"{not json", b"[]", b'{"version": 99}', b'{"version": 1, "run_id": "r1"}'],
)
def test_a_garbled_checkpoint_is_unreadable_and_names_the_file(tmp_path: Path, raw: bytes) -> None:
    file = CheckpointFile(tmp_path)
    file.path.write_bytes(raw)
    with pytest.raises(UnreadableCheckpoint, match=r"checkpoint\.json"):
        file.load()
