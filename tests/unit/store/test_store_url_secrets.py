"""A store URL's passwords, in userinfo or query, never reach an error, an event or a trace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from bastion.agent import Decision
from bastion.agents.scripted import ScriptedAgent
from bastion.clock import SimClock
from bastion.config import load_settings
from bastion.errors import BastionError, ConfigError
from bastion.runner import Runner
from bastion.store import Store

QUERY_PW = "query-pw-3141"


@pytest.mark.parametrize("key", ["password", "sslpassword"])
def test_the_open_error_masks_a_password_in_the_query(key: str) -> None:
    """An unreachable server's error names the store without its query password."""
    url = f"postgresql+psycopg://bastion@127.0.0.1:1/bastion?sslmode=disable&{key}={QUERY_PW}"
    with pytest.raises(BastionError) as caught:
        Store.open(url)
    message = str(caught.value)
    assert QUERY_PW not in message
    assert f"{key}=***" in message
    assert "sslmode=disable" in message


def test_a_port_that_is_not_a_number_is_a_config_error() -> None:
    """A malformed port fails like any unusable URL, not with a ValueError traceback."""
    with pytest.raises(ConfigError, match=r"store_url.*Fix: use sqlite:///"):
        Store.open(f"postgresql+psycopg://bastion:{QUERY_PW}@db:port/bastion")


def _with_query_password(store_url: str) -> tuple[str, str]:
    """``store_url`` with its password (or a made-up one) moved into the query string."""
    parsed = sa.make_url(store_url)
    secret = parsed.password or QUERY_PW
    moved = parsed.set(password=None).update_query_dict({"password": str(secret)})
    return moved.render_as_string(hide_password=False), str(secret)


# SQLite ignores a password parameter and says so; the leak path is the same on both backends.
@pytest.mark.filterwarnings("ignore:Query string argument.*password:sqlalchemy.exc.SAWarning")
async def test_a_run_writes_no_query_password_to_its_events_or_its_trace(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_started carries the settings: the store password stays out of the row and the file."""
    for key in list(os.environ):
        if key.startswith("BASTION_"):
            monkeypatch.delenv(key)
    url, secret = _with_query_password(store_url)
    settings = load_settings(data_dir=tmp_path / "data", store_url=url)
    runner = Runner(
        settings,
        clock=SimClock(start=1_800_000_000),
        agent=ScriptedAgent(lambda obs, ctx: Decision()),
        console=False,
    )
    try:
        await runner.run(max_steps=1)
        rows = runner.store.events.list(run_id=runner.run_id, limit=1000)
    finally:
        await runner.aclose()
    [started] = [row for row in rows if row.kind == "run_started"]
    assert started.payload["settings"]["store_url"].endswith("password=***")
    assert secret not in repr([row.payload for row in rows])
    assert secret not in runner.trace.path.read_text()
