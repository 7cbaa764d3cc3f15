"""OpenTelemetry tracing: a tracer provider per runtime, set up from the standard OTEL_* variables.

A :class:`Tracing` owns its own ``TracerProvider`` (never the process-global one), so two
runtimes in one process (or two tests) never share spans or exporters; its :attr:`tracer` is
injected where spans are made, the way :class:`~bastion.telemetry.metrics.Metrics` is:

=====================  ======================================================================
span                   where, kind and attributes
=====================  ======================================================================
``bastion.run``        the runner's whole run (start, health check, recovery, loop, finish)
``invoke_agent <a>``   ``Loop.run``; INTERNAL; ``gen_ai.operation.name``, ``gen_ai.agent.*``
``bastion.step``       one per loop step; ``bastion.step``, ``bastion.step.status``, the
                       trading state and halt, risk verdicts and halt trips as events
``bastion.<phase>``    ``observe``, ``decide``, ``review``, ``send`` inside a trading step
``<dependency>``       every :meth:`Resilience.call <bastion.resilience.call.Resilience.call>`;
                       CLIENT; ``bastion.dependency``, ``bastion.layer``, ``bastion.outcome``
                       (``ok`` or the :class:`~bastion.errors.ErrorCode`), ``bastion.retries``
``chat <model>``       each LLM request (every attempt); CLIENT; GenAI attributes below
``execute_tool <t>``   each tool call; INTERNAL; ``gen_ai.tool.name``, ``gen_ai.tool.type``
=====================  ======================================================================

**GenAI semantic conventions, pinned to v1.37.0** (:data:`SEMCONV_VERSION`; the tracer's schema
URL says so), the first release with ``gen_ai.provider.name`` (it replaced ``gen_ai.system``).
Every ``gen_ai.*`` name is "Development" there and has since moved to its own repository, so the
names are spelt out here rather than imported from the deprecated incubating constants. The LLM
span carries ``gen_ai.operation.name`` (``chat``), ``gen_ai.provider.name``,
``gen_ai.request.model``, ``gen_ai.request.max_tokens``, ``gen_ai.response.model``,
``gen_ai.response.finish_reasons``, ``gen_ai.usage.input_tokens`` / ``output_tokens`` and, on a
failure, ``error.type`` (the error code). **Content capture is off**: no prompt, answer, tool
argument or tool result is put on a span (the NDJSON trace keeps those, redacted).

**Configuration** (read by :meth:`Tracing.from_env`; a malformed value is a
:class:`~bastion.errors.ConfigError` naming the variable, raised before a run starts):

* ``OTEL_SDK_DISABLED=true``: no SDK at all, a no-op tracer (no trace ids anywhere);
* ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as given) or ``OTEL_EXPORTER_OTLP_ENDPOINT``
  (``/v1/traces`` appended): spans are exported over OTLP/HTTP protobuf through a
  ``BatchSpanProcessor``. Neither set, or ``OTEL_TRACES_EXPORTER=none``: nothing is exported
  (an explicit ``OTEL_TRACES_EXPORTER=otlp`` without an endpoint uses the spec's default
  ``http://localhost:4318``). Only ``http/protobuf`` is supported
  (``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``);
* ``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`` (``k=v,k2=v2``, percent-encoded), which may carry
  credentials: their values are never logged and are redacted from logs
  (:func:`header_secrets`); an error about them names the variable, never the value;
* ``OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`` in **milliseconds**, as the specification says (the
  Python exporter's own reading takes seconds; it is given the converted value explicitly),
  ``OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`` (``gzip``, ``deflate``, ``none``);
  certificates (``OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`` ...) are read by the exporter;
* ``OTEL_SERVICE_NAME`` (default ``bastion``), ``OTEL_RESOURCE_ATTRIBUTES``;
* ``OTEL_TRACES_SAMPLER`` (``always_on``, ``always_off``, ``traceidratio``,
  ``parentbased_always_on``: the default, ``parentbased_always_off``,
  ``parentbased_traceidratio``) and ``OTEL_TRACES_SAMPLER_ARG`` (a ratio in [0, 1]);
* ``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_BSP_EXPORT_TIMEOUT``, ``OTEL_BSP_MAX_QUEUE_SIZE``,
  ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``; the span limits (``OTEL_SPAN_*_LIMIT``).

**Secrets never leave in a span.** Every span is redacted on its way to the exporter
(:class:`~bastion.telemetry.span_redaction.RedactingExporter`): each string attribute, event
attribute (an exception's message and stack trace) and status description goes through the
same :class:`~bastion.trace.redact.Redactor` as the NDJSON trace, with the runtime's secret
values and the OTLP header values, so an exception that quotes a key or a URL with a password
is exported masked, whatever code recorded it.

**Cost when nothing is exported.** The provider is still the SDK's, with an ``always_off``
sampler and no processor: every span is a non-recording one that costs an id and a sampler call
(no attributes are stored, nothing is queued), yet has a real trace id, so each step's NDJSON
lines and log lines still carry ``trace_id`` / ``span_id`` that correlate them (``trace_flags``
``00`` says nothing was sampled). Code that computes span attributes checks
``span.is_recording()`` first, the choke point makes its span current only when it records, and
the loop's phase spans exist only under a recording step. Measured: about 10 µs for a current
non-recording span, 4 µs for a plain one; a step of the no-op benchmark agent pays some 50 µs in
all, against the loop's ~3.7 ms per step. ``OTEL_SDK_DISABLED=true`` is cheaper still (no ids).

**One trace per run.** Steps are children of the run, so a run's trace id is every step's; a
backend shows a long run as one large trace, and the run span itself is exported when the run
ends. :meth:`Tracing.shutdown` flushes the queue at the end of a run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

from opentelemetry import trace
from opentelemetry.trace import Tracer

if TYPE_CHECKING:
    from collections.abc import Iterable

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

from bastion.errors import ConfigError
from bastion.sensitive import mask_url
from bastion.span_ids import current_ids
from bastion.trace.redact import Redactor

__all__ = [
    "SCHEMA_URL",
    "SEMCONV_VERSION",
    "Tracing",
    "TracingConfig",
    "current_ids",
    "header_secrets",
    "provider_name",
]

_log = logging.getLogger(__name__)

SEMCONV_VERSION = "1.37.0"
"""The OpenTelemetry semantic conventions version Bastion's span attributes follow."""
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

