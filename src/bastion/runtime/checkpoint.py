"""The run's checkpoint: what a restart needs to pick up where a crashed run left off.

One small JSON file in the data directory (``checkpoint.json``), replaced whole at two moments
of every trading step, always under the run lock (one writer per directory):

* **before the step sends** (write-ahead): the labels and intents it is about to send, its
  *outbox*. A run killed between that write and the exchange's answer leaves those labels for
  the next start to look up (:mod:`bastion.runtime.recovery`): an order that reached the
  exchange is adopted, one that did not is reported, and neither is ever sent again.
* **after the step completes**: the step's number, the agent's own working state (for an agent
  that keeps one, :class:`~bastion.agent.StatefulAgent`) and an empty outbox.

Each write goes to a temporary file in the same directory, is fsynced, renamed over the old one
and the directory fsynced, so a crash at any instant leaves either the old checkpoint or the
new one, never half of either. A checkpoint that cannot be parsed (a disk that lied, a hand
edit) is reported as unreadable and the run starts without it rather than guessing: the
exchange is still asked about every open order of the crashed run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bastion.agent import OrderIntent

__all__ = ["CHECKPOINT_FILE", "Checkpoint", "CheckpointFile", "OutboxEntry", "UnreadableCheckpoint"]

CHECKPOINT_FILE = "checkpoint.json"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One order a step was about to send: its idempotency label and the intent."""

    label: str
    intent: OrderIntent

    def to_dict(self) -> dict[str, Any]:
        i = self.intent
        return {
            "label": self.label,
            "instrument": i.instrument_name,
            "direction": i.direction,
            "amount": i.amount,
            "order_type": i.order_type,
            "price": i.price,
            "reduce_only": i.reduce_only,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutboxEntry:
        price = data.get("price")
        intent = OrderIntent(
            instrument_name=str(data["instrument"]),
            direction=data["direction"],
            amount=float(data["amount"]),
            order_type="market" if data.get("order_type") == "market" else "limit",
            price=None if price is None else float(price),
            reduce_only=bool(data.get("reduce_only", False)),
        )
        return cls(label=str(data["label"]), intent=intent)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The last thing a run made durable: its last completed step, the agent's state, and the
    sends of the step in progress (empty between steps)."""

    run_id: str
    step: int
    at: str
    agent: str
    agent_state: Mapping[str, Any] | None = None
    outbox: tuple[OutboxEntry, ...] = field(default_factory=tuple)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": _VERSION,
                "run_id": self.run_id,
                "step": self.step,
                "at": self.at,
                "agent": self.agent,
                "agent_state": self.agent_state,
                "outbox": [entry.to_dict() for entry in self.outbox],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Checkpoint:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            raise ValueError(f"not a version {_VERSION} checkpoint")
        state = data.get("agent_state")
        return cls(
            run_id=str(data["run_id"]),
            step=int(data["step"]),
            at=str(data["at"]),
            agent=str(data["agent"]),
            agent_state=state if isinstance(state, dict) else None,
            outbox=tuple(OutboxEntry.from_dict(e) for e in data.get("outbox") or ()),
        )

    def sending(self, entries: Sequence[OutboxEntry]) -> Checkpoint:
        """This checkpoint with ``entries`` about to be sent."""
        return Checkpoint(
            self.run_id, self.step, self.at, self.agent, self.agent_state, tuple(entries)
        )


class UnreadableCheckpoint(Exception):
    """The checkpoint file exists but is not a checkpoint: the run starts without it."""


class CheckpointFile:
    """``checkpoint.json`` in a data directory: atomic, durable replacement; tolerant reads."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / CHECKPOINT_FILE

    def save(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint with ``checkpoint``: temp file, fsync, rename, fsync dir."""
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(checkpoint.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut
        finally:
            os.close(dir_fd)

    def load(self) -> Checkpoint | None:
        """The checkpoint on disk, None without one; :class:`UnreadableCheckpoint` if garbled."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UnreadableCheckpoint(f"{self.path}: {exc.strerror or exc}") from exc
        try:
            return Checkpoint.from_json(raw)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UnreadableCheckpoint(f"{self.path}: {exc}") from exc
