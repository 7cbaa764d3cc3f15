"""Resilience: the one choke point every external call goes through."""

from bastion.resilience.call import (
    Layer,
    call,
    classify_exception,
    error_class_for,
    error_message,
)

__all__ = ["Layer", "call", "classify_exception", "error_class_for", "error_message"]
