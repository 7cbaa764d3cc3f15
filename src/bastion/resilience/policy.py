"""What to do about each failure: one row per :class:`~bastion.errors.ErrorCode`.

The table is data, read by the choke point (:mod:`bastion.resilience.call`), the retrier and
the breakers; nothing else decides whether a failure is retried, counts against a breaker or
may fall back. A few HTTP statuses refine their code's row (a 500 is retried less than a 503,
a 504 settles for a partial result), which is the matrix of issue 3:

==================  ===========  ==========================  ========  ====================
code                HTTP         retries                     breaker   action
==================  ===========  ==========================  ========  ====================
rate_limit          429          3, backoff, Retry-After     never     queue
server              500          2, backoff, Retry-After     attempt   cached
server              502, 503     3, backoff, Retry-After     attempt   alternative
timeout             504          1, backoff                  attempt   partial
bad_request         400          none                        healthy   fix_input
auth                401          1, after refreshing creds   healthy   refresh_credentials
forbidden           403          none                        healthy   escalate
not_found           404          none                        healthy   report
conflict            409          none                        healthy   report
insufficient_funds  –            none                        healthy   fix_input
budget_exhausted    402          none                        never     halt
network             –            3, backoff                  attempt   alternative
timeout             –            3, backoff                  attempt   alternative
server              –            3, backoff, Retry-After     attempt   alternative
invalid_response    –            1, backoff                  attempt   cached
circuit_open        –            none                        never     alternative
halted              –            none                        never     halt
risk_rejected       –            none                        never     fix_input
config              –            none                        never     escalate
unknown             –            none                        never     escalate
==================  ===========  ==========================  ========  ====================

**The breaker column** (:class:`BreakerCount`) says what an attempt that fails with the code
tells the dependency's breaker:

* ``attempt`` — the dependency is broken (network, timeout, 5xx, a body it should not send):
  each failed attempt counts as it happens, so an outage opens the breaker while calls are
  still retrying into it instead of after every call has spent its retries. A call that then
  gets an answer (a result, or a ``healthy`` refusal) *withdraws* its own counted failures:
  retries recovered them, and failures that retries recover must not open the breaker. A call
  that gives up leaves them counted. A half-open probe is one attempt: its failure reopens.
* ``healthy`` — the dependency answered and judged the request (bad input, unknown id, no
  funds, refused credentials): it is working, so the attempt counts as a success (and closes a
  half-open breaker).
* ``never`` — the attempt says nothing about the dependency's health, so it counts as neither:
  a rate limit is a throttle to wait out (the retrier honours ``Retry-After``), not a broken
  dependency; the others never reached it (halted, circuit open, our own budget or risk caps,
  a URL we cannot use) or are failures we cannot judge (``unknown``). A half-open probe that
  ends this way frees its slot for the next probe.

Counting the final outcome of each call only (one count per failed call) was considered and
rejected: with 3 retries an outage would cost four requests per call, five calls deep, before
the exchange breaker opened.

``proves_not_accepted`` says whether the failure proves the far side did not act on the
request. Only such failures may retry an order-sending call: a timeout, a dropped connection or
a 5xx leaves us not knowing whether the order rests on the book.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bastion.errors import BastionError, ErrorCode

__all__ = ["POLICIES", "STATUS_POLICIES", "Action", "BreakerCount", "Policy", "policy_for"]


class Action(StrEnum):
    """What the caller (or a human) should do once retries are spent."""

    QUEUE = "queue"  # try again later, outside this call
    CACHED = "cached"  # serve the last good answer
    ALTERNATIVE = "alternative"  # route to another provider or venue
    PARTIAL = "partial"  # settle for a partial result
    FIX_INPUT = "fix_input"  # the request is wrong; fix it, never resend it as is
    REFRESH_CREDENTIALS = "refresh_credentials"  # get new credentials, then retry once
    ESCALATE = "escalate"  # a human must act (permissions, configuration, a bug)
    REPORT = "report"  # a clear error to the caller; nothing to recover
    HALT = "halt"  # stop trading: top up or halt


class BreakerCount(StrEnum):
    """What an attempt failing with a code tells its breaker (the table's breaker column)."""

    ATTEMPT = "attempt"  # a failure, as it happens; withdrawn if the same call then recovers
    HEALTHY = "healthy"  # a success: the dependency answered and judged the request
    NEVER = "never"  # neither: a throttle, or the dependency was never reached


_FALLBACK_ACTIONS = frozenset({Action.QUEUE, Action.CACHED, Action.ALTERNATIVE, Action.PARTIAL})


@dataclass(frozen=True, slots=True)
class Policy:
    """How one kind of failure is handled.

    ``retry_attempts`` counts retries after the first attempt. ``breaker`` is what a failed
    attempt tells the breaker (:class:`BreakerCount`). ``backoff`` waits with full jitter
    between attempts (a credential refresh retries at once). ``honour_retry_after`` waits at
    least the server's ``Retry-After``.
    """

    retry_attempts: int
    breaker: BreakerCount
    action: Action
    proves_not_accepted: bool
    backoff: bool = True
    honour_retry_after: bool = False

    @property
    def allows_fallback(self) -> bool:
        """Whether a caller's fallback may answer instead of raising."""
        return self.action in _FALLBACK_ACTIONS


_ATTEMPT, _HEALTHY, _NEVER = BreakerCount.ATTEMPT, BreakerCount.HEALTHY, BreakerCount.NEVER


def _refusal(action: Action) -> Policy:
    """The dependency refused the request: it works, and resending would not help."""
    return Policy(0, _HEALTHY, action, proves_not_accepted=True)


def _not_reached(action: Action) -> Policy:
    """The request never reached the dependency: no retry, nothing for its breaker."""
    return Policy(0, _NEVER, action, proves_not_accepted=True)


POLICIES: dict[ErrorCode, Policy] = {
    ErrorCode.NETWORK: Policy(3, _ATTEMPT, Action.ALTERNATIVE, proves_not_accepted=False),
    ErrorCode.TIMEOUT: Policy(3, _ATTEMPT, Action.ALTERNATIVE, proves_not_accepted=False),
    ErrorCode.AUTH: Policy(
        1, _HEALTHY, Action.REFRESH_CREDENTIALS, proves_not_accepted=True, backoff=False
    ),
    ErrorCode.FORBIDDEN: _refusal(Action.ESCALATE),
    ErrorCode.RATE_LIMIT: Policy(
        3, _NEVER, Action.QUEUE, proves_not_accepted=True, honour_retry_after=True
    ),
    ErrorCode.BAD_REQUEST: _refusal(Action.FIX_INPUT),
    ErrorCode.NOT_FOUND: _refusal(Action.REPORT),
    ErrorCode.CONFLICT: _refusal(Action.REPORT),
    ErrorCode.INSUFFICIENT_FUNDS: _refusal(Action.FIX_INPUT),
    ErrorCode.BUDGET_EXHAUSTED: _not_reached(Action.HALT),
    ErrorCode.CIRCUIT_OPEN: _not_reached(Action.ALTERNATIVE),
    ErrorCode.HALTED: _not_reached(Action.HALT),
    ErrorCode.RISK_REJECTED: _not_reached(Action.FIX_INPUT),
    ErrorCode.CONFIG: _not_reached(Action.ESCALATE),
    ErrorCode.SERVER: Policy(
        3, _ATTEMPT, Action.ALTERNATIVE, proves_not_accepted=False, honour_retry_after=True
    ),
    ErrorCode.INVALID_RESPONSE: Policy(1, _ATTEMPT, Action.CACHED, proves_not_accepted=False),
    ErrorCode.UNKNOWN: Policy(0, _NEVER, Action.ESCALATE, proves_not_accepted=False),
}
"""One row per code."""

STATUS_POLICIES: dict[tuple[ErrorCode, int], Policy] = {
    (ErrorCode.SERVER, 500): Policy(
        2, _ATTEMPT, Action.CACHED, proves_not_accepted=False, honour_retry_after=True
    ),
    (ErrorCode.SERVER, 502): Policy(
        3, _ATTEMPT, Action.ALTERNATIVE, proves_not_accepted=False, honour_retry_after=True
    ),
    (ErrorCode.SERVER, 503): Policy(
        3, _ATTEMPT, Action.ALTERNATIVE, proves_not_accepted=False, honour_retry_after=True
    ),
    (ErrorCode.TIMEOUT, 504): Policy(1, _ATTEMPT, Action.PARTIAL, proves_not_accepted=False),
}
"""Rows that refine a code for one HTTP status. Keyed by both, so a Deribit error that arrives
with one of these statuses but maps to another code keeps its code's row."""


def policy_for(error: BastionError) -> Policy:
    """The policy row for ``error``: its (code, HTTP status) refinement, else its code's row."""
    if error.http_status is not None:
        refined = STATUS_POLICIES.get((error.code, error.http_status))
        if refined is not None:
            return refined
    return POLICIES[error.code]
