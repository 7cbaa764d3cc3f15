"""Budget admissions per second against a plain conditional UPDATE, in the same run; prints JSON.

Each configuration (SQLite with 1, 8 and 64 tasks in one process and with 4 processes;
PostgreSQL with 1 and 8 processes) starts its worker processes once, on a fresh database, and
then runs rounds on command, A, B and C in turn:

* A, admission: ``Budget.reserve(Cost(10))`` then ``Reservation.commit(Cost(10))`` for one agent
  whose daily limit is far above what a round can spend, so nothing is refused;
* B, baseline: ``UPDATE bench_budget SET spent = spent + :x WHERE id = 1 AND spent + :x <=
  :limit`` in its own transaction (``BEGIN IMMEDIATE`` on SQLite, as the store writes) through
  the driver, on connections the store's engine configured, called the way the budget calls its
  store (``asyncio.to_thread``) by the same tasks and processes;
* C, direct: the same UPDATE in a plain blocking loop on one connection per process, with no
  event loop or thread hop (one loop per process whatever the tasks): the ceiling of the store
  and driver themselves, the harder baseline.

Rounds run A, B, C, A, B, C, ...; every worker waits on one barrier, the parent then fixes a
window [t0, t1] on the machine's monotonic clock, and each worker counts only what completes
inside it, so the processes' counts add up over one common window. ``share_max_over_min`` is
the largest process's count over the smallest. After the rounds, a tight round runs for a fresh
agent whose limit is about half of what the workers admit in a window: ``overspend_tokens`` is
what was committed above the limit (by the workers' own count and by the store's), and must be
0; ``tight_refused`` > 0 shows the limit was reached.

Figures are min/median/max over ``--repeats`` rounds of each; ``ratio`` is A over B and
``ratio_vs_direct`` A over C, each within one repeat.
The store's settings (SQLite journal_mode and synchronous; PostgreSQL fsync, synchronous_commit
and wal_sync_method) and the data directory's file system are printed beside the figures.
PostgreSQL is a throwaway cluster started with fsync and synchronous_commit on, PostgreSQL's
defaults (pytest_postgresql's executor passes ``-F``, fsync off, so they are set explicitly after
it; ``--pg-fsync-off`` turns both off, and the settings say so); it is skipped, with a reason,
when ``pg_ctl`` is not on PATH.

Usage: ``.venv/bin/python benchmarks/budget.py [--seconds S] [--repeats N] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from _support import free_port, spread, sqlite_settings
from bastion.clock import SimClock
from bastion.errors import BudgetExhausted
from bastion.guard.budget import Budget, BudgetLimits
from bastion.llm.pricing import Cost
from bastion.store import Store

COST = 10
UNLIMITED = 10**15
LEAD_SECONDS = 0.3  # between the barrier and t0: every worker is running before the window opens
WARM_UP = 20
_UPDATE_QMARK = "UPDATE bench_budget SET spent = spent + ? WHERE id = 1 AND spent + ? <= ?"
_UPDATE_FORMAT = "UPDATE bench_budget SET spent = spent + %s WHERE id = 1 AND spent + %s <= %s"


@dataclass(frozen=True, slots=True)
class Config:
    """One row of the table: a backend, how many processes, how many tasks in each."""

    name: str
    backend: str
    processes: int
    tasks: int

    @property
    def label(self) -> str:
        if self.processes == 1:
            return f"{self.backend}, {self.tasks} task{'s' * (self.tasks > 1)} in 1 process"
        return f"{self.backend}, {self.processes} processes of {self.tasks} task"


CONFIGS = (
    Config("sqlite_1_task", "sqlite", 1, 1),
    Config("sqlite_8_tasks", "sqlite", 1, 8),
    Config("sqlite_64_tasks", "sqlite", 1, 64),
    Config("sqlite_4_processes", "sqlite", 4, 1),
    Config("postgresql_1_process", "postgresql", 1, 1),
    Config("postgresql_8_processes", "postgresql", 8, 1),
)


# --- worker processes -------------------------------------------------------------------------


def _worker(url: str, tasks: int, pipe: Any, barrier: Any, window: Any) -> None:
    """Open the store, warm up, then run each round the parent asks for until told to stop."""
    try:
        with Store.open(url) as store, asyncio.Runner() as runner:
            ops = _Ops(store)
            runner.run(ops.warm_up())
            pipe.send(("ready", None))
            while True:
                kind, limit = pipe.recv()
                if kind == "stop":
                    return
                barrier.wait()
                barrier.wait()  # the parent has set the window between the two waits
                t0, t1 = window[0], window[1]
                late = time.monotonic() > t0
                if kind == "direct":
                    result = ops.direct(t0, t1)
                else:
                    result = runner.run(ops.round(kind, tasks, t0, t1, limit))
                pipe.send(("done", {**result, "late": late}))
    except BaseException as exc:  # the parent is waiting on the pipe: tell it why, then stop
        pipe.send(("error", f"{type(exc).__name__}: {exc}"[:500]))
        raise


class _Ops:
    """What one worker process measures: admissions and the plain UPDATE."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._sqlite = store.engine.dialect.name == "sqlite"
        self._local = threading.local()
        self._budget = self._make_budget("bench", UNLIMITED)
        self._update = _UPDATE_QMARK if self._sqlite else _UPDATE_FORMAT

    def _make_budget(self, agent: str, limit: int) -> Budget:
        return Budget(
            self._store, clock=SimClock(), agent=agent, limits=BudgetLimits(daily_tokens=limit)
        )

    async def warm_up(self) -> None:
        for _ in range(WARM_UP):
            await self._admit(self._budget)
            await self._baseline()

    async def round(
        self, kind: str, tasks: int, t0: float, t1: float, limit: int | None
    ) -> dict[str, int | list[int]]:
        budget = self._make_budget("tight", limit) if limit is not None else self._budget
        op: Callable[[], Awaitable[bool]]
        op = self._baseline if kind == "baseline" else lambda: self._admit(budget)
        refused = [0] * tasks

        async def one(index: int) -> int:
            counted = 0
            while True:
                done = await op()
                now = time.monotonic()
                # the tight round counts every commit: its total is checked against the limit
                if limit is not None or t0 <= now <= t1:
                    counted += done
                    refused[index] += not done
                if now > t1:
                    return counted

        counts = await asyncio.gather(*(one(i) for i in range(tasks)))
        return {"counts": list(counts), "refused": sum(refused)}

    def direct(self, t0: float, t1: float) -> dict[str, int | list[int]]:
        """The UPDATE in a blocking loop on this thread: no event loop, no thread hop."""
        counted = 0
        while True:
            done = self._update_once()
            now = time.monotonic()
            if t0 <= now <= t1:
                counted += done
            if now > t1:
                return {"counts": [counted], "refused": 0}

    async def _admit(self, budget: Budget) -> bool:
        try:
            reservation = await budget.reserve(Cost(COST))
        except BudgetExhausted:
            return False
        await reservation.commit(Cost(COST))
        return True

    async def _baseline(self) -> bool:
        return await asyncio.to_thread(self._update_once)

    def _update_once(self) -> bool:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:  # one connection per executor thread, configured by the store's engine
            self._local.connection = self._store.engine.raw_connection()
            cursor = self._local.cursor = self._local.connection.cursor()
        if self._sqlite:
            cursor.execute("BEGIN IMMEDIATE")
            cursor.execute(self._update, (COST, COST, UNLIMITED))
            done = cursor.rowcount == 1
            cursor.execute("COMMIT")
        else:
            cursor.execute(self._update, (COST, COST, UNLIMITED))
            done = cursor.rowcount == 1
            self._local.connection.commit()
        return done


