"""The taxonomy: every foreign failure maps to one code in one place, with a short message."""

from __future__ import annotations

import json

import httpx
import pytest

from bastion import errors
from bastion.errors import (
    BastionError,
    ErrorCode,
    ExchangeError,
    LLMError,
    PeerError,
    ToolError,
    classify,
    code_for_exception,
    code_for_http_status,
    error_class_for,
    parse_retry_after,
)

DEP = "deribit public/ticker"


def _httpx_exceptions() -> list[type[BaseException]]:
    """Every exception class httpx exports, plus any subclass of them httpx defines."""
    found: set[type[BaseException]] = set()
    todo = [
        value
        for value in (getattr(httpx, name) for name in httpx.__all__)
        if isinstance(value, type) and issubclass(value, BaseException)
    ]
    while todo:
        cls = todo.pop()
        if cls not in found and cls.__module__.startswith("httpx"):
            found.add(cls)
            todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", _httpx_exceptions(), ids=lambda cls: cls.__name__)
def test_every_httpx_exception_has_its_own_row(cls: type[BaseException]) -> None:
    """Each httpx exception class is named in the table itself and never maps to UNKNOWN."""
    assert f"{cls.__module__}.{cls.__qualname__}" in errors._EXCEPTIONS
    assert code_for_exception(cls) is not ErrorCode.UNKNOWN


def test_exception_table_names_real_classes() -> None:
    """Every httpx row of the table names a class httpx exports (no typo hides a gap)."""
    exported = {f"httpx.{name}" for name in httpx.__all__}
    rows = [name for name in errors._EXCEPTIONS if name.startswith("httpx.")]
    assert rows
    assert set(rows) <= exported


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectTimeout("slow"), ErrorCode.TIMEOUT),
        (httpx.ReadTimeout("slow"), ErrorCode.TIMEOUT),
        (httpx.WriteTimeout("slow"), ErrorCode.TIMEOUT),
        (httpx.PoolTimeout("busy"), ErrorCode.TIMEOUT),
        (httpx.ConnectError("refused"), ErrorCode.NETWORK),
        (httpx.ReadError("reset"), ErrorCode.NETWORK),
        (httpx.RemoteProtocolError("peer closed"), ErrorCode.NETWORK),
        (httpx.ProxyError("proxy"), ErrorCode.NETWORK),
        (httpx.LocalProtocolError("bad header"), ErrorCode.BAD_REQUEST),
        (httpx.UnsupportedProtocol("ftp"), ErrorCode.CONFIG),
        (httpx.InvalidURL("::"), ErrorCode.CONFIG),
        (httpx.DecodingError("gzip"), ErrorCode.INVALID_RESPONSE),
        (httpx.TooManyRedirects("loop"), ErrorCode.INVALID_RESPONSE),
        (httpx.StreamConsumed(), ErrorCode.BAD_REQUEST),
        (TimeoutError(), ErrorCode.TIMEOUT),
        (ConnectionResetError(), ErrorCode.NETWORK),
        (json.JSONDecodeError("x", "doc", 0), ErrorCode.INVALID_RESPONSE),
        (ValueError("boom"), ErrorCode.UNKNOWN),
    ],
)
def test_exceptions_classify_to_codes(exc: Exception, code: ErrorCode) -> None:
    """classify() gives the most specific row along the exception's MRO."""
    error = classify(exc, dependency=DEP)
    assert error.code is code
    assert error.dependency == DEP
    assert str(error).startswith(f"{DEP}: {code.name} ({type(exc).__name__})")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ErrorCode.BAD_REQUEST),
        (401, ErrorCode.AUTH),
        (402, ErrorCode.BUDGET_EXHAUSTED),
        (403, ErrorCode.FORBIDDEN),
        (404, ErrorCode.NOT_FOUND),
        (408, ErrorCode.TIMEOUT),
        (409, ErrorCode.CONFLICT),
        (410, ErrorCode.BAD_REQUEST),
        (422, ErrorCode.BAD_REQUEST),
        (429, ErrorCode.RATE_LIMIT),
        (500, ErrorCode.SERVER),
        (501, ErrorCode.SERVER),
        (502, ErrorCode.SERVER),
        (503, ErrorCode.SERVER),
        (504, ErrorCode.TIMEOUT),
        (599, ErrorCode.SERVER),
        (302, ErrorCode.INVALID_RESPONSE),
    ],
)
def test_http_statuses(status: int, code: ErrorCode) -> None:
    """Each status in the matrix, and the rest by class, maps to its code."""
    assert code_for_http_status(status) is code
    error = classify(dependency=DEP, http_status=status)
    assert (error.code, error.http_status) == (code, status)


def test_the_taxonomy_knows_no_venue() -> None:
    """errors.py holds no Deribit table: a venue's codes are its adapter's to map."""
    assert not hasattr(errors, "code_for_deribit")
    assert not hasattr(errors, "_DERIBIT_CODES")


def test_an_adapters_code_wins_and_the_raw_code_is_recorded() -> None:
    """classify takes the adapter's code as is; exchange_code and the status are only kept."""
    error = classify(
        dependency=DEP, code=ErrorCode.INSUFFICIENT_FUNDS, exchange_code=10009, http_status=400
    )
    assert (error.code, error.exchange_code, error.http_status) == (
        ErrorCode.INSUFFICIENT_FUNDS,
        10009,
        400,
    )
    assert str(error).startswith(f"{DEP}: INSUFFICIENT_FUNDS (10009)")


