"""The policy table: one row per code, refined per HTTP status, exactly the issue's matrix."""

from __future__ import annotations

import pytest

from bastion.errors import BastionError, ErrorCode, classify
from bastion.resilience import policy as policy_module
from bastion.resilience.policy import (
    POLICIES,
    STATUS_POLICIES,
    Action,
    BreakerCount,
    Policy,
    policy_for,
)

DEP = "deribit public/ticker"
ATTEMPT, HEALTHY, NEVER = BreakerCount.ATTEMPT, BreakerCount.HEALTHY, BreakerCount.NEVER


def test_every_code_has_a_row() -> None:
    """No ErrorCode is left without a policy row."""
    assert set(POLICIES) == set(ErrorCode)


@pytest.mark.parametrize(
    ("status", "retries", "breaker", "retry_after", "action"),
    [
        (400, 0, HEALTHY, False, Action.FIX_INPUT),
        (401, 1, HEALTHY, False, Action.REFRESH_CREDENTIALS),
        (402, 0, NEVER, False, Action.HALT),
        (403, 0, HEALTHY, False, Action.ESCALATE),
        (404, 0, HEALTHY, False, Action.REPORT),
        (409, 0, HEALTHY, False, Action.REPORT),
        (429, 3, NEVER, True, Action.QUEUE),
        (500, 2, ATTEMPT, True, Action.CACHED),
        (502, 3, ATTEMPT, True, Action.ALTERNATIVE),
        (503, 3, ATTEMPT, True, Action.ALTERNATIVE),
        (504, 1, ATTEMPT, False, Action.PARTIAL),
    ],
)
def test_http_matrix(
    status: int, retries: int, breaker: BreakerCount, retry_after: bool, action: Action
) -> None:
    """Each HTTP status of the issue's matrix gets its retries, breaker rule and action."""
    policy = policy_for(classify(dependency=DEP, http_status=status))
    assert policy.retry_attempts == retries
    assert policy.breaker is breaker
    assert policy.honour_retry_after is retry_after
    assert policy.action is action


@pytest.mark.parametrize(
    ("code", "retries", "breaker", "not_accepted", "action"),
    [
        (ErrorCode.NETWORK, 3, ATTEMPT, False, Action.ALTERNATIVE),
        (ErrorCode.TIMEOUT, 3, ATTEMPT, False, Action.ALTERNATIVE),
        (ErrorCode.AUTH, 1, HEALTHY, True, Action.REFRESH_CREDENTIALS),
        (ErrorCode.FORBIDDEN, 0, HEALTHY, True, Action.ESCALATE),
        (ErrorCode.RATE_LIMIT, 3, NEVER, True, Action.QUEUE),
        (ErrorCode.BAD_REQUEST, 0, HEALTHY, True, Action.FIX_INPUT),
        (ErrorCode.NOT_FOUND, 0, HEALTHY, True, Action.REPORT),
        (ErrorCode.CONFLICT, 0, HEALTHY, True, Action.REPORT),
        (ErrorCode.INSUFFICIENT_FUNDS, 0, HEALTHY, True, Action.FIX_INPUT),
        (ErrorCode.BUDGET_EXHAUSTED, 0, NEVER, True, Action.HALT),
        (ErrorCode.CIRCUIT_OPEN, 0, NEVER, True, Action.ALTERNATIVE),
        (ErrorCode.HALTED, 0, NEVER, True, Action.HALT),
        (ErrorCode.RISK_REJECTED, 0, NEVER, True, Action.FIX_INPUT),
        (ErrorCode.CONFIG, 0, NEVER, True, Action.ESCALATE),
        (ErrorCode.SERVER, 3, ATTEMPT, False, Action.ALTERNATIVE),
        (ErrorCode.INVALID_RESPONSE, 1, ATTEMPT, False, Action.CACHED),
        (ErrorCode.UNKNOWN, 0, NEVER, False, Action.ESCALATE),
    ],
)
def test_code_rows(
    code: ErrorCode, retries: int, breaker: BreakerCount, not_accepted: bool, action: Action
) -> None:
    """Each code's row: retries, breaker, whether it proves an order was not accepted, action."""
    policy = policy_for(BastionError("x", code=code))
    assert policy is POLICIES[code]
    assert (policy.retry_attempts, policy.breaker) == (retries, breaker)
    assert policy.proves_not_accepted is not_accepted
    assert policy.action is action


@pytest.mark.parametrize(
    ("action", "allowed"),
    [
        (Action.QUEUE, True),
        (Action.CACHED, True),
        (Action.ALTERNATIVE, True),
        (Action.PARTIAL, True),
        (Action.FIX_INPUT, False),
        (Action.REFRESH_CREDENTIALS, False),
        (Action.ESCALATE, False),
        (Action.REPORT, False),
        (Action.HALT, False),
    ],
)
def test_fallback_follows_the_action(action: Action, allowed: bool) -> None:
    """Only degrade-gracefully actions let a caller's fallback answer."""
    policy = Policy(0, breaker=NEVER, action=action, proves_not_accepted=True)
    assert policy.allows_fallback is allowed


def test_auth_refresh_retries_at_once() -> None:
    """A credential refresh is retried without backoff: waiting would not help."""
    assert POLICIES[ErrorCode.AUTH].backoff is False


def test_deribit_error_keeps_its_code_row_whatever_the_status() -> None:
    """A Deribit 10009 arriving with HTTP 400 uses the INSUFFICIENT_FUNDS row, not 400's."""
    error = classify(
        dependency=DEP, code=ErrorCode.INSUFFICIENT_FUNDS, exchange_code=10009, http_status=400
    )
    assert policy_for(error) is POLICIES[ErrorCode.INSUFFICIENT_FUNDS]


def test_status_refines_only_its_own_code() -> None:
    """A Deribit maintenance error (SERVER) sent with HTTP 503 uses the 503 refinement."""
    error = classify(dependency=DEP, code=ErrorCode.SERVER, exchange_code=11051, http_status=503)
    assert policy_for(error).action is Action.ALTERNATIVE
    error = classify(
        dependency=DEP, code=ErrorCode.RATE_LIMIT, exchange_code=10028, http_status=500
    )
    assert policy_for(error) is POLICIES[ErrorCode.RATE_LIMIT]


def test_the_docstring_table_states_each_codes_breaker_column() -> None:
    """policy.py's docstring table lists every code with the breaker rule its rows have."""
    counts = {b.value for b in BreakerCount}
    stated: dict[str, set[str]] = {}
    for line in (policy_module.__doc__ or "").splitlines():
        cells = line.split()
        if cells and cells[0] in {code.value for code in ErrorCode}:
            stated.setdefault(cells[0], set()).update(c for c in cells if c in counts)
    for code, row in POLICIES.items():
        refined = {p.breaker.value for (c, _), p in STATUS_POLICIES.items() if c is code}
        assert stated.get(code.value) == {row.breaker.value} | refined, code.value