# --- the parent -------------------------------------------------------------------------------


class _Fleet:
    """The worker processes of one configuration and the barrier they start rounds on."""

    def __init__(self, url: str, config: Config) -> None:
        context = multiprocessing.get_context("spawn")
        self._barrier = context.Barrier(config.processes + 1, timeout=120)
        self._window = context.Array("d", 2, lock=False)
        self._pipes = []
        self._procs = []
        for _ in range(config.processes):
            mine, theirs = context.Pipe()
            proc = context.Process(
                target=_worker, args=(url, config.tasks, theirs, self._barrier, self._window)
            )
            proc.start()
            self._pipes.append(mine)
            self._procs.append(proc)
        for pipe in self._pipes:
            self._receive(pipe, "ready")

    def round(self, kind: str, seconds: float, limit: int | None = None) -> list[dict[str, Any]]:
        for pipe in self._pipes:
            pipe.send((kind, limit))
        self._barrier.wait()
        t0 = time.monotonic() + LEAD_SECONDS
        self._window[0], self._window[1] = t0, t0 + seconds
        self._barrier.wait()
        return [self._receive(pipe, "done") for pipe in self._pipes]

    def close(self) -> None:
        for pipe, proc in zip(self._pipes, self._procs, strict=True):
            if proc.is_alive():
                pipe.send(("stop", None))
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()

    @staticmethod
    def _receive(pipe: Any, expected: str) -> Any:
        if not pipe.poll(300):
            raise RuntimeError("a worker did not answer within 300 s")
        kind, payload = pipe.recv()
        if kind != expected:
            raise RuntimeError(f"worker failed: {payload}")
        return payload


