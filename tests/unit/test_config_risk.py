"""The risk v2 and named-token settings: defaults that keep today's behaviour, refusals that
say what to fix, and every value reaching the caps and the redactor."""

from __future__ import annotations

import os

import pytest

from bastion.build import build_loop_config, risk_limits
from bastion.config import load_settings
from bastion.errors import ConfigError
from bastion.guard.risk import RiskLimits


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BASTION_* from the developer's shell changes a default under test."""
    for key in list(os.environ):
        if key.startswith("BASTION_"):
            monkeypatch.delenv(key)


def test_the_defaults_switch_the_v2_caps_on_but_no_approvals() -> None:
    """Out of the box: total, rate, collar, currencies and kinds on; nothing waits for a person."""
    limits = risk_limits(load_settings())
    assert limits == RiskLimits(
        max_order_amount=1.0,
        max_order_notional_usd=100_000.0,
        max_position=2.0,
        allowed_instruments=("BTC-*",),
        max_total_notional_usd=500_000.0,
        max_orders_per_minute=60,
        price_collar_pct=20.0,
        price_collar_min_ticks=3,
        allowed_currencies=("BTC", "ETH"),
        allowed_kinds=("option", "future", "perpetual"),
        listed_only=True,
        approval_notional_usd=None,
        approve_new_underlying=False,
        approve_new_kind=False,
    )
    assert build_loop_config(load_settings()).approval_ttl_seconds == 900.0


def test_every_risk_setting_reaches_the_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    """BASTION_RISK_* from the environment, empty meaning off, land in RiskLimits."""
    for name, value in {
        "MAX_TOTAL_NOTIONAL_USD": "",
        "MAX_ORDERS_PER_MINUTE": "7",
        "PRICE_COLLAR_PCT": "",
        "PRICE_COLLAR_MIN_TICKS": "0",
        "ALLOWED_CURRENCIES": '["ETH"]',
        "ALLOWED_KINDS": '["option"]',
        "APPROVAL_NOTIONAL_USD": "25000",
        "APPROVE_NEW_UNDERLYING": "true",
        "APPROVE_NEW_KIND": "true",
        "APPROVAL_TTL_SECONDS": "60",
    }.items():
        monkeypatch.setenv(f"BASTION_RISK_{name}", value)
    settings = load_settings()
    limits = risk_limits(settings)
    assert (limits.max_total_notional_usd, limits.max_orders_per_minute) == (None, 7)
    assert (limits.price_collar_pct, limits.price_collar_min_ticks) == (None, 0)
    assert (limits.allowed_currencies, limits.allowed_kinds) == (("ETH",), ("option",))
    assert limits.approval_notional_usd == 25_000.0
    assert limits.approve_new_underlying
    assert limits.approve_new_kind
    assert build_loop_config(settings).approval_ttl_seconds == 60.0


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"risk_max_orders_per_minute": 0}, "risk_max_orders_per_minute"),
        ({"risk_price_collar_pct": -1}, "risk_price_collar_pct"),
        ({"risk_allowed_kinds": ["swap"]}, "risk_allowed_kinds"),
        ({"risk_approval_ttl_seconds": 0}, "risk_approval_ttl_seconds"),
    ],
)
def test_a_bad_risk_setting_is_refused_naming_it(overrides: dict[str, object], says: str) -> None:
    """A cap that cannot mean anything is a start-up error naming the setting."""
    with pytest.raises(ConfigError, match=says):
        load_settings(**overrides)


def test_named_tokens_are_secrets() -> None:
    """Named console tokens are redacted everywhere and masked in the public settings."""
    settings = load_settings(console_named_tokens={"alice": "alice-token-0123456789"})
    assert "alice-token-0123456789" in settings.secret_values()
    assert settings.public_dict()["console_named_tokens"] == "[REDACTED]"
    assert "alice-token-0123456789" not in repr(settings)


@pytest.mark.parametrize(
    ("tokens", "console_token", "says"),
    [
        ({"alice": "qz9x"}, None, "shorter than 16"),
        ({"alice": "same-token-0123456789", "bob": "same-token-0123456789"}, None, "own"),
        ({"alice": "shared-token-0123456789"}, "shared-token-0123456789", "own"),
        ({"  ": "blank-name-token-0123456789"}, None, "printable"),
        ({"a\x1b[2J": "ansi-name-token-0123456789"}, None, "printable"),
    ],
)
def test_a_weak_or_shared_named_token_is_refused(
    tokens: dict[str, str], console_token: str | None, says: str
) -> None:
    """Each person gets their own, long enough token, and a name fit to be recorded."""
    with pytest.raises(ConfigError, match=says) as raised:
        load_settings(console_named_tokens=tokens, console_token=console_token)
    for token in tokens.values():
        assert token not in str(raised.value)
