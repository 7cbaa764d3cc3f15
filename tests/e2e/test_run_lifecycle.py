"""A run's life as processes: one writer per data directory, a crash recorded, status truthful.

Each test starts real ``bastion`` processes on a temporary data directory: a second run on a
busy directory is refused naming the first; a SIGKILLed run is found ``crashed`` by the next
start and by ``bastion status``; ``bastion status`` finds the console on whatever port it got.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e_support import PATIENCE_S, bastion, clean_env, until

from bastion.runtime.lock import read_holder
from bastion.store import Store


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    # Any free port: status must find the console through run.json.
    settings = {"BASTION_CONSOLE_PORT": "0", "BASTION_LOOP_INTERVAL_SECONDS": "0.2", **extra}
    return clean_env(data_dir, **settings)


def _status(env: dict[str, str]) -> dict[str, Any]:
    result = bastion("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = orjson.loads(result.stdout)
    return data


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def spawn(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bastion", "run", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _wait_for_steps(data_dir: Path, run_id: str, steps: int) -> None:
    def counted() -> bool:
        with Store.open(f"sqlite:///{data_dir / 'bastion.db'}") as store:
            run = store.runs.get(run_id)
        return run is not None and run.steps >= steps

    until(counted, f"{steps} steps of {run_id} counted in the store", every=0.1)


def _wait_for_event(data_dir: Path, kind: str) -> None:
    """Wait until the store records an event of ``kind`` (the run is a separate process)."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        with Store.open(f"sqlite:///{data_dir / 'bastion.db'}") as store:
            if store.events.list(kind=kind):
                return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} event within {PATIENCE_S} s")


def _live_holder(data_dir: Path) -> Any:
    return until(
        lambda: (h := read_holder(data_dir)) is not None and h.console_port and h,
        "the run to record its console address",
        every=0.1,
    )


def test_a_second_run_on_a_busy_data_directory_is_refused_naming_the_first(
    tmp_path: Path, start: Callable[..., subprocess.Popen[str]]
) -> None:
    """One writer: the second `bastion run` exits non-zero, naming the first run and its pid."""
    env = _env(tmp_path / "data")
    first = start(env=env)
    holder = _live_holder(tmp_path / "data")
    second = bastion("run", "--steps", "1", env=env)
    assert second.returncode != 0
    refusal = second.stderr + second.stdout
    assert f"run {holder.run_id}" in refusal
    assert f"pid {first.pid}" in refusal
    assert "order sent" not in second.stdout
    assert first.poll() is None  # the first run is untouched


def test_a_killed_run_is_recorded_crashed_and_status_agrees(
    tmp_path: Path, start: Callable[..., subprocess.Popen[str]]
) -> None:
    """SIGKILL a run: status says crashed, the next start records and announces it."""
    data_dir = tmp_path / "data"
    env = _env(data_dir)
    victim = start(env=env)
    holder = _live_holder(data_dir)
    _wait_for_steps(data_dir, holder.run_id, 2)

    live = _status(env)  # found through run.json, though the port was picked at random
    assert (live["console"], live["run_id"], live["state"]) == (
        "reachable",
        holder.run_id,
        "running",
    )
    assert live["last_run"]["status"] == "running"

    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=PATIENCE_S)
    dead = _status(env)
    assert (dead["console"], dead["state"]) == ("not reachable", "not running")
    assert dead["last_run"]["run_id"] == holder.run_id
    assert dead["last_run"]["status"] == "crashed"
    assert dead["last_run"]["steps"] >= 2

    again = bastion("run", "--steps", "1", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Previous run {holder.run_id} crashed" in again.stdout
    with Store.open(f"sqlite:///{data_dir / 'bastion.db'}") as store:
        crashed = store.runs.get(holder.run_id)
        events = store.events.list(kind="run_crashed")
    assert crashed is not None
    assert crashed.status.value == "crashed"
    assert crashed.steps >= 2
    assert [e.payload["crashed_run_id"] for e in events] == [holder.run_id]
    after = _status(env)
    assert after["last_run"]["status"] == "completed"


def test_status_asks_the_console_the_run_recorded_and_resume_is_narrated(
    tmp_path: Path, start: Callable[..., subprocess.Popen[str]]
) -> None:
    """`bastion status` matches the live console; a resume from another shell is narrated."""
    data_dir = tmp_path / "data"
    env = _env(data_dir)
    run = start(env=env)
    holder = _live_holder(data_dir)
    token = (data_dir / "console_token").read_text().strip()
    console = httpx.get(
        f"http://127.0.0.1:{holder.console_port}/api/status",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()
    report = _status(env)
    for key in ("run_id", "agent", "halted", "dry_run", "currency"):
        assert report[key] == console[key], key
    assert report["last_run"]["run_id"] == console["last_run"]["run_id"] == holder.run_id

    assert bastion("kill", "--reason", "drill", env=env).returncode == 0
    assert bastion("resume", "--reason", "drill over", env=env).returncode == 0
    _wait_for_event(data_dir, "trading_resumed")  # the loop sees the resume at its next step
    run.send_signal(signal.SIGINT)
    output, _ = run.communicate(timeout=PATIENCE_S)
    assert re.search(r"trading resumed at step \d+", output), output


def test_a_run_whose_every_step_failed_exits_non_zero(tmp_path: Path) -> None:
    """No successful step: the summary says failed and counts them, and the exit code is 1."""
    fault = '[{"kind": "error", "code": 11094, "method": "public/get_index_price", "times": null}]'
    env = _env(
        tmp_path / "data",
        BASTION_PAPER_FAULTS=fault,
        BASTION_HEALTH_CHECK_ON_STARTUP="false",
        BASTION_LOOP_INTERVAL_SECONDS="0.01",
        BASTION_RETRY_BASE_SECONDS="0.001",
        BASTION_RETRY_CAP_SECONDS="0.002",
    )
    result = bastion("run", "--steps", "3", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed after 3 steps (0 ok, 3 failed)" in result.stdout
    assert "last failure:" in result.stdout


def test_a_busy_console_port_leaves_nothing_behind(tmp_path: Path) -> None:
    """A start refused for its port exits 2 naming the fix, with no trace and no lock held."""
    import socket  # noqa: PLC0415  only this test needs it

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = _env(tmp_path / "data", BASTION_CONSOLE_PORT=str(port))
        result = bastion("run", "--steps", "1", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "BASTION_CONSOLE_PORT" in result.stderr
    assert not list((tmp_path / "data").rglob("*.ndjson"))
    again = bastion("run", "--steps", "1", env={**env, "BASTION_CONSOLE_PORT": "0"})
    assert again.returncode == 0, again.stdout + again.stderr