def _share(results: list[dict[str, Any]]) -> float | None:
    totals = [sum(r["counts"]) for r in results]
    if len(totals) < 2 or min(totals) == 0:
        return None
    return max(totals) / min(totals)


def _prepare(store: Store) -> None:
    """The baseline's one-row table, beside the store's own tables in the same database."""
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE bench_budget (id INTEGER PRIMARY KEY, spent BIGINT NOT NULL)"
        )
        conn.exec_driver_sql("INSERT INTO bench_budget (id, spent) VALUES (1, 0)")


def _settings(store: Store) -> dict[str, str]:
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            version = str(conn.exec_driver_sql("select sqlite_version()").scalar())
            return {**sqlite_settings(store.engine), "sqlite_version": version}
        names = ("fsync", "synchronous_commit", "wal_sync_method", "full_page_writes")
        found = {name: str(conn.exec_driver_sql(f"SHOW {name}").scalar()) for name in names}
        found["server_version"] = str(conn.exec_driver_sql("SHOW server_version").scalar())
        return found


def _measure(url: str, config: Config, seconds: float, repeats: int) -> dict[str, Any]:
    with Store.open(url) as store:
        _prepare(store)
        settings = _settings(store)
    started = time.monotonic()
    fleet = _Fleet(url, config)
    try:
        admit: list[float] = []
        baseline: list[float] = []
        shares: list[float] = []
        baseline_shares: list[float] = []
        direct: list[float] = []
        direct_shares: list[float] = []
        late = 0
        for _ in range(repeats):  # A, B, C, A, B, C, ...: all see the same drift of the machine
            for kind, rates, kind_shares in (
                ("admit", admit, shares),
                ("baseline", baseline, baseline_shares),
                ("direct", direct, direct_shares),
            ):
                results = fleet.round(kind, seconds)
                late += sum(r["late"] for r in results)
                rates.append(sum(sum(r["counts"]) for r in results) / seconds)
                share = _share(results)
                if share is not None:
                    kind_shares.append(share)
        limit = COST * max(50, int(statistics.median(admit) * seconds / 2))
        tight = fleet.round("tight", seconds, limit)
    finally:
        fleet.close()
    committed = COST * sum(sum(r["counts"]) for r in tight)
    with Store.open(url) as store:
        budget = Budget(
            store, clock=SimClock(), agent="tight", limits=BudgetLimits(daily_tokens=limit)
        )
        stored = budget.usage_today().tokens_used_today
    ratios = [a / b for a, b in zip(admit, baseline, strict=True)]
    return {
        "config": config.label,
        "processes": config.processes,
        "tasks_per_process": config.tasks,
        "admissions_per_second": spread(admit),
        "baseline_updates_per_second": spread(baseline),
        "ratio": spread(ratios, 4),
        "direct_updates_per_second": spread(direct),
        "ratio_vs_direct": spread([a / c for a, c in zip(admit, direct, strict=True)], 4),
        "share_max_over_min": spread(shares, 2) if shares else None,
        "baseline_share_max_over_min": spread(baseline_shares, 2) if baseline_shares else None,
        "direct_share_max_over_min": spread(direct_shares, 2) if direct_shares else None,
        "tight_limit_tokens": limit,
        "tight_committed_tokens": committed,
        "tight_stored_tokens": stored,
        "tight_refused": sum(r["refused"] for r in tight),
        "overspend_tokens": max(0, max(committed, stored) - limit),
        "late_starts": late,
        "settings": settings,
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def _file_system(path: Path) -> str:
    """The type of the file system ``path`` is on (ext4, tmpfs, ...), from /proc/mounts."""
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and resolved.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


def _log(message: str) -> None:
    sys.stderr.write(f"budget: {message}\n")
    sys.stderr.flush()


def _backend(
    configs: list[Config], make_url: Callable[[str], str], seconds: float, repeats: int
) -> list[dict[str, Any]]:
    runs = []
    for config in configs:
        _log(f"{config.label} ...")
        runs.append(_measure(make_url(config.name), config, seconds, repeats))
        _log(f"{config.label}: {runs[-1]['admissions_per_second']}")
    return runs


def _postgresql(
    pg_ctl: str, tmp: Path, configs: list[Config], args: argparse.Namespace
) -> dict[str, Any]:
    import psycopg  # noqa: PLC0415 - only when PostgreSQL is benchmarked
    from pytest_postgresql.executors.proc import PostgreSQLExecutor  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import _pg_ctl_runnable  # noqa: PLC0415 - root-safe pg_ctl wrapper

    data = tmp / "pg"
    data.mkdir()
    # The executor always passes -F (fsync off): say what we want after it, explicitly.
    durable = "off" if args.pg_fsync_off else "on"
    options = f"-c fsync={durable} -c synchronous_commit={durable}"
    executor = PostgreSQLExecutor(
        executable=_pg_ctl_runnable(pg_ctl),
        host="127.0.0.1",
        port=free_port(),
        datadir=str(data / "data"),
        unixsocketdir=str(data),
        logfile=str(data / "log"),
        startparams="-t 60",
        dbname="postgres",
        postgres_options=options,
    )
    executor.start()
    try:
        base = f"postgresql+psycopg://{executor.user}@127.0.0.1:{executor.port}"

        def make(name: str) -> str:
            with psycopg.connect(
                f"host=127.0.0.1 port={executor.port} user={executor.user} dbname=postgres",
                autocommit=True,
            ) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            return f"{base}/{name}"

        runs = _backend(configs, make, args.seconds, args.repeats)
    finally:
        executor.stop()
    return {
        "server_options": options,
        "data_dir_file_system": _file_system(data),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.2, help="length of each round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each of A, B, C")
    parser.add_argument("--only", nargs="*", default=None, help="configuration names to run")
    parser.add_argument(
        "--pg-fsync-off",
        action="store_true",
        help="start PostgreSQL with fsync=off and synchronous_commit=off (printed)",
    )
    args = parser.parse_args()
    configs = [c for c in CONFIGS if args.only is None or c.name in args.only]
    tmp = Path(tempfile.mkdtemp(prefix="bastion-bench-budget-"))
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "seconds_per_round": args.seconds,
        "repeats": args.repeats,
        "cost_tokens": COST,
    }
    try:
        sqlite_configs = [c for c in configs if c.backend == "sqlite"]
        if sqlite_configs:
            report["sqlite"] = {
                "data_dir_file_system": _file_system(tmp),
                "runs": _backend(
                    sqlite_configs,
                    lambda name: f"sqlite:///{tmp / name}.db",
                    args.seconds,
                    args.repeats,
                ),
            }
        pg_configs = [c for c in configs if c.backend == "postgresql"]
        pg_ctl = shutil.which("pg_ctl")
        if pg_configs and pg_ctl is None:
            report["postgresql"] = {"skipped": "pg_ctl not on PATH"}
        elif pg_configs and pg_ctl is not None:
            try:
                report["postgresql"] = _postgresql(pg_ctl, tmp, pg_configs, args)
            except Exception as exc:  # keep SQLite's figures; say why PostgreSQL has none
                report["postgresql"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["overspend_total"] = sum(
        run["overspend_tokens"]
        for backend in ("sqlite", "postgresql")
        for run in report.get(backend, {}).get("runs", [])
    )
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
