"""Integration fixtures: real settings in a temporary data dir, a SimClock, scripted agents."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bastion.agent import Agent
from bastion.clock import SimClock
from bastion.config import Settings, load_settings
from bastion.runner import Runner

SECRET = "paper-secret-do-not-leak-9f3a"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No BASTION_* (or OTEL_*: no span exported by surprise) from the developer's shell leaks
    into a test; cwd is a scratch dir."""
    for key in list(os.environ):
        if key.startswith(("BASTION_", "OTEL_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def secret() -> str:
    return SECRET


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "exchange_client_secret": SECRET,
            "console_port": 0,
            "loop_interval_seconds": 1.0,
        }
        return load_settings(**{**base, **overrides})

    return make


@pytest.fixture
async def runner_factory(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Runner]]:
    made: list[Runner] = []

    def make(agent_: Agent | None = None, /, *, console: bool = False, **overrides: Any) -> Runner:
        """``agent_`` replaces the one settings name; ``agent=`` is the setting itself."""
        runner = Runner(
            settings_factory(**overrides),
            clock=SimClock(start=1_800_000_000),
            agent=agent_,
            console=console,
        )
        made.append(runner)
        return runner

    yield make
    for runner in made:
        await runner.aclose()
