"""One writer per data directory: the run lock, and what it says about its holder.

Two runs on one data directory would share a kill-switch flag, a trace directory and the agent's
state, and both would trade. ``bastion run`` therefore holds an exclusive ``flock`` on
``data/run.lock`` for the life of the run; a second run fails at start naming the holder.

The holder's description lives beside the lock in ``data/run.json`` (pid, run id, since, where
its console listens), written atomically by rename so a reader never sees half of it. The lock
file itself is never renamed or rewritten, since a ``flock`` belongs to the open file, not the
name. The kernel drops the lock when the process dies, however it dies, while ``run.json``
stays: so "``run.json`` names a run and nobody holds the lock" is how the next start (and
``bastion status``) recognise a run that crashed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from bastion.errors import BastionError, ErrorCode

__all__ = ["Holder", "RunLock", "RunLocked", "is_held", "read_holder"]

LOCK_NAME = "run.lock"
HOLDER_NAME = "run.json"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or last held) a data directory's run lock."""

    pid: int
    run_id: str
    since: str
    host: str
    console_host: str | None = None
    console_port: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Holder:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)

    def describe(self) -> str:
        """``run 20261202T041500-ab12cd34 (pid 4242 on host-1, since 2026-12-02T04:15:00Z)``."""
        return f"run {self.run_id} (pid {self.pid} on {self.host}, since {self.since})"


class RunLocked(BastionError):
    """Another live process holds the data directory's run lock."""

    default_code = ErrorCode.CONFLICT

    def __init__(self, message: str, *, holder: Holder | None) -> None:
        super().__init__(message, observed=holder.to_dict() if holder else None)
        self.holder = holder


def read_holder(data_dir: Path) -> Holder | None:
    """The last holder ``run.json`` names, or None when there is none or it is unreadable."""
    try:
        data = orjson.loads((data_dir / HOLDER_NAME).read_bytes())
        return Holder.from_dict(data) if isinstance(data, dict) else None
    except (OSError, orjson.JSONDecodeError, TypeError):
        return None


def is_held(data_dir: Path) -> bool:
    """True while a live process holds the run lock of ``data_dir``."""
    path = data_dir / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we may just have taken
    return False


def _lock_with_retries(fd: int, attempts: int = 5, pause: float = 0.02) -> bool:
    """``flock`` exclusively, retrying briefly; False when another process keeps holding it."""
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(pause)
            continue
        return True
    return False


class RunLock:
    """The exclusive lock of one data directory, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None
        self.holder: Holder | None = None
        self.previous: Holder | None = None
        """What ``run.json`` said before we took the lock: the last run on this directory."""

    def acquire(self, holder: Holder) -> Holder | None:
        """Take the lock or raise :class:`RunLocked`; return the previous holder, if any.

        A few short retries ride out a ``bastion status`` probing the lock (:func:`is_held`
        takes it for an instant) and a holder that has locked but not yet written ``run.json``.
        """
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock_with_retries(fd):
            os.close(fd)
            current = read_holder(self.data_dir)
            who = current.describe() if current else "another process"
            raise RunLocked(
                f"data directory {self.data_dir} is in use by {who}. Fix: stop that run "
                "(bastion kill does not stop it; Ctrl-C or SIGTERM its pid), or give this one "
                "its own BASTION_DATA_DIR.",
                holder=current,
            ) from None
        self._fd = fd
        self.previous = read_holder(self.data_dir)
        self._write(holder)
        return self.previous

    def abandon(self) -> None:
        """Give the lock up after a start that failed: ``run.json`` names the previous run again.

        The run that failed to start never ran; leaving its name in ``run.json`` would hide a
        crash of the run before it from the next start.
        """
        if self._fd is None:
            return
        if self.previous is not None:
            self._write(self.previous)
        else:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / HOLDER_NAME).unlink()
        self.release()

    def update(self, **changes: Any) -> None:
        """Record more about the holder (where its console listens, once it is bound)."""
        if self.holder is None:
            return
        self._write(replace(self.holder, **changes))

    def release(self) -> None:
        """Drop the lock; ``run.json`` stays as the record of the last run. Safe twice."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _write(self, holder: Holder) -> None:
        self.holder = holder
        fd, tmp = tempfile.mkstemp(prefix=".run-", suffix=".json", dir=self.data_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(orjson.dumps(holder.to_dict(), option=orjson.OPT_INDENT_2))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.data_dir / HOLDER_NAME)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
