"""Tracing from the OTEL_* variables: export only when asked, clear errors, no secret in a span."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from bastion.errors import ConfigError
from bastion.telemetry.tracing import (
    SCHEMA_URL,
    Tracing,
    TracingConfig,
    current_ids,
    header_secrets,
)

KEY = "sk-live-abcdef0123456789"
ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


def test_without_an_endpoint_nothing_is_exported_yet_spans_carry_ids() -> None:
    """No endpoint: no exporter, no error; spans are non-recording but have a real trace id, so
    the NDJSON trace and the logs still correlate a step's lines."""
    tracing = Tracing.from_env({})
    assert not tracing.exporting
    assert tracing.config.endpoint is None
    with tracing.tracer.start_as_current_span("bastion.step") as span:
        assert not span.is_recording()
        ids = current_ids()
        assert ids is not None
        trace_id, span_id, flags = ids
        assert len(trace_id) == 32
        assert len(span_id) == 16
        assert int(trace_id, 16) != 0
        assert int(flags, 16) & 0x01 == 0  # not sampled
    tracing.shutdown()
    tracing.shutdown()  # twice is harmless


def test_sdk_disabled_is_a_no_op_tracer_without_ids() -> None:
    tracing = Tracing.from_env({"OTEL_SDK_DISABLED": "true", **ENDPOINT})
    assert not tracing.exporting
    with tracing.tracer.start_as_current_span("bastion.step"):
        assert current_ids() is None
    assert current_ids() is None  # outside any span too


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED"),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
            "OTEL_TRACES_SAMPLER_ARG",
        ),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://x/"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:port"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ({"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "0"}, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"}, "OTEL_EXPORTER_OTLP_COMPRESSION"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "team=risk,oops"}, "OTEL_RESOURCE_ATTRIBUTES"),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
        ({"OTEL_BSP_SCHEDULE_DELAY": "soon"}, "OTEL_BSP_SCHEDULE_DELAY"),
        ({"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "-1"}, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(
    env: dict[str, str], names: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():  # the SDK reads the span limits from the process itself
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=names) as raised:
        Tracing.from_env(env)
    assert "Fix:" in str(raised.value)


def test_a_malformed_header_is_named_without_its_value() -> None:
    """Headers carry credentials: the error says which entry, never what it holds."""
    env = {**ENDPOINT, "OTEL_EXPORTER_OTLP_HEADERS": f"x-team=risk,Bearer {KEY}"}
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_HEADERS: entry 2") as raised:
        Tracing.from_env(env)
    assert KEY not in str(raised.value)
    assert KEY not in repr(TracingConfig(headers={"authorization": KEY}))


def test_endpoints_headers_and_timeouts_follow_the_specification() -> None:
    base = TracingConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/"})
    assert base.endpoint == "https://collector:4318/v1/traces"
    signal = TracingConfig.from_env(
        {**ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/custom"}
    )
    assert signal.endpoint == "http://jaeger:4318/custom"  # used as given
    assert TracingConfig.from_env({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}).endpoint is None
    default = TracingConfig.from_env({"OTEL_TRACES_EXPORTER": "otlp"})
    assert default.endpoint == "http://localhost:4318/v1/traces"
    config = TracingConfig.from_env(
        {
            **ENDPOINT,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-generic=1",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"Authorization=Bearer%20{KEY},x-team=risk",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
    )
    assert config.headers == {"authorization": f"Bearer {KEY}", "x-team": "risk"}
    assert config.timeout_seconds == 2.5  # milliseconds, as the specification says
    assert config.compression == "gzip"
    assert (config.sampler, config.sampler_ratio) == ("parentbased_traceidratio", 0.25)
    assert config.service_name == "bastion"
    named = TracingConfig.from_env({"OTEL_RESOURCE_ATTRIBUTES": "service.name=desk-7"})
    assert named.service_name == "desk-7"
    assert TracingConfig.from_env({"OTEL_SERVICE_NAME": "desk-8"}).service_name == "desk-8"
    assert f"Bearer {KEY}" in header_secrets(
        {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{KEY}"}
    )


def test_two_runtimes_in_one_process_keep_their_spans_apart() -> None:
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    a = Tracing.from_env({}, exporter=first)
    b = Tracing.from_env({}, exporter=second)
    with a.tracer.start_as_current_span("a"):
        pass
    with b.tracer.start_as_current_span("b"):
        pass
    a.shutdown()
    b.shutdown()
    assert [s.name for s in first.get_finished_spans()] == ["a"]
    assert [s.name for s in second.get_finished_spans()] == ["b"]
    (span,) = first.get_finished_spans()
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.schema_url == SCHEMA_URL
    assert span.resource.attributes["service.name"] == "bastion"


def test_no_secret_leaves_in_a_span_whatever_recorded_it() -> None:
    """An attribute, an exception's message and stack, a status: all redacted on export."""
    exported = InMemorySpanExporter()
    tracing = Tracing.from_env({}, secrets=[KEY], exporter=exported)
    url = f"https://user:hunter2-password@db.example/x?api_key={KEY}"
    with tracing.tracer.start_as_current_span("deribit private/buy") as span:
        span.set_attribute("bastion.detail", f"refused {KEY}")
        span.set_attribute("bastion.urls", [url, "plain"])
        span.set_attribute("bastion.step", 3)
        try:
            raise RuntimeError(f"request to {url} failed")
        except RuntimeError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"with {KEY}"))
    with tracing.tracer.start_as_current_span("clean") as span:
        span.set_attribute("bastion.detail", "nothing to hide")
    tracing.shutdown()
    dirty, clean = exported.get_finished_spans()
    text = repr(dict(dirty.attributes or {})) + repr(
        [dict(e.attributes or {}) for e in dirty.events]
    )
    text += str(dirty.status.description)
    assert KEY not in text
    assert "hunter2-password" not in text
    assert "[REDACTED]" in text
    assert dirty.attributes is not None
    assert dirty.attributes["bastion.step"] == 3
    assert dirty.attributes["bastion.urls"][1] == "plain"
    assert dirty.events[0].name == "exception"
    assert clean.attributes is not None
    assert clean.attributes["bastion.detail"] == "nothing to hide"
