"""Settings: defaults are sane, and every bad input fails at start with the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import Settings, load_settings, markdown_table
from bastion.errors import ConfigError, ErrorCode


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("BASTION_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_describe_the_embedded_paper_setup() -> None:
    """No configuration at all means paper mode, SQLite under ./data, console on loopback."""
    s = load_settings()
    assert s.mode == "paper"
    assert s.resolved_store_url == "sqlite:///data/bastion.db"
    assert s.resolved_exchange_url == ""
    assert s.console_host == "127.0.0.1"
    assert s.kill_switch_path == Path("data/kill_switch.flag")


def test_environment_overrides_the_toml_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """bastion.toml is read, and BASTION_* wins over it."""
    Path("bastion.toml").write_text("loop_interval_seconds = 5.0\npaper_seed = 7\n")
    monkeypatch.setenv("BASTION_PAPER_SEED", "9")
    s = load_settings()
    assert s.loop_interval_seconds == 5.0
    assert s.paper_seed == 9


def test_a_bad_value_names_the_field_the_env_var_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A negative interval is refused with its field, env name, value and a hint."""
    monkeypatch.setenv("BASTION_LOOP_INTERVAL_SECONDS", "-1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "loop_interval_seconds (BASTION_LOOP_INTERVAL_SECONDS)" in message
    assert "'-1'" in message
    assert "Fix:" in message
    assert info.value.code is ErrorCode.CONFIG


def test_an_unknown_environment_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in an env var never silently falls back to a default."""
    monkeypatch.setenv("BASTION_LOOP_INTERVL_SECONDS", "1")
    with pytest.raises(ConfigError, match="BASTION_LOOP_INTERVL_SECONDS"):
        load_settings()


def test_an_unknown_toml_key_is_an_error() -> None:
    """A typo in bastion.toml is named, with the fix."""
    Path("bastion.toml").write_text("risk_max_ordr_amount = 3\n")
    with pytest.raises(ConfigError, match="risk_max_ordr_amount: unknown setting"):
        load_settings()


def test_malformed_toml_is_a_config_error_not_a_traceback() -> None:
    """Broken TOML syntax is reported as a configuration error."""
    Path("bastion.toml").write_text("loop_interval_seconds = = 2\n")
    with pytest.raises(ConfigError, match="TOML"):
        load_settings()


def test_live_mode_demands_real_credentials() -> None:
    """Live trading with the paper placeholder key is refused at start."""
    with pytest.raises(ConfigError, match="BASTION_EXCHANGE_CLIENT_ID"):
        load_settings(mode="live")


def test_secrets_never_appear_in_public_dict_or_repr() -> None:
    """Secret values are masked everywhere settings may be shown."""
    s = load_settings(
        exchange_client_secret="s3cr3t-value",
        store_url="postgresql+psycopg://bastion:pg-pass-123@db/bastion",
        llm_provider="openai",
        llm_model="gpt-4o",
        llm_api_key="sk-llm-key-456",
    )
    shown = repr(s) + str(s.public_dict())
    for secret in ("s3cr3t-value", "pg-pass-123", "sk-llm-key-456"):
        assert secret not in shown
        assert secret in s.secret_values()


def test_a_secret_quoted_in_another_setting_never_appears_in_public_dict() -> None:
    """A secret's value inside a setting that is not secret (a fault's message) is masked too."""
    fault = {"kind": "error", "code": 10028, "message": "rejected s3cr3t-value and sk-llm-key"}
    s = load_settings(
        exchange_client_secret="s3cr3t-value",
        paper_allowed_credentials={"desk": "sk-llm-key"},
        paper_faults=[fault],
    )
    shown = s.public_dict()["paper_faults"]
    assert shown == [{**fault, "message": "rejected [REDACTED] and [REDACTED]"}]


def test_config_hash_changes_with_a_setting_and_not_with_a_secret() -> None:
    """The run fingerprint follows behaviour, and never encodes a secret."""
    base = load_settings()
    assert load_settings(paper_seed=2).config_hash() != base.config_hash()
    assert load_settings(exchange_client_secret="other").config_hash() == base.config_hash()


def test_every_setting_is_documented() -> None:
    """Each field has a description: it is the README table and the fix in errors."""
    missing = [n for n, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_the_readme_table_is_the_generated_one() -> None:
    """The README's configuration table matches the code: names, defaults and meanings."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert markdown_table() in readme, "regenerate it with `bastion config --markdown`"
    assert markdown_table().count("\n| `BASTION_") == len(Settings.model_fields)


