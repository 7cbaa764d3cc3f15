"""Runtime fixtures: the paper exchange on a SimClock and a Deribit client on it, with metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from pydantic import SecretStr

from bastion.clock import SimClock
from bastion.exchange.deribit import DeribitClient
from bastion.resilience import Resilience
from bastion.simulators.paper import PaperExchangeApp, create_app
from bastion.telemetry.metrics import Metrics


@pytest.fixture
def clock() -> SimClock:
    return SimClock(start=1_800_000_000)


@pytest.fixture
def paper(clock: SimClock) -> Iterator[PaperExchangeApp]:
    app = create_app(clock=clock, seed=1)
    yield app
    app.faults.clear()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(
    paper: PaperExchangeApp, clock: SimClock, metrics: Metrics
) -> AsyncIterator[DeribitClient]:
    """A client whose requests are counted in ``metrics`` (bastion_external_calls_total)."""
    made = DeribitClient(
        base_url="http://paper",
        client_id="bastion-paper",
        client_secret=SecretStr("paper-secret"),
        clock=clock,
        transport=httpx.ASGITransport(app=paper),
        metrics=metrics,
        resilience=Resilience(clock=clock, metrics=metrics, breakers=False),
    )
    yield made
    await made.close()


Calls = Callable[[str], float]


@pytest.fixture
def calls(metrics: Metrics) -> Calls:
    """How many requests of a method (``public/get_instruments``) the client has made."""

    def count(method: str) -> float:
        return sum(
            s.value
            for m in metrics.registry.collect()
            if m.name == "bastion_external_calls"
            for s in m.samples
            if s.name.endswith("_total") and s.labels.get("dependency", "").endswith(method)
        )

    return count
