"""The current OpenTelemetry span's ids, in the hex the trace lines and log lines carry.

On the ground floor because both records that carry them need it: the NDJSON trace
(:mod:`bastion.trace.sink`) and the logs (:mod:`bastion.telemetry.logs`); the tracer that makes
the spans (:mod:`bastion.telemetry.tracing`) sits beside them and must not be imported for it.
It reads only the OpenTelemetry API's context, which a runtime without tracing also has.
"""

from __future__ import annotations

from opentelemetry import trace

__all__ = ["current_ids"]


def current_ids() -> tuple[str, str, str] | None:
    """The current span's ``(trace_id, span_id, trace_flags)`` as lower-case hex, or None.

    W3C Trace Context widths: 32, 16 and 2 hex digits. A non-recording span with a valid
    context (tracing on, nothing sampled) counts; outside any span, or with the SDK disabled,
    there is none.
    """
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        format(context.trace_flags, "02x"),
    )