def test_a_raw_exchange_code_alone_does_not_classify() -> None:
    """Without the adapter's code the status decides; the venue's number is still recorded."""
    error = classify(dependency=DEP, exchange_code=10009, http_status=400)
    assert (error.code, error.exchange_code) == (ErrorCode.BAD_REQUEST, 10009)
    assert classify(dependency=DEP, exchange_code=10009).code is ErrorCode.UNKNOWN


def test_http_status_error_is_classified_by_its_response() -> None:
    """An HTTPStatusError takes its code from the status and its retry_after from the header."""
    request = httpx.Request("GET", "http://x/")
    response = httpx.Response(429, headers={"Retry-After": "7"}, request=request)
    exc = httpx.HTTPStatusError("429", request=request, response=response)
    error = classify(exc, dependency=DEP)
    assert (error.code, error.http_status, error.retry_after) == (ErrorCode.RATE_LIMIT, 429, 7.0)
    assert str(error).startswith(f"{DEP}: RATE_LIMIT (HTTP 429)")


def test_invalid_body_is_invalid_response() -> None:
    """A body that is not what the API documents is INVALID_RESPONSE, whatever its status."""
    error = classify(dependency=DEP, invalid="HTTP 200 with a non-JSON body", http_status=200)
    assert error.code is ErrorCode.INVALID_RESPONSE
    assert str(error).startswith(f"{DEP}: INVALID_RESPONSE (HTTP 200 with a non-JSON body)")


def test_forbidden_message_says_what_to_do() -> None:
    """The message is short and names the fix, as in the issue's example."""
    error = classify(dependency=DEP, http_status=403, error_class=ExchangeError)
    assert (
        str(error) == "deribit public/ticker: FORBIDDEN (HTTP 403) — the API refused this IP or key"
    )
    assert isinstance(error, ExchangeError)


def test_our_timeout_names_the_limit() -> None:
    """An expired deadline of ours says how long it waited, in the message and as a field."""
    error = classify(TimeoutError(), dependency=DEP, timeout=2.5)
    assert str(error).startswith(f"{DEP}: TIMEOUT after 2.5 s")
    assert error.timeout == 2.5
    assert error.to_dict()["timeout"] == 2.5
    assert "timeout=2.5" in repr(error)


def test_a_timeout_limit_is_kept_only_for_a_timeout() -> None:
    """A limit handed in with a failure that is not a timeout is not the error's timeout."""
    assert classify(ConnectionError(), dependency=DEP, timeout=2.5).timeout is None
    assert classify(httpx.ReadTimeout("slow"), dependency=DEP).timeout is None


def test_the_foreign_exception_is_the_cause() -> None:
    """classify chains the foreign exception, as raise … from exc would."""
    exc = ConnectionError("refused")
    assert classify(exc, dependency=DEP).__cause__ is exc


def test_classified_errors_pass_through() -> None:
    """A BastionError is already classified and comes back as the same object."""
    original = ExchangeError("x", code=ErrorCode.NOT_FOUND)
    assert classify(original, dependency=DEP) is original


@pytest.mark.parametrize(
    ("layer", "cls"),
    [("exchange", ExchangeError), ("llm", LLMError), ("tool", ToolError), ("peer", PeerError)],
)
def test_each_layer_has_its_class(layer: errors.Layer, cls: type[BastionError]) -> None:
    """Failures of each layer are raised as that layer's BastionError subclass."""
    assert error_class_for(layer) is cls
    assert issubclass(cls, BastionError)


@pytest.mark.parametrize(
    ("value", "now", "seconds"),
    [
        ("3", None, 3.0),
        ("0.5", None, 0.5),
        ("-4", None, 0.0),
        ("soon", None, None),
        (None, None, None),
        ("Thu, 01 Jan 2026 00:00:10 GMT", 1_767_225_600.0, 10.0),
        ("Thu, 01 Jan 2026 00:00:10 GMT", None, None),
    ],
)
def test_retry_after_values(value: str | None, now: float | None, seconds: float | None) -> None:
    """Retry-After is read as delta-seconds or, given the time, an HTTP date; junk is None."""
    assert parse_retry_after(value, now=now) == seconds


def test_error_to_dict_and_repr_carry_the_data() -> None:
    """Errors serialise their code and fields for traces and show them in repr."""
    error = classify(
        dependency=DEP,
        code=ErrorCode.RATE_LIMIT,
        exchange_code=10028,
        http_status=429,
        retry_after=2.0,
    )
    assert error.to_dict() == {
        "kind": "rate_limit",
        "message": error.message,
        "dependency": DEP,
        "http_status": 429,
        "exchange_code": 10028,
        "retry_after": 2.0,
    }
    assert "exchange_code=10028" in repr(error)


def test_public_names_sorted_and_complete() -> None:
    """bastion.errors exports a sorted __all__ and every name in it exists."""
    assert errors.__all__ == sorted(errors.__all__)
    assert all(hasattr(errors, name) for name in errors.__all__)