def test_cancel_on_disconnect_needs_the_websocket() -> None:
    """COD exists only on a WebSocket session; asking for it alone is refused with the fix."""
    with pytest.raises(ConfigError, match="exchange_websocket=true"):
        load_settings(exchange_cancel_on_disconnect=True)


def test_the_websocket_needs_an_exchange_url() -> None:
    """The in-process paper exchange has no socket: a URL is required."""
    with pytest.raises(ConfigError, match="needs an exchange URL"):
        load_settings(exchange_websocket=True)
    assert load_settings(exchange_websocket=True, exchange_url="http://127.0.0.1:8788")


def test_an_exchange_url_of_another_scheme_is_refused_masked() -> None:
    """A URL the clients cannot speak fails at start, its password and keys not shown."""
    url = "ftp://bot:url-pass-123@exchange.example/?api_key=url-key-456"
    for websocket in (False, True):
        with pytest.raises(ConfigError, match="is not an http") as caught:
            load_settings(exchange_url=url, exchange_websocket=websocket)
        assert "url-pass-123" not in str(caught.value)
        assert "url-key-456" not in str(caught.value)
    assert load_settings(exchange_url="wss://test.deribit.com", exchange_websocket=True)


_LLM = {"llm_provider": "openai", "llm_model": "m", "llm_base_url": "http://127.0.0.1:8765/v1"}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"agent": "llm_options_seller"}, "BASTION_LLM_PROVIDER"),
        ({"llm_provider": "openai"}, "BASTION_LLM_MODEL"),
        ({"llm_provider": "anthropic", "llm_model": "claude-haiku-4-5"}, "BASTION_LLM_API_KEY"),
        ({"llm_provider": "openai", "llm_model": "gpt-4o"}, "BASTION_LLM_API_KEY"),
        (
            {
                "agent": "llm_options_seller",
                "llm_provider": "openai",
                "llm_model": "m",
                "llm_base_url": "http://127.0.0.1:8765/v1",
            },
            "BASTION_STEP_TIMEOUT_SECONDS",
        ),
        ({"llm_prices": {"m": [1, -2]}}, "BASTION_LLM_PRICES"),
        ({"llm_timeout_seconds": 0}, "BASTION_LLM_TIMEOUT_SECONDS"),
        ({**_LLM, "llm_deadline_seconds": 60}, "BASTION_LLM_DEADLINE_SECONDS"),
        ({**_LLM, "budget_reservation_ttl_seconds": 120}, "RESERVATION_TTL_SECONDS"),
        (
            {
                **_LLM,
                "agent": "llm_options_seller",
                "llm_fallback_models": ["small"],
                "llm_timeout_seconds": 30,
                "llm_deadline_seconds": 60,
                "step_timeout_seconds": 100,  # > one model's deadline, < the chain's 120 s
            },
            "2 model\\(s\\) x llm_deadline_seconds",
        ),
        ({**_LLM, "llm_fallback_models": [" "]}, "BASTION_LLM_FALLBACK_MODELS"),
        ({**_LLM, "llm_base_url": "localhost:8765/v1"}, "BASTION_LLM_BASE_URL"),
        ({**_LLM, "request_token_budget": 500}, "BASTION_REQUEST_TOKEN_BUDGET"),
    ],
)
def test_llm_settings_that_cannot_work_fail_at_start_naming_the_fix(
    overrides: dict[str, object], named: str
) -> None:
    """An LLM agent without a provider, a provider without a pinned model or key, a step
    timeout that would cut every LLM call short: refused at start with the variable to set."""
    with pytest.raises(ConfigError, match=named):
        load_settings(**overrides)


def test_a_self_hosted_openai_compatible_server_needs_no_key() -> None:
    s = load_settings(
        llm_provider="openai", llm_model="llama3", llm_base_url="http://127.0.0.1:11434/v1"
    )
    assert s.llm_models == ["llama3"]


