"""What to do about each failure: one row per :class:`~bastion.errors.ErrorCode`.

The table is data, read by the choke point (:mod:`bastion.resilience.call`), the retrier and
the breakers; nothing else decides whether a failure is retried, counts against a breaker or
may fall back. A few HTTP statuses refine their code's row (a 500 is retried less than a 503,
a 504 settles for a partial result), which is the matrix of issue 3:

==========  ===========  ==========================  =======  ====================
code        HTTP         retries                     breaker  action
==========  ===========  ==========================  =======  ====================
rate_limit  429          3, backoff, Retry-After     yes      queue
server      500          2, backoff                  yes      cached
server      502, 503     3, backoff                  yes      alternative
timeout     504          1, backoff                  yes      partial
bad_request 400          none                        no       fix_input
auth        401          1, after refreshing creds   no       refresh_credentials
forbidden   403          none                        no       escalate
not_found   404          none                        no       report
budget      402          none                        no       halt
network     –            3, backoff                  yes      alternative
timeout     –            3, backoff                  yes      alternative
==========  ===========  ==========================  =======  ====================

``proves_not_accepted`` says whether the failure proves the far side did not act on the
request. Only such failures may retry an order-sending call: a timeout, a dropped connection or
a 5xx leaves us not knowing whether the order rests on the book.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bastion.errors import BastionError, ErrorCode

__all__ = ["POLICIES", "STATUS_POLICIES", "Action", "Policy", "policy_for"]


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


_FALLBACK_ACTIONS = frozenset({Action.QUEUE, Action.CACHED, Action.ALTERNATIVE, Action.PARTIAL})


@dataclass(frozen=True, slots=True)
class Policy:
    """How one kind of failure is handled.

    ``retry_attempts`` counts retries after the first attempt. ``backoff`` waits with full
    jitter between attempts (a credential refresh retries at once). ``honour_retry_after`` waits
    at least the server's ``Retry-After``.
    """

    retry_attempts: int
    counts_for_breaker: bool
    action: Action
    proves_not_accepted: bool
    backoff: bool = True
    honour_retry_after: bool = False

    @property
    def allows_fallback(self) -> bool:
        """Whether a caller's fallback may answer instead of raising."""
        return self.action in _FALLBACK_ACTIONS


def _refusal(action: Action) -> Policy:
    """A failure that proves the request was refused: no retry, no breaker."""
    return Policy(0, counts_for_breaker=False, action=action, proves_not_accepted=True)


POLICIES: dict[ErrorCode, Policy] = {
    ErrorCode.NETWORK: Policy(3, True, Action.ALTERNATIVE, proves_not_accepted=False),
    ErrorCode.TIMEOUT: Policy(3, True, Action.ALTERNATIVE, proves_not_accepted=False),
    ErrorCode.AUTH: Policy(
        1, False, Action.REFRESH_CREDENTIALS, proves_not_accepted=True, backoff=False
    ),
    ErrorCode.FORBIDDEN: _refusal(Action.ESCALATE),
    ErrorCode.RATE_LIMIT: Policy(
        3, True, Action.QUEUE, proves_not_accepted=True, honour_retry_after=True
    ),
    ErrorCode.BAD_REQUEST: _refusal(Action.FIX_INPUT),
    ErrorCode.NOT_FOUND: _refusal(Action.REPORT),
    ErrorCode.CONFLICT: _refusal(Action.REPORT),
    ErrorCode.INSUFFICIENT_FUNDS: _refusal(Action.FIX_INPUT),
    ErrorCode.BUDGET_EXHAUSTED: _refusal(Action.HALT),
    ErrorCode.CIRCUIT_OPEN: _refusal(Action.ALTERNATIVE),
    ErrorCode.HALTED: _refusal(Action.HALT),
    ErrorCode.RISK_REJECTED: _refusal(Action.FIX_INPUT),
    ErrorCode.CONFIG: _refusal(Action.ESCALATE),
    ErrorCode.SERVER: Policy(
        3, True, Action.ALTERNATIVE, proves_not_accepted=False, honour_retry_after=True
    ),
    ErrorCode.INVALID_RESPONSE: Policy(1, True, Action.CACHED, proves_not_accepted=False),
    ErrorCode.UNKNOWN: Policy(0, False, Action.ESCALATE, proves_not_accepted=False),
}
"""One row per code."""

STATUS_POLICIES: dict[tuple[ErrorCode, int], Policy] = {
    (ErrorCode.SERVER, 500): Policy(
        2, True, Action.CACHED, proves_not_accepted=False, honour_retry_after=True
    ),
    (ErrorCode.SERVER, 502): Policy(
        3, True, Action.ALTERNATIVE, proves_not_accepted=False, honour_retry_after=True
    ),
    (ErrorCode.SERVER, 503): Policy(
        3, True, Action.ALTERNATIVE, proves_not_accepted=False, honour_retry_after=True
    ),
    (ErrorCode.TIMEOUT, 504): Policy(1, True, Action.PARTIAL, proves_not_accepted=False),
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