DEFAULT_SERVICE_NAME = "bastion"
_DEFAULT_ENDPOINT = "http://localhost:4318"
_TRACES_PATH = "v1/traces"
_DEFAULT_TIMEOUT_MS = 10_000

Compression = Literal["none", "gzip", "deflate"]
_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_BSP = {  # variable: (lowest allowed, what it bounds)
    "OTEL_BSP_SCHEDULE_DELAY": 0,
    "OTEL_BSP_EXPORT_TIMEOUT": 0,
    "OTEL_BSP_MAX_QUEUE_SIZE": 1,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 1,
}

# The gen_ai.provider.name of each adapter's ``provider`` (semconv's well-known values); an
# adapter not listed (the scripted one) is named as it names itself, prefixed, as custom values
# should be.
_PROVIDERS = {"openai": "openai", "anthropic": "anthropic"}


def provider_name(provider: str) -> str:
    """``gen_ai.provider.name`` for an adapter's ``provider``."""
    return _PROVIDERS.get(provider, f"bastion.{provider}")


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """The OTEL_* variables, parsed and checked (see the module docstring for each)."""

    disabled: bool = False
    endpoint: str | None = None
    """The full OTLP/HTTP traces URL, or None: nothing is exported."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_seconds: float = _DEFAULT_TIMEOUT_MS / 1000
    compression: Compression = "none"
    sampler: str = "parentbased_always_on"
    sampler_ratio: float = 1.0
    service_name: str = DEFAULT_SERVICE_NAME
    batch: Mapping[str, int] = field(default_factory=dict)
    """``OTEL_BSP_*`` values that were set, by variable."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TracingConfig:
        """Read the variables from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        disabled = _boolean(env, "OTEL_SDK_DISABLED")
        if disabled:
            return cls(disabled=True)
        endpoint = _endpoint(env)
        if endpoint is not None:
            _protocol(env)
        sampler = _get(env, "OTEL_TRACES_SAMPLER").lower() or "parentbased_always_on"
        if sampler not in _SAMPLERS:
            raise _bad(
                "OTEL_TRACES_SAMPLER",
                f"{sampler!r} is not a sampler Bastion supports; use one of {', '.join(_SAMPLERS)}",
            )
        _resource_attributes(env)  # checked here; the SDK's resource detector reads them
        return cls(
            endpoint=endpoint,
            headers=_headers(env),
            timeout_seconds=_timeout_ms(env) / 1000,
            compression=_compression(env),
            sampler=sampler,
            sampler_ratio=_ratio(env) if sampler.endswith("ratio") else 1.0,
            service_name=_get(env, "OTEL_SERVICE_NAME")
            or _resource_attributes(env).get("service.name", DEFAULT_SERVICE_NAME),
            batch={name: _integer(env, name, low) for name, low in _BSP.items() if _get(env, name)},
        )


class Tracing:
    """One runtime's tracer and the provider behind it; :meth:`shutdown` at the end of a run."""

    def __init__(
        self,
        tracer: Tracer,
        *,
        provider: TracerProvider | None = None,
        config: TracingConfig | None = None,
        exporting: bool = False,
    ) -> None:
        """Use :meth:`from_env` or :meth:`off`; ``tracer`` is what components get injected."""
        self.tracer = tracer
        self.config = config or TracingConfig(disabled=True)
        self.exporting = exporting
        """True when spans are recorded and sent somewhere."""
        self._provider = provider
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def off(cls) -> Tracing:
        """A no-op tracer: spans cost almost nothing and carry no ids (the default in tests)."""
        return cls(trace.NoOpTracer())

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        secrets: Iterable[str] = (),
        exporter: SpanExporter | None = None,
    ) -> Tracing:
        """Tracing as the OTEL_* variables say; raises :class:`ConfigError` on a bad value.

        ``secrets`` are redacted from every exported span (``Settings.secret_values()``).
        ``exporter`` replaces the OTLP exporter (a test's in-memory one); it is used whether or
        not an endpoint is configured.
        """
        config = TracingConfig.from_env(environ)
        if config.disabled:
            return cls(trace.NoOpTracer(), config=config)
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415  the SDK loads lazily
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

        exporting = exporter is not None or config.endpoint is not None
        resource = Resource.create(
            {"service.name": config.service_name, "service.version": _bastion_version()}
        )
        try:
            provider = TracerProvider(
                sampler=_sampler(config) if exporting else _sampler_off(),
                resource=resource,
                shutdown_on_exit=False,  # shut down by the runtime, not at interpreter exit
            )
        except ValueError as exc:  # the SDK's span limits: "OTEL_SPAN_... must be ..."
            raise ConfigError(f"{exc}. Fix: correct or unset that variable.") from None
        if exporting:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

            from bastion.telemetry.span_redaction import RedactingExporter  # noqa: PLC0415

            span_exporter = exporter if exporter is not None else _otlp_exporter(config)
            redactor = Redactor([*secrets, *config.headers.values()])
            provider.add_span_processor(
                BatchSpanProcessor(
                    RedactingExporter(span_exporter, redactor),
                    max_queue_size=config.batch.get("OTEL_BSP_MAX_QUEUE_SIZE"),
                    schedule_delay_millis=config.batch.get("OTEL_BSP_SCHEDULE_DELAY"),
                    max_export_batch_size=config.batch.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
                    export_timeout_millis=config.batch.get("OTEL_BSP_EXPORT_TIMEOUT"),
                )
            )
            _log.info(
                "tracing: exporting spans to %s as service %s",
                mask_url(config.endpoint or "an in-process exporter"),
                config.service_name,
            )
        tracer = provider.get_tracer("bastion", _bastion_version(), schema_url=SCHEMA_URL)
        return cls(tracer, provider=provider, config=config, exporting=exporting)

    def shutdown(self) -> None:
        """Flush what is queued and stop the exporter; safe to call twice, never raises.

        Blocks up to the export timeout when the collector does not answer: call it from a
        thread in async code (``asyncio.to_thread``).
        """
        with self._lock:
            if self._closed or self._provider is None:
                self._closed = True
                return
            self._closed = True
        try:
            self._provider.shutdown()
        except Exception as exc:  # a collector that went away must not fail the run's end
            _log.warning("tracing: could not flush spans at shutdown: %s", type(exc).__name__)


