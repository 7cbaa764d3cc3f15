"""What a language-model call costs, in US dollars, before and after it is made.

The budget prices every call before admitting it, so each model needs a price: USD per million
input tokens and per million output tokens. :data:`DEFAULT_PRICES` is a small table of list
prices for current OpenAI and Anthropic models, transcribed by hand from the providers' public
pricing pages as of :data:`PRICES_AS_OF` (standard tier: no batch, cached-input or long-context
rates). It is dated because it goes stale: providers change prices and ship models, and nothing
here checks them at run time. Operators override it (``overrides=``, fed from settings); treat
the table as a starting point, not as a source of truth.

Matching a model id to a row, and nothing fuzzier:

1. the id equals a row's key (overrides first, then the table); otherwise
2. the id is a row's key followed by one dated-snapshot suffix, ``-YYYY-MM-DD`` (OpenAI,
   ``gpt-4o-2024-08-06`` → ``gpt-4o``), ``-YYYYMMDD`` (Anthropic,
   ``claude-sonnet-4-20250514`` → ``claude-sonnet-4``) or ``-latest``, and the key is matched
   exactly. ``gpt-4o-mini`` never falls back to ``gpt-4o``.

A snapshot priced differently from its family gets its own exact row (``gpt-4o-2024-05-13``).
Any other id is unknown: it is priced at the configured default, and remembered in
:attr:`PriceBook.unknown_models` so the health check can WARN that costs are guesses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple

from bastion.errors import UsageError

__all__ = [
    "DEFAULT_PRICES",
    "DEFAULT_UNKNOWN_PRICE",
    "MICROS",
    "PRICES_AS_OF",
    "Cost",
    "Price",
    "PriceBook",
    "PriceLookup",
    "snapshot_base",
]

MICROS = 1_000_000
"""Millionths of a dollar: the unit budgets store and compare USD in, exactly."""
_MILLION = Decimal(1_000_000)
_NANO_USD = Decimal("1e-9")
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)\Z")


@dataclass(frozen=True, slots=True)
class Cost:
    """What a call costs, or is estimated to cost: tokens and US dollars."""

    tokens: int
    usd: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0 or self.usd < 0:
            raise UsageError(f"a cost cannot be negative, got {self.tokens} tokens, ${self.usd}")

    @property
    def usd_micros(self) -> int:
        """The USD amount in millionths of a dollar, the unit the store compares exactly."""
        return round(self.usd * MICROS)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input tokens and per million output tokens of one model."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise UsageError(
                    f"Price.{name} must be a finite, non-negative Decimal, got {value!r}; "
                    "use Price.of() to build one from numbers or strings"
                )

    @classmethod
    def of(
        cls, input_per_mtok: Decimal | float | str, output_per_mtok: Decimal | float | str
    ) -> Price:
        """A price from numbers or strings; a float goes through ``str`` so ``0.15`` stays 0.15."""
        return cls(_decimal(input_per_mtok), _decimal(output_per_mtok))

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """The exact USD cost of a call with these token counts."""
        for name, tokens in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if tokens < 0:
                raise UsageError(f"{name} must be >= 0, got {tokens}")
        return (
            input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok
        ) / _MILLION


def _decimal(value: Decimal | float | str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise UsageError(f"not a price: {value!r}") from exc


PRICES_AS_OF = "2025-11"
"""When :data:`DEFAULT_PRICES` was last transcribed from the providers' pricing pages."""

DEFAULT_PRICES: Mapping[str, Price] = {
    # OpenAI
    "gpt-5": Price.of("1.25", "10.00"),
    "gpt-5-mini": Price.of("0.25", "2.00"),
    "gpt-5-nano": Price.of("0.05", "0.40"),
    "gpt-4.1": Price.of("2.00", "8.00"),
    "gpt-4.1-mini": Price.of("0.40", "1.60"),
    "gpt-4.1-nano": Price.of("0.10", "0.40"),
    "gpt-4o": Price.of("2.50", "10.00"),
    "gpt-4o-2024-05-13": Price.of("5.00", "15.00"),
    "gpt-4o-mini": Price.of("0.15", "0.60"),
    "o3": Price.of("2.00", "8.00"),
    "o4-mini": Price.of("1.10", "4.40"),
    # Anthropic
    "claude-opus-4-5": Price.of("5.00", "25.00"),
    "claude-opus-4-1": Price.of("15.00", "75.00"),
    "claude-opus-4": Price.of("15.00", "75.00"),
    "claude-opus-4-0": Price.of("15.00", "75.00"),
    "claude-sonnet-4-5": Price.of("3.00", "15.00"),
    "claude-sonnet-4": Price.of("3.00", "15.00"),
    "claude-sonnet-4-0": Price.of("3.00", "15.00"),
    "claude-3-7-sonnet": Price.of("3.00", "15.00"),
    "claude-haiku-4-5": Price.of("1.00", "5.00"),
    "claude-3-5-haiku": Price.of("0.80", "4.00"),
}
"""List prices by model id, as of :data:`PRICES_AS_OF`; operators override them."""

DEFAULT_UNKNOWN_PRICE = Price.of("15.00", "75.00")
"""The price of a model nobody priced: the dearest row above, so a budget errs towards refusing.

A local model (vLLM, Ollama, llama.cpp) costs nothing per token: price it at zero in settings.
"""


def snapshot_base(model: str) -> str | None:
    """The family id of a dated snapshot (``gpt-4o-2024-08-06`` → ``gpt-4o``), else None."""
    match = _SNAPSHOT_SUFFIX.search(model)
    if match is None or match.start() == 0:
        return None
    return model[: match.start()]


class PriceLookup(NamedTuple):
    """A model's price and whether it came from a row (``known``) or the default."""

    price: Price
    known: bool


class PriceBook:
    """Prices LLM calls: the default table under operator overrides, with a default for the rest.

    Lookups are pure except for one side effect: an unknown model id is added to
    :attr:`unknown_models`, which the health check reads to WARN.
    """

    def __init__(
        self,
        overrides: Mapping[str, Price] | None = None,
        *,
        default: Price = DEFAULT_UNKNOWN_PRICE,
        table: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        self._prices: dict[str, Price] = {**table, **(overrides or {})}
        for model, price in self._prices.items():
            if not isinstance(price, Price):
                raise UsageError(f"price of {model!r} must be a Price, got {price!r}")
        if not isinstance(default, Price):
            raise UsageError(f"default must be a Price, got {default!r}")
        self.default = default
        self._unknown: set[str] = set()

    def resolve(self, model: str) -> str | None:
        """The key of the row that prices ``model`` (see the module docstring), or None."""
        if model in self._prices:
            return model
        base = snapshot_base(model)
        return base if base is not None and base in self._prices else None

    def price(self, model: str) -> PriceLookup:
        """The price of ``model``; an unknown id gets the default and is remembered."""
        key = self.resolve(model)
        if key is None:
            self._unknown.add(model)
            return PriceLookup(self.default, known=False)
        return PriceLookup(self._prices[key], known=True)

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """The USD cost of a call, computed in Decimal and rounded to a billionth of a dollar."""
        exact = self.price(model).price.cost(input_tokens, output_tokens)
        return float(exact.quantize(_NANO_USD, rounding=ROUND_HALF_EVEN))

    @property
    def unknown_models(self) -> frozenset[str]:
        """Every model id priced at the default so far: the health check WARNs on these."""
        return frozenset(self._unknown)

    def __repr__(self) -> str:
        return f"PriceBook({len(self._prices)} models, default={self.default!r})"
