"""Pricing: exact ids, dated snapshots, overrides, and unknown models at the default price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bastion.errors import UsageError
from bastion.llm.pricing import (
    DEFAULT_PRICES,
    DEFAULT_UNKNOWN_PRICE,
    Price,
    PriceBook,
    PriceLookup,
    snapshot_base,
)


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("o3-2025-04-16", "o3"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-opus-4-0", "claude-opus-4-0"),
    ],
)
def test_ids_resolve_exactly_or_by_the_snapshot_suffix(model: str, key: str) -> None:
    """An id is its own row, or a row plus one dated-snapshot suffix."""
    assert PriceBook().resolve(model) == key


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o-mini-high",  # a prefix of nothing priced, not a snapshot
        "gpt-4",  # a shorter id never borrows a longer row's price
        "GPT-4o",  # ids are case-sensitive
        "gpt-4o-2024-8-6",  # not a date
        "gpt-4o-2024-08-06-2024-08-06",  # one suffix only
        "openai/gpt-4o",  # routing prefixes are not stripped
        "-latest",
        "llama-3.1-70b",
    ],
)
def test_anything_else_is_unknown_and_never_fuzzy_matched(model: str) -> None:
    """Ids outside the rule get the default price, known=False, and are remembered."""
    book = PriceBook()
    assert book.price(model) == PriceLookup(DEFAULT_UNKNOWN_PRICE, known=False)
    assert book.unknown_models == {model}


def test_known_models_are_not_reported_as_unknown() -> None:
    """Only ids priced at the default land in unknown_models."""
    book = PriceBook()
    price, known = book.price("gpt-4o-2024-08-06")
    assert known
    assert price == DEFAULT_PRICES["gpt-4o"]
    assert book.unknown_models == frozenset()


@pytest.mark.parametrize(
    ("model", "input_tokens", "output_tokens", "usd"),
    [
        ("gpt-4o", 1_000_000, 0, 2.5),
        ("gpt-4o", 0, 1_000_000, 10.0),
        ("gpt-4o-mini", 1_234, 567, 0.0005253),
        ("claude-sonnet-4-20250514", 10_000, 2_000, 0.06),
        ("gpt-5-nano", 1, 1, 0.00000045),
        ("gpt-4o", 0, 0, 0.0),
    ],
)
def test_cost_is_tokens_times_the_price_per_million(
    model: str, input_tokens: int, output_tokens: int, usd: float
) -> None:
    """cost_usd multiplies in Decimal and returns the exact figure as a float."""
    assert PriceBook().cost_usd(model, input_tokens, output_tokens) == usd


def test_cost_is_rounded_to_a_billionth_of_a_dollar() -> None:
    """Sub-nano-dollar remainders are rounded half-even, not left as float noise."""
    book = PriceBook({"tiny": Price.of("0.0003", "0")})
    assert book.cost_usd("tiny", 1, 0) == 0.0
    assert book.cost_usd("tiny", 5, 0) == 0.000000002
    assert Price.of("0.0003", "0").cost(5, 0) == Decimal("1.5E-9")


def test_overrides_replace_rows_and_add_models() -> None:
    """Operator overrides win over the table and also match their own snapshots."""
    book = PriceBook({"gpt-4o": Price.of(1, 2), "local-llama": Price.of(0, 0)})
    assert book.price("gpt-4o-2024-08-06") == PriceLookup(Price.of(1, 2), known=True)
    assert book.cost_usd("local-llama", 10**9, 10**9) == 0.0
    assert book.price("gpt-4o-mini").price == DEFAULT_PRICES["gpt-4o-mini"]


def test_an_exact_snapshot_row_beats_its_family() -> None:
    """A snapshot priced differently from its family is matched exactly first."""
    book = PriceBook()
    assert book.cost_usd("gpt-4o-2024-05-13", 1_000_000, 0) == 5.0
    assert book.cost_usd("gpt-4o-2024-11-20", 1_000_000, 0) == 2.5


def test_the_default_price_is_configurable() -> None:
    """Unknown models cost whatever default the operator configured."""
    book = PriceBook(default=Price.of("1", "2"))
    assert book.cost_usd("mystery", 1_000_000, 1_000_000) == 3.0
    assert book.unknown_models == {"mystery"}


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gpt-4o", None),
        ("latest", None),
        ("-20250101", None),
    ],
)
def test_snapshot_base_strips_one_dated_suffix(model: str, base: str | None) -> None:
    """snapshot_base names the family of a dated id and nothing else."""
    assert snapshot_base(model) == base


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [("-1", "0"), ("0", "-0.5"), ("NaN", "1"), ("1", "Infinity"), ("cheap", "1")],
)
def test_a_price_must_be_finite_and_non_negative(inputs: str, outputs: str) -> None:
    """Bad prices are a developer's mistake: UsageError, not a silent zero."""
    with pytest.raises(UsageError):
        Price.of(inputs, outputs)


def test_a_float_price_keeps_its_decimal_value() -> None:
    """Price.of(0.15) is exactly 0.15, not the nearest binary float."""
    assert Price.of(0.15, 0.6) == Price(Decimal("0.15"), Decimal("0.6"))


def test_negative_token_counts_are_refused() -> None:
    """A negative token count is a bug in the caller."""
    with pytest.raises(UsageError, match="output_tokens must be >= 0"):
        PriceBook().cost_usd("gpt-4o", 1, -1)


def test_overrides_must_be_prices() -> None:
    """A raw number in overrides fails at construction, naming the model."""
    with pytest.raises(UsageError, match="gpt-4o"):
        PriceBook({"gpt-4o": 2.5})  # type: ignore[dict-item]


def test_the_default_table_is_priced_and_cheaper_than_the_unknown_default() -> None:
    """No row is dearer than the unknown-model default, so a guess errs towards refusing."""
    for price in DEFAULT_PRICES.values():
        assert price.input_per_mtok <= DEFAULT_UNKNOWN_PRICE.input_per_mtok
        assert price.output_per_mtok <= DEFAULT_UNKNOWN_PRICE.output_per_mtok
