"""Resilience: the one choke point every external call goes through, and what it is made of.

:class:`Resilience` (``.call``) is the choke point; :mod:`~bastion.resilience.policy` says what
each failure code means for retries, breakers and fallbacks; :mod:`~bastion.resilience.retry`
computes full-jitter backoff and has the process-wide test mode;
:mod:`~bastion.resilience.breaker` holds one circuit breaker per dependency.
"""

from bastion.errors import Layer, error_class_for, error_message
from bastion.resilience.breaker import (
    BreakerChange,
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
)
from bastion.resilience.call import Resilience, call, classify_exception
from bastion.resilience.policy import Action, BreakerCount, Policy, policy_for
from bastion.resilience.retry import (
    RetryDetails,
    RetrySettings,
    compute_backoff,
    is_testing,
    set_testing,
)

__all__ = [
    "Action",
    "BreakerChange",
    "BreakerConfig",
    "BreakerCount",
    "BreakerRegistry",
    "BreakerState",
    "CircuitBreaker",
    "Layer",
    "Policy",
    "Resilience",
    "RetryDetails",
    "RetrySettings",
    "call",
    "classify_exception",
    "compute_backoff",
    "error_class_for",
    "error_message",
    "is_testing",
    "policy_for",
    "set_testing",
]
