"""Deribit's error codes are classified in the adapter, by one table both transports use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bastion.simulators
from bastion.errors import ErrorCode, ExchangeError
from bastion.exchange.deribit import DERIBIT_CODES, code_for_deribit, rpc_error

DEP = "deribit private/buy"

# The "Codes that matter for classification" table of the team's Deribit notes (deribit.md §2,
# after the classic API v2.1.1 "RPC Error Codes" list), with ccxt's class for each code.
DOCUMENTED = [
    (10000, "authorization_required", "AuthenticationError", ErrorCode.AUTH),
    (10002, "qty_too_low", "InvalidOrder", ErrorCode.BAD_REQUEST),
    (10004, "order_not_found", "OrderNotFound", ErrorCode.NOT_FOUND),
    (10005, "price_too_low", "InvalidOrder", ErrorCode.BAD_REQUEST),
    (10007, "price_too_high", "InvalidOrder", ErrorCode.BAD_REQUEST),
    (10009, "not_enough_funds", "InsufficientFunds", ErrorCode.INSUFFICIENT_FUNDS),
    (10010, "already_closed", "OrderNotFound", ErrorCode.NOT_FOUND),
    (10020, "invalid_or_unsupported_instrument", "ExchangeError", ErrorCode.NOT_FOUND),
    (10021, "invalid_amount", "InvalidOrder", ErrorCode.BAD_REQUEST),
    (10028, "too_many_requests", "DDoSProtection", ErrorCode.RATE_LIMIT),
    (10029, "not_owner_of_order", "OrderNotFound", ErrorCode.NOT_FOUND),
    (10030, "must_be_websocket_request", "ExchangeError", ErrorCode.BAD_REQUEST),
    (10040, "retry", "ExchangeNotAvailable", ErrorCode.SERVER),
    (10041, "settlement_in_progress", "OnMaintenance", ErrorCode.SERVER),
    (10043, "price_wrong_tick", "InvalidOrder", ErrorCode.BAD_REQUEST),
    (11029, "invalid_arguments", "BadRequest", ErrorCode.BAD_REQUEST),
    (11044, "not_open_order", "InvalidOrder", ErrorCode.BAD_REQUEST),
    (11050, "bad_request", "BadRequest", ErrorCode.BAD_REQUEST),
    (11051, "system_maintenance", "OnMaintenance", ErrorCode.SERVER),
    (11054, "post_only_reject", "InvalidOrder", ErrorCode.BAD_REQUEST),
    (13004, "invalid_credentials", "AuthenticationError", ErrorCode.AUTH),
    (13009, "unauthorized", "AuthenticationError", ErrorCode.AUTH),
    (13020, "not_found", "ExchangeError", ErrorCode.NOT_FOUND),
    (13021, "forbidden", "PermissionDenied", ErrorCode.FORBIDDEN),
    (13028, "temporarily_unavailable", "ExchangeError", ErrorCode.SERVER),
    (-32602, "Invalid params", "BadRequest", ErrorCode.BAD_REQUEST),
    # JSON-RPC's "method not found" is HTTP's 404: check the name (ccxt: BadRequest).
    (-32601, "Method not found", "BadRequest", ErrorCode.NOT_FOUND),
    (-32700, "Parse error", "BadRequest", ErrorCode.BAD_REQUEST),
]


@pytest.mark.parametrize(
    ("number", "name", "ccxt", "code"), DOCUMENTED, ids=[str(row[0]) for row in DOCUMENTED]
)
def test_every_documented_code_maps_as_documented(
    number: int, name: str, ccxt: str, code: ErrorCode
) -> None:
    """Each code of the documented table is in the adapter's table with its meaning's code."""
    assert DERIBIT_CODES[number] is code
    assert code_for_deribit(number) is code


def test_ccxt_classes_agree_with_the_codes() -> None:
    """Where ccxt's class names a kind of failure, our code is that kind."""
    kinds = {
        "AuthenticationError": {ErrorCode.AUTH},
        "InvalidOrder": {ErrorCode.BAD_REQUEST},
        "OrderNotFound": {ErrorCode.NOT_FOUND},
        "InsufficientFunds": {ErrorCode.INSUFFICIENT_FUNDS},
        "DDoSProtection": {ErrorCode.RATE_LIMIT},
        "ExchangeNotAvailable": {ErrorCode.SERVER},
        "OnMaintenance": {ErrorCode.SERVER},
        "PermissionDenied": {ErrorCode.FORBIDDEN},
    }
    for number, _, ccxt, code in DOCUMENTED:
        assert code in kinds.get(ccxt, {code}), (number, ccxt, code)


def test_an_unlisted_code_is_unknown() -> None:
    """A code Deribit may add later is UNKNOWN, not guessed."""
    assert code_for_deribit(99999) is ErrorCode.UNKNOWN


def test_rpc_error_classifies_keeps_the_raw_code_and_redacts() -> None:
    """A JSON-RPC error object becomes a coded ExchangeError; the far side's text is redacted."""
    error = rpc_error(
        DEP,
        {"code": 10009, "message": "not_enough_funds", "data": {"reason": "key k-123 short"}},
        redact=lambda text: text.replace("k-123", "[REDACTED]"),
        http_status=400,
        retry_after=None,
    )
    assert isinstance(error, ExchangeError)
    assert (error.code, error.exchange_code, error.http_status) == (
        ErrorCode.INSUFFICIENT_FUNDS,
        10009,
        400,
    )
    assert str(error).startswith(
        f"{DEP}: INSUFFICIENT_FUNDS (10009 not_enough_funds: key [REDACTED] short)"
    )


def test_a_rate_limit_keeps_its_retry_after() -> None:
    """10028 with a Retry-After header is RATE_LIMIT with the wait the server asked for."""
    error = rpc_error(
        DEP, {"code": 10028, "message": "too_many_requests"}, redact=str, retry_after=2.0
    )
    assert (error.code, error.retry_after) == (ErrorCode.RATE_LIMIT, 2.0)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_simulators_do_not_import_the_adapter() -> None:
    """The paper exchange answers Deribit codes of its own; it never borrows the client's."""
    root = Path(bastion.simulators.__file__).parent
    sources = sorted(root.rglob("*.py"))
    assert sources
    for path in sources:
        borrowed = {n for n in _imports(path) if n.startswith("bastion.exchange.deribit")}
        assert not borrowed, f"{path.relative_to(root)} imports {sorted(borrowed)}"
