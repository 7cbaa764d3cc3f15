"""build_observer: the health check observes like the loop, with no agent to build."""

from __future__ import annotations

from pathlib import Path

from bastion.agent import Decision
from bastion.agents.scripted import ScriptedAgent
from bastion.build import build_observer
from bastion.clock import SimClock
from bastion.config import load_settings
from bastion.exchange.deribit import DeribitClient


async def test_an_observer_without_an_agent_observes_the_account(
    client: DeribitClient, clock: SimClock, tmp_path: Path
) -> None:
    """No agent: a full observation of the settings' currency, no watchlist tickers."""
    settings = load_settings(data_dir=tmp_path / "data", currency="BTC")
    obs = await build_observer(settings, client, clock).observe()
    assert (obs.currency, dict(obs.tickers)) == ("BTC", {})
    assert obs.instruments


async def test_with_an_agent_its_watchlist_is_ticked(
    client: DeribitClient, clock: SimClock, tmp_path: Path
) -> None:
    """With the agent, the agent's watchlist chooses the tickers, as in the loop."""
    agent = ScriptedAgent(lambda o, c: Decision(), watch=["BTC-PERPETUAL"])
    settings = load_settings(data_dir=tmp_path / "data")
    obs = await build_observer(settings, client, clock, agent).observe()
    assert list(obs.tickers) == ["BTC-PERPETUAL"]
