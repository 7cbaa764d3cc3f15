"""Parameter coercion from query-string text and JSON, and the errors for bad values."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.simulators.paper.errors import RpcError
from bastion.simulators.paper.params import Params


def error_of(call: Any) -> RpcError:
    with pytest.raises(RpcError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(("raw", "expected"), [("0.1", 0.1), (0.1, 0.1), (10, 10.0), ("-5", -5.0)])
def test_number_accepts_text_and_json(raw: Any, expected: float) -> None:
    """Numbers arrive as '0.1' (GET) or 0.1 (POST) and read the same."""
    assert Params({"amount": raw}).number("amount") == expected


@pytest.mark.parametrize("raw", ["abc", "", "nan", "inf", True, [1], {"a": 1}])
def test_non_numbers_are_invalid_arguments(raw: Any) -> None:
    """A present but non-numeric (or non-finite) value is 11029 naming the parameter."""
    error = error_of(lambda: Params({"amount": raw}).number("amount"))
    assert error.code == 11029
    assert error.data == {"reason": "must be a number", "param": "amount"}


def test_missing_required_is_invalid_params() -> None:
    """A required parameter that is absent or null is -32602 with reason and param."""
    for raw in ({}, {"instrument_name": None}):
        error = error_of(lambda raw=raw: Params(raw).text("instrument_name"))
        assert error.code == -32602
        assert error.data == {"reason": "missing required parameter", "param": "instrument_name"}


def test_defaults_apply_only_when_absent() -> None:
    """An absent optional parameter takes its default; a present one is read."""
    params = Params({"depth": "5"})
    assert params.integer("depth", 10) == 5
    assert params.integer("count", 10) == 10
    assert params.number("price", None) is None
    assert params.text("label", "") == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("false", False), (True, True), ("TRUE", True), ("0", False)],
)
def test_flags(raw: Any, expected: bool) -> None:
    """Booleans arrive as JSON or as the lowercase text ccxt writes."""
    assert Params({"reduce_only": raw}).flag("reduce_only") is expected


def test_bad_flag_and_bad_integer() -> None:
    """'yes' is not a boolean and 1.5 is not an integer: both 11029."""
    assert error_of(lambda: Params({"post_only": "yes"}).flag("post_only")).code == 11029
    assert error_of(lambda: Params({"depth": "1.5"}).integer("depth")).code == 11029


def test_text_keeps_numeric_ids_as_text() -> None:
    """A numeric client id stays a string (no blind coercion of query values)."""
    assert Params({"client_id": "12345"}).text("client_id") == "12345"
    assert Params({"client_id": 12345}).text("client_id") == "12345"


def test_choice_names_the_options() -> None:
    """A value outside an enumeration is -32602 listing the allowed values."""
    error = error_of(lambda: Params({"currency": "DOGE"}).choice("currency", ["BTC", "ETH"]))
    assert error.code == -32602
    assert error.data == {"reason": "must be one of: BTC, ETH", "param": "currency"}
    assert Params({}).choice("currency", ["BTC", "any"], "any") == "any"
