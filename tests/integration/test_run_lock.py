"""The run lock as the runner holds it: a failed restart keeps a crash findable, status reads
this directory's run on a shared store, and the smoke's dry run runs beside a live run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bastion.build import build_halt, build_status_service
from bastion.clock import SimClock
from bastion.config import Settings
from bastion.errors import BastionError
from bastion.ops.smoke import SmokeOutcome, run_smoke
from bastion.runner import Runner
from bastion.runtime.lock import RunLocked
from bastion.store import Store


def _start_row(runner: Runner) -> None:
    """The run's row as ``run()`` records it at its start."""
    runner.store.runs.start(
        runner.run_id,
        agent_name="a",
        agent_version="1",
        mode="paper",
        config_hash="h",
        started_at=runner.clock.now(),
    )


def _die(runner: Runner) -> str:
    """Leave the run as SIGKILL would: its row running, its lock dropped, nothing closed."""
    _start_row(runner)
    assert runner.lock is not None
    runner.lock.release()
    return runner.run_id


async def test_a_restart_that_fails_does_not_hide_the_crash(
    settings_factory: Callable[..., Settings],
) -> None:
    """A first restart that cannot open the store leaves the crash for the next one to record."""
    settings = settings_factory()
    dead = Runner(settings, clock=SimClock(), console=False)
    crashed_id = _die(dead)
    unreachable = settings.model_copy(
        update={"store_url": "postgresql+psycopg://bastion@127.0.0.1:1/bastion"}
    )
    with pytest.raises(BastionError):
        Runner(unreachable, clock=SimClock(), console=False)
    again = Runner(settings, clock=SimClock(), console=False)
    try:
        assert again.crashed_run is not None
        assert again.crashed_run.run_id == crashed_id
        crashed = again.store.runs.get(crashed_id)
        assert crashed is not None
        assert crashed.status.value == "crashed"
    finally:
        await again.aclose()
        dead.store.close()


async def test_status_reports_this_directorys_run_on_a_shared_store(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    """Two hosts, one store: host 1 sees its own crashed run, not host 2's live one."""
    shared = f"sqlite:///{tmp_path / 'fleet.db'}"
    host1 = settings_factory(data_dir=tmp_path / "host1", store_url=shared)
    host2 = settings_factory(data_dir=tmp_path / "host2", store_url=shared)
    crashed_id = _die(Runner(host1, clock=SimClock(start=1_800_000_000), console=False))
    live = Runner(host2, clock=SimClock(start=1_800_000_100), console=False)
    _start_row(live)
    try:
        with Store.open(shared) as store:
            clock = SimClock()
            report = build_status_service(
                host1, clock, halt=build_halt(host1, clock), store=store
            ).report(None)
        assert report["last_run"]["run_id"] == crashed_id
        assert report["last_run"]["status"] == "crashed"
    finally:
        await live.aclose()


async def test_the_smoke_runs_beside_a_live_run(
    settings_factory: Callable[..., Settings],
) -> None:
    """The smoke's dry run takes no lock, so it checks a deployment while its agent trades."""
    settings = settings_factory()
    live = Runner(settings, clock=SimClock(), console=False)
    try:
        with pytest.raises(RunLocked):
            Runner(settings, clock=SimClock(), console=False)

        def dry(s: Settings) -> Any:
            return Runner(s, clock=SimClock(), console=False, exclusive=False)

        report = await run_smoke(settings, dry, duration_seconds=20, max_steps=1)
        assert report.outcome is SmokeOutcome.PASS, report.to_dict()
    finally:
        await live.aclose()
