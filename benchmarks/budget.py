"""Budget reservations per second on SQLite and PostgreSQL with 1 and 8 workers, and overspend.

Each worker is a process running reserve → commit in a loop against one daily limit sized so
that the budget runs out part way; the overspend count is tokens committed above the limit
(must be 0). PostgreSQL is a throwaway cluster started with pytest_postgresql's executor; it is
skipped, with a ``skipped`` field saying why, when ``pg_ctl`` is not on PATH.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bastion.clock import SimClock
from bastion.errors import BudgetExhausted
from bastion.guard.budget import Budget, BudgetLimits
from bastion.llm.pricing import Cost
from bastion.store import Store

SECONDS = 3.0
COST = 10


def _worker(url: str, limit: int, seconds: float) -> int:
    """Reserve and commit for ``seconds`` (timed from when this worker is ready)."""

    async def main() -> int:
        with Store.open(url) as store:
            budget = Budget(
                store, clock=SimClock(), agent="bench", limits=BudgetLimits(daily_tokens=limit)
            )
            count = 0
            deadline = time.perf_counter() + seconds  # spawning 8 processes is slow on 2 cores
            while time.perf_counter() < deadline:
                try:
                    reservation = await budget.reserve(Cost(COST))
                except BudgetExhausted:
                    count += 1
                    continue
                await reservation.commit(Cost(COST))
                count += 1
            return count

    return asyncio.run(main())


def _run(url: str, workers: int) -> dict[str, object]:
    with Store.open(url) as store:
        store.budget.reclaim(SimClock().now())
    limit = 10**12  # measured unconstrained first, then a tight run checks overspend
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        counts = pool.starmap(_worker, [(url, limit, SECONDS)] * workers)
    # Each worker ran SECONDS of its own; their windows overlap, so the rates add up.
    return {"workers": workers, "reservations_per_second": round(sum(counts) / SECONDS, 1)}


def _overspend(url: str, workers: int) -> int:
    limit = 2_000
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        pool.starmap(_worker, [(url, limit, 2.0)] * workers)
    with Store.open(url) as store:
        (row,) = store.budget.usage([("agent:bench", "day:2026-01-01")])
    return max(0, row.tokens_used - limit)


def _backend(make_url: object) -> dict[str, object]:
    results = []
    overspend = 0
    for workers in (1, 8):
        results.append(_run(make_url(f"tput{workers}"), workers))  # type: ignore[operator]
        overspend += _overspend(make_url(f"over{workers}"), workers)  # type: ignore[operator]
    return {"runs": results, "overspend_tokens": overspend}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bastion-bench-budget-"))
    report: dict[str, object] = {"seconds_per_run": SECONDS, "cost_tokens": COST}
    report["sqlite"] = _backend(lambda name: f"sqlite:///{tmp / name}.db")
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        report["postgresql"] = {"skipped": "pg_ctl not on PATH"}
    else:
        try:
            report["postgresql"] = _postgresql(pg_ctl, tmp)
        except Exception as exc:
            report["postgresql"] = {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
    report["overspend_total"] = sum(
        int(v.get("overspend_tokens", 0))  # type: ignore[union-attr,call-overload]
        for v in (report["sqlite"], report["postgresql"])
    )
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")


def _postgresql(pg_ctl: str, tmp: Path) -> dict[str, object]:
    import psycopg  # noqa: PLC0415 - only when PostgreSQL is benchmarked
    from pytest_postgresql.executors.proc import PostgreSQLExecutor  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import _pg_ctl_runnable  # noqa: PLC0415 - root-safe pg_ctl wrapper

    data = tmp / "pg"
    data.mkdir()
    executor = PostgreSQLExecutor(
        executable=_pg_ctl_runnable(pg_ctl),
        host="127.0.0.1",
        port=_free_port(),
        datadir=str(data / "data"),
        unixsocketdir=str(data),
        logfile=str(data / "log"),
        startparams="-t 60",
        dbname="postgres",
        postgres_options="-c fsync=off -c synchronous_commit=off",
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

        return _backend(make)
    finally:
        executor.stop()


def _free_port() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _support import free_port  # noqa: PLC0415

    return free_port()


if __name__ == "__main__":
    main()
