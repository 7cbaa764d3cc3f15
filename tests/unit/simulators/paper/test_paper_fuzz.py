"""No input makes a handler fail with anything but a Deribit error."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from paper_support import CALL, PERP, START

from bastion.clock import SimClock
from bastion.simulators.paper import PaperVenue, RpcError
from bastion.simulators.paper.auth import Authenticator
from bastion.simulators.paper.methods import PRIVATE, PUBLIC, Call
from bastion.simulators.paper.params import Params

NAMES = [
    "instrument_name", "amount", "contracts", "price", "type", "time_in_force", "label",
    "post_only", "reject_post_only", "reduce_only", "order_id", "currency", "kind", "depth",
    "count", "sorting", "start_timestamp", "end_timestamp", "expired", "index_name", "extended",
    "grant_type", "client_id", "client_secret", "refresh_token", "timestamp", "signature",
    "nonce", "data", "scope", "state", "expected_result", "resolution", "offset",
    "include_old", "include_unfilled", "channels", "interval",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from([
        PERP, CALL, "BTC", "ETH", "any", "option", "future", "limit", "market", "BTC-1", "true",
        "false", "client_credentials", "refresh_token", "client_signature", "btc_usd", "asc",
        "fill_or_kill", "stop_limit", "expires:0", "expires:x", "1", "60", "1D",
    ]),
    st.text(max_size=80),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip
METHODS = sorted([*PUBLIC, *PRIVATE])

_clock = SimClock(START)
_venue = PaperVenue(clock=_clock, seed=3)
_auth = Authenticator(clock=_clock, seed=3)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(METHODS),
    params=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=8),
    seconds=st.sampled_from([0, 0, 1, 60, 3_600]),
)
def test_handlers_only_raise_deribit_errors(
    method: str, params: dict[str, Any], seconds: int
) -> None:
    """Any mix of parameter names, types and values gives a result or an RpcError, never a crash."""
    _clock.advance(seconds)
    handler = PUBLIC.get(method) or PRIVATE[method]
    code = None
    try:
        handler(Call(_venue, _auth, Params(params), "fuzzer"))
    except RpcError as exc:
        code = exc.code
    assert code != 11094 or params.get("expected_result") == "exception"
