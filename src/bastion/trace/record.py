"""Decision traces: one NDJSON file per run, one line per event, redacted before it is written.

A trace is the audit and replay record of a run, so it must survive the process dying at any
instant. Each line goes to the operating system in a single ``write`` on an ``O_APPEND``
descriptor as soon as it is produced (no Python buffer holds it), so a crash of Bastion loses
nothing already written; :meth:`TraceWriter.flush` (``fsync``, once per step) makes it survive a
crash of the machine too. The worst a crash can leave is a torn last line, which
:func:`read_trace` ignores and the next writer for the run trims away.

Lines look like ``{"ts": "2026-01-01T00:00:00.000Z", "seq": 1, "run_id": ..., "kind": ...,
"trace_id": ..., "span_id": ..., ...payload}``. ``seq`` counts from 1 and equals the line
number; a second writer for the same run (a restarted process) appends to the same file and
carries on from the last ``seq``. ``trace_id`` (32 hex digits) and ``span_id`` (16) name the
OpenTelemetry span the event happened in (:mod:`bastion.telemetry.tracing`), so a step's lines,
its log lines and its spans share one trace id; they are absent when no span was current
(tracing disabled, or an event outside a run). A payload key that would overwrite one of the
envelope's is kept as ``payload_<key>``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from bastion.clock import Clock
from bastion.errors import BastionError, ErrorCode, UsageError
from bastion.trace.redact import Redactor

__all__ = ["TraceWriter", "iter_trace", "read_trace"]

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_TAIL_CHUNK = 64 * 1024


class TraceWriter:
    """Appends redacted NDJSON lines to ``traces_dir/YYYY-MM-DD/<run_id>.ndjson``.

    The date is the UTC date on ``clock`` when the writer is created, so a run that crosses
    midnight keeps one file. Safe to call from several threads: ``seq`` follows file order.
    """

    def __init__(self, traces_dir: Path, run_id: str, clock: Clock, secrets: Sequence[str]) -> None:
        """Name the run's trace file; ``secrets`` are redacted from every line.

        The file is opened (or created) at the first write, so a run refused at start (a busy
        console port, a data directory in use) leaves no empty trace behind.
        """
        if not _RUN_ID.fullmatch(run_id):
            raise UsageError(
                f"run_id {run_id!r} cannot name a trace file: use letters, digits, '.', '_', '-'"
            )
        self.run_id = run_id
        self._clock = clock
        self._redactor = Redactor(secrets)
        day = datetime.fromtimestamp(clock.time(), tz=UTC).date().isoformat()
        self.path = Path(traces_dir) / day / f"{run_id}.ndjson"
        self._fd: int | None = None
        self._closed = False
        self._seq = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        """Open the file now (it is opened at the first write otherwise); resumes its ``seq``."""
        with self._lock:
            self._require_open()

    def write(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        span: tuple[str, str] | None = None,
    ) -> None:
        """Redact ``payload`` and append it as one line, handed to the OS before returning.

        ``span`` is the ``(trace_id, span_id)`` the event belongs to, in hex.
        """
        body = self._redactor.redact(payload)
        with self._lock:
            fd = self._require_open()
            self._seq += 1
            line = self._encode(kind, body, span)
            _write_all(fd, line)

    def flush(self) -> None:
        """``fsync`` the file: everything written so far survives a power cut."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
            elif self._closed:
                self._require_open()  # raises: flushing a closed writer is a bug

    def close(self) -> None:
        """Flush and close; closing twice is harmless."""
        with self._lock:
            self._closed = True
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _encode(self, kind: str, body: dict[Any, Any], span: tuple[str, str] | None) -> bytes:
        now = datetime.fromtimestamp(self._clock.time(), tz=UTC)
        envelope: dict[Any, Any] = {
            "ts": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "seq": self._seq,
            "run_id": self.run_id,
            "kind": kind,
        }
        if span is not None:
            envelope["trace_id"], envelope["span_id"] = span
        record = dict(envelope)
        for key, value in body.items():
            if key not in envelope:
                record[key] = value
            elif value != envelope[key]:
                record[f"payload_{key}"] = value
        # The redactor leaves only types orjson writes natively, so this cannot fail.
        return orjson.dumps(record, option=_OPTIONS)

    def _require_open(self) -> int:
        if self._fd is not None:
            return self._fd
        if self._closed:
            raise UsageError(f"trace writer for run {self.run_id!r} is closed")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        if created:
            _fsync_dir(self.path.parent)
        self._seq = self._resume(self._fd)
        return self._fd

    def _resume(self, fd: int) -> int:
        """Trim a torn last line left by a crash and return the last ``seq`` in the file."""
        end, last = _last_complete_line(fd)
        if end < os.fstat(fd).st_size:
            os.ftruncate(fd, end)
        if not last:
            return 0
        try:
            return int(orjson.loads(last)["seq"])
        except (ValueError, KeyError, TypeError):
            os.close(fd)
            self._fd = None
            raise BastionError(
                f"{self.path} does not end with a trace line, so it is not a Bastion trace. "
                "Fix: move it aside and start again.",
                code=ErrorCode.INVALID_RESPONSE,
                dependency="trace",
            ) from None


def read_trace(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a trace, in order; a torn last line (a crash mid-write) is ignored.

    Only the last line can be torn: a line that does not parse anywhere else is corruption and
    raises :class:`~bastion.errors.BastionError`.
    """
    return list(iter_trace(path))


def iter_trace(path: Path) -> Iterator[dict[str, Any]]:
    """:func:`read_trace` one line at a time, for traces too long to hold parsed in memory.

    A day of a two-second loop is tens of thousands of lines; a replay reads them as it goes.
    """
    with Path(path).open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.endswith(b"\n"):
                return  # torn by a crash mid-write: only the last line can be
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                raise BastionError(
                    f"{path}:{number} is not a trace line. Fix: restore the file from a backup.",
                    code=ErrorCode.INVALID_RESPONSE,
                    dependency="trace",
                )
            yield record


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _last_complete_line(fd: int) -> tuple[int, bytes]:
    """Where complete lines end, and the last complete line (empty if there is none)."""
    pos = os.fstat(fd).st_size
    buffer = b""
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        buffer = os.pread(fd, step, pos) + buffer
        last_newline = buffer.rfind(b"\n")
        if last_newline == -1:
            continue
        previous = buffer.rfind(b"\n", 0, last_newline)
        if previous != -1 or pos == 0:
            return pos + last_newline + 1, buffer[previous + 1 : last_newline]
    return 0, b""


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
