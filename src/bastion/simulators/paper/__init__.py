"""The paper exchange: a deterministic Deribit API v2 simulator, as an ASGI app.

``create_app`` builds the app Bastion embeds in paper mode and that tests and ccxt talk to;
``PaperVenue`` is the simulator behind it (market, accounts, matching) for tests and
benchmarks that want no HTTP. For a seed and a :class:`~bastion.clock.SimClock` every response
is byte-identical run to run. The model's simplifications are stated in each module's
docstring: :mod:`.gbm` (index), :mod:`.pricing` (options), :mod:`.instruments` (listing),
:mod:`.venue` (matching), :mod:`.accounts` and :mod:`.margin` (money), :mod:`.auth`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bastion.clock import Clock
from bastion.simulators.faults.responses import DroppedConnection
from bastion.simulators.paper.app import PaperExchangeApp
from bastion.simulators.paper.auth import Authenticator
from bastion.simulators.paper.errors import RpcError
from bastion.simulators.paper.faults import Fault, FaultInjector, FaultSpec
from bastion.simulators.paper.rules import OrderRequest
from bastion.simulators.paper.venue import DEFAULT_BALANCES, PaperVenue

__all__ = [
    "DEFAULT_BALANCES",
    "DroppedConnection",
    "Fault",
    "FaultInjector",
    "FaultSpec",
    "OrderRequest",
    "PaperExchangeApp",
    "PaperVenue",
    "RpcError",
    "create_app",
]


def create_app(
    *,
    clock: Clock,
    seed: int = 1,
    allowed_credentials: Mapping[str, str] | None = None,
    initial_balances: Mapping[str, float] | None = None,
    token_ttl_seconds: int = 900,
    testnet: bool = True,
    faults: Sequence[FaultSpec | Mapping[str, Any]] | None = None,
) -> PaperExchangeApp:
    """A paper Deribit for ``seed`` on ``clock``.

    ``allowed_credentials`` pins the accepted ``client_id -> client_secret`` pairs; None or
    empty makes a sandbox where any pair opens an account funded with ``initial_balances``
    (default :data:`DEFAULT_BALANCES`: 10 BTC, 100 ETH). The venue is ``app.venue`` (and
    ``app.state.venue``); faults are armed through ``app.faults`` (or its loopback control
    endpoint, ``/_paper/faults``), and ``faults`` arms some at start-up: each a
    :class:`FaultSpec` or a mapping validated into one (a pydantic ``ValidationError``, a
    ``ValueError``, names the bad field). Probabilistic faults draw from RNGs seeded by ``seed``.
    """
    venue = PaperVenue(clock=clock, seed=seed, initial_balances=initial_balances)
    auth = Authenticator(
        clock=clock,
        seed=seed,
        allowed_credentials=allowed_credentials,
        token_ttl_seconds=token_ttl_seconds,
    )
    injector = FaultInjector(seed=seed)
    for spec in faults or ():
        injector.arm(spec)
    return PaperExchangeApp(venue=venue, auth=auth, clock=clock, testnet=testnet, faults=injector)
