"""Shared pieces of the conformance tests: the pinned keys, the live server handle, clients."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import ccxt
import ccxt.pro

from bastion.simulators.paper import PaperExchangeApp

KEYS = {f"ccxt-key-{n}": f"ccxt-secret-{n}" for n in range(64)}
_unused_keys = itertools.count(1)  # ccxt-key-0 belongs to the session's markets client


def fresh_key() -> str:
    """A pinned key no other test has used: its own funded paper account."""
    return f"ccxt-key-{next(_unused_keys)}"


@dataclass(frozen=True)
class LiveExchange:
    """A paper exchange served by uvicorn: the app (for its venue and faults) and its URL."""

    app: PaperExchangeApp
    url: str


def make_client(url: str, key: str, secret: str) -> ccxt.deribit:
    """ccxt's deribit pointed at the loopback simulator exactly as shared/deribit.md §4 says."""
    exchange = ccxt.deribit({"apiKey": key, "secret": secret, "enableRateLimit": False})
    exchange.urls["api"] = {"rest": url}
    return exchange


def make_pro_client(url: str, key: str, secret: str) -> ccxt.pro.deribit:
    """ccxt.pro's deribit on the loopback simulator: REST for ``sign()``, ``ws`` for sockets."""
    exchange = ccxt.pro.deribit({"apiKey": key, "secret": secret, "enableRateLimit": False})
    ws = url.replace("http://", "ws://") + "/ws/api/v2"
    exchange.urls["api"] = {"rest": url, "ws": ws}
    return exchange