def header_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The OTLP header values (credentials, often), for the log redactor; bad ones ignored."""
    env = os.environ if environ is None else environ
    values: list[str] = []
    for name in ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        raw = _get(env, name)
        values.extend(raw.split(",") if raw else [])
        with contextlib.suppress(ConfigError):  # the run's start reports it, naming it
            values.extend(_parse_pairs(env, name).values())
    return [v.strip() for v in values if v.strip()]


# -- parsing ---------------------------------------------------------------------------------
def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _bad(name: str, why: str) -> ConfigError:
    return ConfigError(f"{name}: {why}. Fix: correct or unset {name}.")


def _boolean(env: Mapping[str, str], name: str) -> bool:
    raw = _get(env, name).lower()
    if raw not in ("", "true", "false"):
        raise _bad(name, f"{raw!r} is not a boolean; use true or false")
    return raw == "true"


def _endpoint(env: Mapping[str, str]) -> str | None:
    exporter = _get(env, "OTEL_TRACES_EXPORTER").lower()
    if exporter not in ("", "otlp", "none"):
        raise _bad(
            "OTEL_TRACES_EXPORTER",
            f"{exporter!r} is not an exporter Bastion has; use otlp or none",
        )
    if exporter == "none":
        return None
    traces = _get(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return _url(traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = _get(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if not base and exporter != "otlp":
        return None
    base = _url(base or _DEFAULT_ENDPOINT, "OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.removesuffix('/')}/{_TRACES_PATH}"


def _url(value: str, name: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(name, f"{mask_url(value)!r} is not an http(s) URL with a host")
    return value


def _protocol(env: Mapping[str, str]) -> None:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = _get(env, name)
        if raw and raw != "http/protobuf":
            raise _bad(
                name, f"{raw!r} is not supported; Bastion exports OTLP over http/protobuf only"
            )
        if raw:
            return


def _parse_pairs(env: Mapping[str, str], name: str) -> dict[str, str]:
    """``k=v,k2=v2`` (W3C baggage-like, percent-encoded); the error never repeats a value."""
    pairs: dict[str, str] = {}
    raw = _get(env, name)
    for number, item in enumerate(raw.split(",") if raw else [], start=1):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = unquote(key).strip()
        if not sep or not key or any(c.isspace() for c in key):
            raise _bad(name, f"entry {number} is not key=value (its value is not shown)")
        pairs[key] = unquote(value).strip()
    return pairs


def _headers(env: Mapping[str, str]) -> dict[str, str]:
    """The signal's headers when set, else the generic ones (the specification's precedence)."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"):
        if _get(env, name):
            return {k.lower(): v for k, v in _parse_pairs(env, name).items()}
    return {}


