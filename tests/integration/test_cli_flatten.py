"""``bastion flatten`` against a real paper exchange on loopback, and on the embedded one.

Positions are opened through Bastion's own Deribit client; the command then closes them with
reduce-only orders the risk review judged, and the store's event log holds every step.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bastion.build import build_exchange
from bastion.cli import app
from bastion.cli.context import never_halted
from bastion.clock import WallClock
from bastion.config import load_settings
from bastion.market import OrderRequest, Position
from bastion.simulators.paper import create_app
from bastion.store import Store
from bastion.telemetry.metrics import Metrics
from loopback_server import serve_on_loopback

PERP = "BTC-PERPETUAL"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


@pytest.fixture
def exchange_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A paper exchange served on loopback, and the settings pointing at it."""
    with serve_on_loopback(create_app(clock=WallClock(), seed=5), log_level="critical") as url:
        monkeypatch.setenv("BASTION_EXCHANGE_URL", url)
        yield url


async def _open_positions() -> str:
    """Long the perpetual and 0.5 of a near call through the client; returns the call's name."""
    exchange = build_exchange(load_settings(), WallClock(), Metrics(), never_halted)
    try:
        index = await exchange.get_index_price("BTC")
        calls = [i for i in await exchange.get_instruments("BTC") if i.option_type == "call"]
        calls.sort(key=lambda i: (i.expiration_ms, abs((i.strike or 0) - index)))
        for call in calls:
            ticker = await exchange.get_ticker(call.name)
            if ticker.best_bid_price and ticker.best_ask_price:
                break
        await exchange.place_order(OrderRequest(PERP, "buy", 2_000.0, order_type="market"))
        await exchange.place_order(OrderRequest(call.name, "buy", 0.5, order_type="market"))
        return call.name
    finally:
        await exchange.close()


async def _positions() -> dict[str, float]:
    exchange = build_exchange(load_settings(), WallClock(), Metrics(), never_halted)
    try:
        held: list[Position] = await exchange.get_positions("BTC")
        return {p.instrument_name: p.size for p in held if p.size != 0}
    finally:
        await exchange.close()


def _events(tmp_path: Path, kind: str) -> list[dict[str, object]]:
    """The store's event log (halts, orders) of one kind, oldest first."""
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as store:
        rows = store.events.list(limit=500)
    return [dict(r.payload) for r in reversed(rows) if r.kind == kind]


def _trace(tmp_path: Path, kind: str) -> list[dict[str, object]]:
    """The flatten's trace lines of one kind (decisions and verdicts live only there)."""
    [path] = (tmp_path / "data" / "traces").rglob("flatten-*.ndjson")
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return [line for line in lines if line["kind"] == kind]


def test_a_dry_run_shows_the_orders_and_sends_nothing(
    cli: CliRunner, exchange_url: str, tmp_path: Path
) -> None:
    option = asyncio.run(_open_positions())
    result = cli.invoke(app, ["flatten", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"sell 2000 {PERP} at market (reduce-only): approved" in result.output
    assert f"sell 0.5 {option} at market (reduce-only): approved" in result.output
    assert "Dry run: nothing was sent." in result.output
    assert asyncio.run(_positions()) == {PERP: 2_000.0, option: 0.5}
    assert not (tmp_path / "data" / "kill_switch.flag").exists()


def test_one_instrument_is_closed_and_the_trading_state_is_left_alone(
    cli: CliRunner, exchange_url: str, tmp_path: Path
) -> None:
    option = asyncio.run(_open_positions())
    result = cli.invoke(app, ["flatten", "--instrument", PERP])
    assert result.exit_code == 0, result.output
    assert "Sent flatten-" in result.output
    assert asyncio.run(_positions()) == {option: 0.5}
    assert not (tmp_path / "data" / "kill_switch.flag").exists()


def test_everything_is_closed_under_reducing_and_every_step_recorded(
    cli: CliRunner, exchange_url: str, tmp_path: Path
) -> None:
    option = asyncio.run(_open_positions())
    result = cli.invoke(app, ["flatten", "--reason", "vol spike"])
    assert result.exit_code == 0, result.output
    assert asyncio.run(_positions()) == {}
    flag = orjson.loads((tmp_path / "data" / "kill_switch.flag").read_bytes())
    who = getpass.getuser()
    assert (flag["state"], flag["reason"], flag["who"]) == ("reducing", "vol spike", who)

    assert "Trace: " in result.output
    [decision] = _trace(tmp_path, "decision")
    assert decision["source"] == "flatten"
    verdicts = _trace(tmp_path, "risk_verdict")
    assert sorted((v["instrument"], v["status"], v["reducing"]) for v in verdicts) == sorted(
        [(PERP, "approved", True), (option, "approved", True)]
    )
    sent = _events(tmp_path, "order_sent")
    assert [o["label"] for o in sent] == [o["label"] for o in _trace(tmp_path, "order_sent")]
    assert sorted((o["instrument"], o["stage"], o["order_state"]) for o in sent) == sorted(
        [(PERP, "flatten", "filled"), (option, "flatten", "filled")]
    )
    assert all(str(o["label"]).startswith("flatten-") for o in sent)
    assert [e["state"] for e in _events(tmp_path, "halt_tripped")] == ["reducing"]

    again = cli.invoke(app, ["flatten"])
    assert again.exit_code == 0, again.output
    assert "Nothing to close: no position is held." in again.output


def test_an_order_the_caps_reject_is_not_sent_and_the_exit_says_so(
    cli: CliRunner, exchange_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    option = asyncio.run(_open_positions())
    monkeypatch.setenv("BASTION_RISK_ALLOWED_INSTRUMENTS", '["BTC-PERPETUAL"]')
    result = cli.invoke(app, ["flatten"])
    assert result.exit_code == 1, result.output
    assert f"Not closed: {option}" in result.output
    assert asyncio.run(_positions()) == {option: 0.5}


def test_a_halted_state_is_kept_and_flatten_says_how_to_go_on(
    cli: CliRunner, exchange_url: str
) -> None:
    asyncio.run(_open_positions())
    assert cli.invoke(app, ["kill", "--reason", "exchange odd"]).exit_code == 0
    result = cli.invoke(app, ["flatten"])
    assert result.exit_code == 1
    assert "Trading is HALTED (exchange odd by" in result.output
    assert "bastion resume" in result.output
    assert PERP in asyncio.run(_positions())


def test_on_the_embedded_exchange_the_running_agent_is_told_to_flatten(
    cli: CliRunner, tmp_path: Path
) -> None:
    result = cli.invoke(app, ["flatten"])
    assert result.exit_code == 0, result.output
    assert "REDUCING" in result.output
    flag = orjson.loads((tmp_path / "data" / "kill_switch.flag").read_bytes())
    assert flag["state"] == "reducing"

    one = cli.invoke(app, ["flatten", "--instrument", PERP])
    assert one.exit_code == 2
    assert "--instrument needs an exchange this process can reach" in one.output
