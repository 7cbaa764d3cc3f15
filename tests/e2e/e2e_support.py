"""What the process-level tests share: running `bastion` as a user would, with patience."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PATIENCE_S = 60.0
"""A liveness bound for a process to answer, not a performance figure: a loaded box never flakes."""


def clean_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The caller's environment without any BASTION_* from the shell, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(BASTION_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    env.update(settings)
    return env


def bastion(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``bastion ARGS`` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bastion", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
    )


def wait_for(url: str, process: subprocess.Popen[str]) -> None:
    """Until ``url`` answers; fails at once with the process's output if the process died."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.1)


def until(condition: Callable[[], Any], what: str, *, every: float = 0.05) -> Any:
    """``condition()``'s first truthy value, asked every ``every`` s for up to PATIENCE_S."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def exchange_served(port: int, data_dir: Path) -> Iterator[str]:
    """`bastion exchange serve` on loopback ``port`` until the block ends (Ctrl-C, as a person
    stops it); its base URL once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "exchange", "serve", "--port", str(port)],
        env=clean_env(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/api/v2/public/get_time", proc)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=PATIENCE_S)