def test_an_empty_variable_turns_an_optional_limit_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's "empty: unlimited" means exactly that from the environment; an empty text
    setting stays empty text."""
    monkeypatch.setenv("BASTION_DAILY_TOKEN_BUDGET", "")
    monkeypatch.setenv("BASTION_LLM_BREAKER_SLOW_CALL_SECONDS", "")
    monkeypatch.setenv("BASTION_EXCHANGE_URL", "")
    s = load_settings()
    assert s.daily_token_budget is None
    assert s.llm_breaker_slow_call_seconds is None
    assert s.exchange_url == ""


QUERY_PW = "query-pw-5521"


@pytest.mark.parametrize("key", ["password", "sslpassword", "token", "api_key", "secret"])
@pytest.mark.parametrize("setting", ["store_url", "exchange_url", "llm_base_url"])
def test_a_password_in_a_url_query_never_appears_in_public_dict(setting: str, key: str) -> None:
    """Every URL-valued setting has its secret query values masked; the parameter name stays."""
    url = {
        "store_url": f"postgresql+psycopg://bastion@db/bastion?sslmode=require&{key}={QUERY_PW}",
        "exchange_url": f"https://exchange.example/api?sslmode=require&{key}={QUERY_PW}",
        "llm_base_url": f"http://127.0.0.1:8765/v1?sslmode=require&{key}={QUERY_PW}",
    }[setting]
    s = load_settings(**{setting: url})
    shown = s.public_dict()
    assert QUERY_PW not in str(shown)
    assert shown[setting].endswith(f"?sslmode=require&{key}=***")
    assert QUERY_PW in s.secret_values()


def test_a_userinfo_password_is_masked_and_the_user_stays_readable() -> None:
    """store_url shows who connects where, never with what password."""
    s = load_settings(store_url=f"postgresql+psycopg://bastion:{QUERY_PW}@db:5432/bastion")
    assert s.public_dict()["store_url"] == "postgresql+psycopg://bastion:***@db:5432/bastion"


def test_the_config_hash_does_not_encode_a_query_password() -> None:
    """Rotating a password kept in the URL query leaves the run fingerprint unchanged."""
    url = "postgresql+psycopg://bastion@db/bastion?password="
    assert (
        load_settings(store_url=url + "first-pw").config_hash()
        == load_settings(store_url=url + "second-pw").config_hash()
    )


def test_ledger_retention_is_forever_by_default_and_at_least_one_day() -> None:
    """Empty keeps every ledger row; 0 or a negative count is refused at start with the field,
    the variable and the fix."""
    assert load_settings().budget_ledger_retention_days is None
    assert load_settings(budget_ledger_retention_days=30).budget_ledger_retention_days == 30
    for bad in (0, -7):
        with pytest.raises(ConfigError) as info:
            load_settings(budget_ledger_retention_days=bad)
        message = str(info.value)
        assert (
            "budget_ledger_retention_days (BASTION_BUDGET_LEDGER_RETENTION_DAYS): Input should be "
            f"greater than or equal to 1; got {bad}." in message
        )
        assert "Fix: Days (at least 1) the budget ledger keeps" in message
        assert "empty: keep forever" in message


def test_an_empty_ledger_retention_variable_keeps_the_ledger_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BASTION_BUDGET_LEDGER_RETENTION_DAYS", "")
    assert load_settings().budget_ledger_retention_days is None
    monkeypatch.setenv("BASTION_BUDGET_LEDGER_RETENTION_DAYS", "90")
    assert load_settings().budget_ledger_retention_days == 90


def test_the_tool_allowlist_is_checked_at_start_up() -> None:
    """A tool Bastion does not ship is a typo; news needs its feed; the deadline fits a call."""
    assert load_settings().tools_allowed == ["ticker"]
    with pytest.raises(ConfigError, match=r"tools_allowed \(BASTION_TOOLS_ALLOWED\)"):
        load_settings(tools_allowed=["ticker", "place_order"])
    with pytest.raises(ConfigError, match="set BASTION_TOOLS_NEWS_URL"):
        load_settings(tools_allowed=["news"])
    with pytest.raises(ConfigError, match="raise BASTION_TOOLS_DEADLINE_SECONDS"):
        load_settings(tools_timeout_seconds=20, tools_deadline_seconds=10)
    allowed = load_settings(tools_allowed=["news"], tools_news_url="https://feed.example/h")
    assert allowed.tools_allowed == ["news"]
