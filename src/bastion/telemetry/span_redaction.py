"""Spans redacted on their way out: the exporter wrapper every span of Bastion passes through.

A span's strings (attributes, an exception event's message and stack trace, the status
description) may quote a secret: an error that echoes a request URL with its key, a library
exception holding a header. The NDJSON trace redacts each line as it is written
(:mod:`bastion.trace.record`); this wrapper does the same for every span before the OTLP
exporter sees it, with the same :class:`~bastion.trace.redact.Redactor`, so no caller has to
remember to. Imported only when spans are exported (it loads the OpenTelemetry SDK).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status
from opentelemetry.util.types import Attributes

from bastion.trace.redact import Redactor

__all__ = ["RedactingExporter"]


class RedactingExporter(SpanExporter):
    """A span exporter that hands ``inner`` copies of the spans with secrets redacted.

    A span with nothing to redact is passed on as it is; one with a secret in a string value
    is rebuilt with the redacted values (its dropped-attribute counts are not carried over).
    """

    def __init__(self, inner: SpanExporter, redactor: Redactor) -> None:
        self.inner = inner
        self._redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._redacted(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def _redacted(self, span: ReadableSpan) -> ReadableSpan:
        attributes = self._attributes(span.attributes)
        events = [(event, self._attributes(event.attributes)) for event in span.events]
        description = span.status.description
        clean = self._redactor.redact_text(description) if description else description
        if (
            attributes is span.attributes
            and all(new is event.attributes for event, new in events)
            and clean == description
        ):
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=[
                event if new is event.attributes else Event(event.name, new, event.timestamp)
                for event, new in events
            ],
            links=span.links,
            kind=span.kind,
            status=Status(span.status.status_code, clean),
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _attributes(self, attributes: Attributes) -> Attributes:
        """``attributes`` itself when no string in it changes, else a redacted copy."""
        if not attributes:
            return attributes
        redact = self._redactor.redact_text
        changed: dict[str, str | tuple[str, ...]] = {}
        for key, value in attributes.items():
            if isinstance(value, str):
                text = redact(value)
                if text != value:
                    changed[key] = text
            elif isinstance(value, tuple | list) and value and isinstance(value[0], str):
                texts = tuple(redact(str(v)) for v in value)
                if texts != tuple(value):
                    changed[key] = texts
        if not changed:
            return attributes
        return {**attributes, **changed}