def _resource_attributes(env: Mapping[str, str]) -> dict[str, str]:
    return _parse_pairs(env, "OTEL_RESOURCE_ATTRIBUTES")


def _integer(env: Mapping[str, str], name: str, low: int) -> int:
    raw = _get(env, name)
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"{raw!r} is not a whole number") from None
    if value < low:
        raise _bad(name, f"{value} is below {low}")
    return value


def _timeout_ms(env: Mapping[str, str]) -> int:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        if _get(env, name):
            return _integer(env, name, 1)
    return _DEFAULT_TIMEOUT_MS


def _compression(env: Mapping[str, str]) -> Compression:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"):
        raw = _get(env, name).lower()
        if not raw:
            continue
        if raw == "none":
            return "none"
        if raw == "gzip":
            return "gzip"
        if raw == "deflate":
            return "deflate"
        raise _bad(name, f"{raw!r} is not a compression; use gzip, deflate or none")
    return "none"


def _ratio(env: Mapping[str, str]) -> float:
    raw = _get(env, "OTEL_TRACES_SAMPLER_ARG") or "1.0"
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise _bad("OTEL_TRACES_SAMPLER_ARG", f"{raw!r} is not a ratio between 0 and 1")
    return ratio


# -- building --------------------------------------------------------------------------------
def _sampler(config: TracingConfig) -> Sampler:
    from opentelemetry.sdk.trace import sampling  # noqa: PLC0415

    ratio = config.sampler_ratio
    root: Sampler = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
    }[config.sampler.removeprefix("parentbased_")]
    return sampling.ParentBased(root) if config.sampler.startswith("parentbased_") else root


def _sampler_off() -> Sampler:
    from opentelemetry.sdk.trace import sampling  # noqa: PLC0415

    return sampling.ALWAYS_OFF


def _otlp_exporter(config: TracingConfig) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http import Compression as OTLPCompression  # noqa: PLC0415
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    compression = {
        "none": OTLPCompression.NoCompression,
        "gzip": OTLPCompression.Gzip,
        "deflate": OTLPCompression.Deflate,
    }[config.compression]
    return OTLPSpanExporter(
        endpoint=config.endpoint,
        headers=dict(config.headers),
        timeout=config.timeout_seconds,
        compression=compression,
    )


def _bastion_version() -> str:
    try:
        return version("bastion")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
