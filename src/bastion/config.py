"""Settings: one pydantic-settings model, read from ``BASTION_*`` and an optional ``bastion.toml``.

Every timeout, limit and interval Bastion uses lives here with a documented default, so the
README's configuration table is generated from this module and cannot drift from it. Settings
are flat (``BASTION_LOOP_INTERVAL_SECONDS`` ↔ ``loop_interval_seconds`` in the TOML file)
because flat names are what operators grep for in env files and systemd units.

Precedence, highest first: keyword overrides (tests, CLI flags), environment, ``bastion.toml``
(``BASTION_CONFIG`` names another file), defaults. A key Bastion does not know, in the file or
the environment, is an error at start-up: a typo must never silently fall back to a default.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import orjson
from pydantic import Field, NonNegativeFloat, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bastion.errors import ConfigError
from bastion.sensitive import MIN_SECRET_LENGTH, mask_url, url_secrets

__all__ = ["ENV_PREFIX", "Settings", "ensure_data_dir", "load_settings", "markdown_table"]

ENV_PREFIX = "BASTION_"
_CONFIG_ENV = "BASTION_CONFIG"
_DEFAULT_TOML = Path("bastion.toml")
_toml_path: ContextVar[Path | None] = ContextVar("bastion_toml_path", default=None)

ToolName = Literal["ticker", "news"]
"""The tools Bastion ships (:mod:`bastion.tools`); a name outside this list is a typo."""
_DEFAULT_TOOLS: list[ToolName] = ["ticker"]

InstrumentKindName = Literal["option", "future", "perpetual"]
"""The kinds the risk caps tell apart: a perpetual is a future without an expiry."""

_MIN_NAMED_TOKEN = 16

TESTNET_URL = "https://test.deribit.com"
MAINNET_URL = "https://www.deribit.com"


class Settings(BaseSettings):
    """Everything an operator can set. Field descriptions double as the fix in error messages."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    # -- where things go ------------------------------------------------------------------
    data_dir: Path = Field(
        Path("data"),
        description="Directory for everything Bastion writes: database, traces, flags, token.",
    )
    store_url: str = Field(
        "",
        repr=False,  # it may carry a database password
        description="SQLAlchemy URL of the store; empty means sqlite:///<data_dir>/bastion.db. "
        "Use postgresql+psycopg://user:pass@host/db for a fleet.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level: DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="Log lines: json (one JSON object a line, with run_id, step and trace_id), "
        "console (readable columns) or auto (console when stderr is a terminal, else json).",
    )

    # -- exchange -------------------------------------------------------------------------
    mode: Literal["paper", "testnet", "live"] = Field(
        "paper",
        description="paper (embedded paper exchange), testnet (Deribit testnet) or live "
        "(Deribit mainnet).",
    )
    exchange_url: str = Field(
        "",
        description="Base URL of a Deribit-compatible API. Empty: in-process paper exchange "
        f"in paper mode, {TESTNET_URL} in testnet, {MAINNET_URL} in live.",
    )
    exchange_client_id: str = Field(
        "bastion-paper", description="Deribit API client id (testnet/live: your key's id)."
    )
    exchange_client_secret: SecretStr = Field(
        SecretStr("paper-secret"),
        description="Deribit API client secret. Never logged, traced or served.",
    )
    exchange_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Timeout of one exchange request, in seconds (0-300]."
    )
    exchange_token_refresh_margin_seconds: float = Field(
        60.0,
        ge=0,
        description="Refresh the exchange access token this many seconds before it expires.",
    )
    exchange_websocket: bool = Field(
        False,
        description="Talk to the exchange over one WebSocket session instead of HTTP requests "
        "(needs a URL: testnet, live or `bastion exchange serve`).",
    )
    exchange_cancel_on_disconnect: bool = Field(
        False,
        description="With the WebSocket: the exchange cancels our resting orders if the "
        "connection drops (Deribit cancel-on-disconnect).",
    )
    retry_base_seconds: float = Field(
        0.5, gt=0, description="Base of the full-jitter backoff: min(cap, base·2^n)·U(0,1)."
    )
    retry_cap_seconds: float = Field(30.0, gt=0, description="Longest single backoff wait.")
    call_deadline_seconds: float = Field(
        60.0,
        gt=0,
        description="Overall deadline of one external call, retries and waits included.",
    )
    currency: Literal["BTC", "ETH"] = Field("BTC", description="Currency the agent trades.")

    # -- paper exchange -------------------------------------------------------------------
    paper_seed: int = Field(1, description="Seed of the paper market's random walk.")
    paper_allowed_credentials: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="client_id -> client_secret pairs the paper exchange accepts; empty means "
        "any pair opens a funded sandbox account.",
    )
    paper_initial_balance_btc: float = Field(
        10.0, ge=0, description="BTC each new paper account starts with."
    )
    paper_initial_balance_eth: float = Field(
        100.0, ge=0, description="ETH each new paper account starts with."
    )
    paper_faults: list[dict[str, Any]] = Field(
        default_factory=list,
        description='Faults the paper exchange injects from start-up, e.g. [{"kind": "error", '
        '"code": 10028, "method": "private/*", "times": 3}] (kinds: status, error, delay, hang, '
        "drop, crash, malformed, truncated).",
    )
    paper_token_ttl_seconds: int = Field(
        900, gt=0, description="Lifetime of paper-exchange access tokens, in seconds."
    )

    # -- loop -----------------------------------------------------------------------------
    loop_interval_seconds: float = Field(
        2.0, gt=0, description="Seconds between the starts of two loop steps."
    )
    step_timeout_seconds: float = Field(
        15.0,
        gt=0,
        description="Observe + decide running longer is abandoned and recorded; sends are "
        "bounded by exchange_timeout_seconds instead.",
    )
    halt_poll_seconds: float = Field(
        0.2,
        gt=0,
        le=10,
        description="How often the loop looks at the kill-switch flag while it waits between "
        "steps (the run also watches it, so this is the fallback where a watch cannot start).",
    )
    daily_loss_pct: float | None = Field(
        3.0,
        gt=0,
        lt=100,
        description="Halt until the next UTC day when NAV (equity marked to market, open "
        "positions included) is more than this many percent below the UTC day's start (kept "
        "in the store across restarts when the exchange is a URL). Empty: no daily-loss halt.",
    )
    max_drawdown_pct: float | None = Field(
        None,
        gt=0,
        lt=100,
        description="Halt until the next UTC day when NAV is more than this many percent below "
        "the UTC day's peak. Empty: no drawdown halt.",
    )
    daily_loss_flatten: bool = Field(
        False,
        description="A daily-loss or drawdown halt is REDUCING instead of a full halt: the "
        "loop closes every position with reduce-only market orders, in the step that trips "
        "it and each step after until the book is flat.",
    )
    tool_error_rate_pct: float | None = Field(
        5.0,
        gt=0,
        lt=100,
        description="Halt when more than this many percent of tool calls (refusals included) "
        "failed over the last tool_error_window_seconds. Empty: no tool error-rate halt.",
    )
    tool_error_window_seconds: float = Field(
        300.0, gt=0, description="The sliding window of the tool error rate, in seconds."
    )
    tool_error_min_calls: int = Field(
        20,
        ge=1,
        description="The tool error rate halts only once the window holds this many calls.",
    )
    max_tool_calls_per_step: int | None = Field(
        20,
        ge=1,
        description="Halt when an agent makes more tool calls than this in one step (a "
        "runaway loop); checked after the decision, before any order. Empty: no limit.",
    )
    max_steps_per_run: int | None = Field(
        None,
        ge=1,
        description="Halt (runaway loop) when a run goes past this many steps, counted afresh "
        "when a person resumes: a backstop for unbounded runs. BASTION_MAX_STEPS instead ends "
        "a bounded run normally. Empty: no step cap.",
    )
    halt_auto_resume: bool = Field(
        False,
        description="A halt with an expiry (a daily-loss halt lasts until the next UTC day) "
        "lifts itself when it lapses; off, a person resumes it.",
    )
    instruments_refresh_seconds: float = Field(
        300.0, gt=0, description="How long the instrument list is reused before it is reloaded."
    )
    ticker_concurrency: int = Field(
        8, ge=1, le=64, description="Most ticker requests in flight at once during one observe."
    )
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many steps; empty means run until stopped."
    )
    dry_run: bool = Field(
        False, description="Decide and record, but never send an order to the exchange."
    )

    position_drift_dust_coin: float = Field(
        1e-4,
        ge=0,
        description="Position drift (reported vs expected from our own fills) above this many "
        "coin halts the agent.",
    )
    position_drift_observations: int = Field(
        2,
        ge=1,
        description="Drift must persist for this many observations in a row before it halts "
        "(one can disagree while an order fills between two requests).",
    )

    # -- system health ----------------------------------------------------------------------
    health_check_on_startup: bool = Field(
        True, description="Run every health check before the first step; FAIL aborts the run."
    )
    auto_kill_on_health_fail: bool = Field(
        True,
        description="While running, an OK/WARN -> FAIL health transition trips the halt "
        "(reason health_fail).",
    )
    health_recheck_interval_seconds: float = Field(
        300.0, gt=0, description="How often the running loop re-runs the lightweight checks."
    )
    health_check_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="Timeout of each health check; checks run concurrently."
    )
    health_history_retention: int = Field(
        1000, ge=1, description="Health runs kept in the store for the history."
    )
    health_severity_overrides: dict[str, dict[str, Literal["OK", "WARN", "FAIL"]]] = Field(
        default_factory=dict,
        description='Per-check severity by failure code, e.g. {"exchange_public": '
        '{"rate_limit": "FAIL"}}; default: network, forbidden, rate_limit and timeout are WARN '
        "in paper and FAIL in testnet/live.",
    )

    # -- LLM --------------------------------------------------------------------------------
    agent: Literal["options_seller", "llm_options_seller"] = Field(
        "options_seller",
        description="Reference agent `bastion run` starts: options_seller (rules, no LLM) or "
        "llm_options_seller (asks the LLM; needs llm_provider and llm_model).",
    )
    llm_provider: Literal["none", "openai", "anthropic"] = Field(
        "none",
        description="none, openai (any OpenAI-compatible server: OpenAI, vLLM, Ollama, "
        "llama.cpp, `bastion llm fake-server`) or anthropic.",
    )
    llm_base_url: str = Field(
        "",
        description="Base URL of the LLM API; empty: the provider's own (the fake server: "
        "http://127.0.0.1:8765/v1).",
    )
    llm_api_key: SecretStr | None = Field(
        None, description="API key of the LLM provider. Never logged, traced or served."
    )
    llm_model: str = Field(
        "",
        description="Exact model id the chain asks first, pinned (e.g. gpt-4o-2024-08-06); the "
        "model that answered is recorded with every call.",
    )
    llm_fallback_models: list[str] = Field(
        default_factory=list,
        description="Smaller models of the same provider tried in order when the first fails.",
    )
    llm_timeout_seconds: float = Field(
        120.0,
        gt=0,
        le=600,
        description="Timeout of one LLM request; a timeout is classified and the chain falls back.",
    )
    llm_deadline_seconds: float = Field(
        180.0,
        gt=0,
        description="Overall deadline of one model's call in the chain, retries and waits "
        "included.",
    )
    llm_max_tokens: int = Field(
        1024, ge=1, le=200_000, description="Most output tokens one LLM call may produce."
    )
    llm_breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures of one model that open its circuit breaker."
    )
    llm_breaker_slow_call_seconds: float | None = Field(
        30.0,
        gt=0,
        description="An answer slower than this opens the model's breaker too (a degraded "
        "model); empty: only failures do.",
    )
    llm_breaker_recovery_seconds: float = Field(
        30.0, gt=0, description="How long an open model breaker waits before one probe call."
    )
    llm_max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens",
        description="How the output limit is sent to an OpenAI-compatible server: max_tokens "
        "(every server) or max_completion_tokens (OpenAI reasoning models refuse max_tokens).",
    )
    llm_cache_ttl_seconds: float = Field(
        900.0,
        ge=0,
        description="How long the last good answer for the same question may stand in when "
        "every model fails; 0 turns the cache off.",
    )
    llm_prices: dict[str, tuple[NonNegativeFloat, NonNegativeFloat]] = Field(
        default_factory=dict,
        description="USD per million input and output tokens by model, over the built-in "
        'table, e.g. {"my-model": [0.5, 1.5]}.',
    )
    llm_default_price: tuple[NonNegativeFloat, NonNegativeFloat] = Field(
        (15.0, 75.0),
        description="USD per million input and output tokens of a model with no price (the "
        "health check WARNs when one is used).",
    )
    llm_escalation_ttl_seconds: float = Field(
        3600.0,
        gt=0,
        description="A human escalation left undecided this long expires.",
    )

    # -- LLM cost guardrails ------------------------------------------------------------------
    daily_token_budget: int | None = Field(
        500_000, ge=1, description="Tokens the agent may spend per UTC day; empty: unlimited."
    )
    daily_usd_budget: float | None = Field(
        None, gt=0, description="USD the agent may spend per UTC day; empty: unlimited."
    )
    monthly_token_budget: int | None = Field(
        None, ge=1, description="Tokens per UTC calendar month; empty: unlimited."
    )
    monthly_usd_budget: float | None = Field(
        None, gt=0, description="USD per UTC calendar month; empty: unlimited."
    )
    request_token_budget: int | None = Field(
        None, ge=1, description="Most tokens one LLM call may be admitted for; empty: unlimited."
    )
    request_usd_budget: float | None = Field(
        None, gt=0, description="Most USD one LLM call may cost; empty: unlimited."
    )
    run_token_budget: int | None = Field(
        None, ge=1, description="Token envelope of one run or workflow; empty: unlimited."
    )
    run_usd_budget: float | None = Field(
        None, gt=0, description="USD envelope of one run or workflow; empty: unlimited."
    )
    fleet_daily_token_budget: int | None = Field(
        None, ge=1, description="Tokens all agents sharing the store may spend per UTC day."
    )
    fleet_daily_usd_budget: float | None = Field(
        None, gt=0, description="USD all agents sharing the store may spend per UTC day."
    )
    budget_alert_ratio: float = Field(
        0.75, gt=0, le=1, description="Alert once per scope per day at this share of a limit."
    )
    budget_reservation_ttl_seconds: float = Field(
        600.0,
        gt=0,
        description="An admitted but unsettled reservation is reclaimed after this long; it "
        "must outlast the slowest LLM call.",
    )
    budget_ledger_retention_days: int | None = Field(
        None,
        ge=1,
        description="Days (at least 1) the budget ledger keeps each priced call for audit; older "
        "rows are deleted at run start, about daily while running and by `bastion budget "
        "prune` (running totals keep their figures); empty: keep forever.",
    )
    budget_synchronous_settle: bool = Field(
        False,
        description="PostgreSQL: each settlement waits for its WAL flush, as holds do; off, a "
        "database server crash can lose the spend of the last ~3 × wal_writer_delay of calls "
        "(see docs/durability.md). SQLite ignores it.",
    )

    # -- risk caps v1 ---------------------------------------------------------------------
    risk_max_order_amount: float = Field(
        1.0,
        gt=0,
        description="Largest amount of one order, in coin (USD-quoted perpetual amounts are "
        "converted at the index).",
    )
    risk_max_order_notional_usd: float = Field(
        100_000.0, gt=0, description="Largest USD notional of one order."
    )
    risk_max_position: float = Field(
        2.0,
        gt=0,
        description="Largest absolute position per instrument after an order, in coin "
        "(resting orders included).",
    )
    risk_allowed_instruments: list[str] = Field(
        default_factory=lambda: ["BTC-*"],
        description="Glob patterns of instruments the agent may trade (e.g. BTC-*-P).",
    )

    # -- tools ----------------------------------------------------------------------------
    tools_allowed: list[ToolName] = Field(
        default_factory=_DEFAULT_TOOLS.copy,
        description="Tools an agent may call, as a JSON list: ticker (read-only top of book "
        "and greeks from the exchange), news (headlines from tools_news_url). An agent gets "
        "only those it also declares; a call to any other is refused and recorded as a "
        "tool_refused security event.",
    )
    tools_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="Timeout of one tool request, in seconds (0-120]."
    )
    tools_deadline_seconds: float = Field(
        10.0,
        gt=0,
        description="Overall deadline of one tool call, retries and waits included (the step "
        "timeout still bounds the step that makes it).",
    )
    tools_news_url: str = Field(
        "",
        description="URL of the news tool's JSON headlines endpoint (GET, ?currency=&limit=); "
        'it answers {"headlines": [{"title": ..., "source": ...}]}. Needed when news is allowed.',
    )

    # -- risk caps v2 ---------------------------------------------------------------------
    risk_max_total_notional_usd: float | None = Field(
        500_000.0,
        gt=0,
        description="Largest gross USD notional over every instrument after an order (resting "
        "orders included); an order that lowers it always passes; empty: no total cap.",
    )
    risk_max_orders_per_minute: int | None = Field(
        60,
        ge=1,
        description="Most orders sent in any 60 s (like NautilusTrader's "
        "max_order_submit_rate); empty: no throttle.",
    )
    risk_price_collar_pct: float | None = Field(
        20.0,
        gt=0,
        description="A limit price must lie within this many percent of the instrument's mark "
        "(a limit order with no mark is refused); empty: no collar.",
    )
    risk_price_collar_min_ticks: int = Field(
        3,
        ge=0,
        description="The price collar is never narrower than this many ticks (cheap options "
        "quote a tick or two from the mark).",
    )
    risk_allowed_currencies: list[str] = Field(
        default_factory=lambda: ["BTC", "ETH"],
        description="Settlement coins the agent may trade, as a JSON list; empty: any.",
    )
    risk_allowed_kinds: list[InstrumentKindName] = Field(
        default_factory=lambda: list(get_args(InstrumentKindName)),
        description="Instrument kinds the agent may trade (option, future, perpetual), as a "
        "JSON list; empty: any.",
    )
    risk_approval_notional_usd: float | None = Field(
        None,
        gt=0,
        description="An order above this USD notional waits for a person (bastion approvals, "
        "the console's Approvals tab); empty: none waits for its size.",
    )
    risk_approve_new_underlying: bool = Field(
        False,
        description="The first order in a coin the account holds no position in waits for a "
        "person.",
    )
    risk_approve_new_kind: bool = Field(
        False,
        description="The first order of a kind (option, future, perpetual) the account holds no "
        "position in waits for a person.",
    )
    risk_approval_ttl_seconds: float = Field(
        900.0,
        gt=0,
        description="An order approval left undecided this long expires and the order is never "
        "sent; an approved order is reviewed again against the caps before it is sent.",
    )

    # -- reference agent: options seller --------------------------------------------------
    seller_target_delta: float = Field(
        0.15, gt=0, lt=1, description="Absolute delta of the options the seller writes."
    )
    seller_min_days: float = Field(
        0.5, ge=0, description="Shortest days-to-expiry the seller writes."
    )
    seller_max_days: float = Field(10.0, gt=0, description="Longest days-to-expiry it writes.")
    seller_order_amount: float = Field(0.1, gt=0, description="Amount per sale, in coin.")
    seller_max_shorts: int = Field(
        2, ge=0, description="Most short option positions (and resting sales) at once."
    )
    seller_buyback_delta: float = Field(
        0.35, gt=0, lt=1, description="Buy back a short option once its |delta| reaches this."
    )
    seller_buyback_days: float = Field(
        0.25, ge=0, description="Buy back a short option this many days before expiry."
    )

    # -- console --------------------------------------------------------------------------
    console_host: str = Field(
        "127.0.0.1",
        description="Interface the console binds to. Keep loopback unless a proxy guards it.",
    )
    console_port: int = Field(8787, ge=0, le=65535, description="Console port (0: any free).")
    console_token: SecretStr | None = Field(
        None,
        description="Token every /api route requires; empty means generated on first run "
        "into <data_dir>/console_token.",
    )
    console_named_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Named console tokens, name -> token (at least 16 characters each), as a "
        "JSON object: a request with one acts as that name, and an approval decided with it "
        "is recorded under it. Never logged, traced or served.",
    )
    console_refresh_seconds: float = Field(
        2.0, gt=0, description="How often the console page refreshes its status."
    )
    console_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the console answers to besides localhost, 127.0.0.1, [::1] and "
        "console_host (e.g. a proxy's name), as a JSON list; any other Host header gets 400, so "
        "a DNS-rebinding page cannot read the console.",
    )

    # -- SLOs and page-on thresholds (bastion.telemetry.slo, .page_on) ------------------------
    slo_task_completion_objective: float = Field(
        0.995,
        gt=0,
        lt=1,
        description="Share of steps that must end without failing or timing out (halted steps "
        "left out); deploy/prometheus assumes the default.",
    )
    slo_latency_objective: float = Field(
        0.99, gt=0, lt=1, description="Share of steps that must finish within the latency SLO."
    )
    slo_latency_threshold_seconds: float = Field(
        5.0, gt=0, description="A step within this many seconds is good for the latency SLO."
    )
    slo_cost_objective: float = Field(
        0.99,
        gt=0,
        lt=1,
        description="Share of steps whose LLM calls must cost at most slo_cost_threshold_usd.",
    )
    slo_cost_threshold_usd: float = Field(
        0.15, gt=0, description="A step whose LLM calls cost at most this is good for cost."
    )
    slo_period_days: int = Field(
        30, ge=1, le=90, description="The SLOs' error-budget period, in days."
    )
    slo_evaluation_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="How often a run evaluates the SLO burn rates and page-on thresholds "
        "from the task records (at the first step this long after the last evaluation).",
    )
    page_on_cost_factor: float | None = Field(
        2.0,
        gt=0,
        description="Page when a run's LLM spend passes this many times the cost baseline. "
        "Empty: not evaluated.",
    )
    page_on_cost_baseline_usd: float | None = Field(
        None,
        gt=0,
        description="The cost baseline a run, in USD; empty: the median spend of the other runs "
        "of the last page_on_baseline_days (none yet: not evaluated).",
    )
    page_on_tool_calls_per_run: int | None = Field(
        30, ge=1, description="Page when a run makes more tool calls than this. Empty: never."
    )
    page_on_latency_factor: float | None = Field(
        2.0,
        gt=0,
        description="Page when a run's step P95 over the last hour passes this many times the "
        "latency baseline. Empty: not evaluated.",
    )
    page_on_latency_baseline_seconds: float | None = Field(
        None,
        gt=0,
        description="The step P95 baseline, in seconds; empty: the median of the other runs' "
        "step P95 over the last page_on_baseline_days (none yet: not evaluated).",
    )
    page_on_error_rate_pct: float | None = Field(
        1.0,
        gt=0,
        lt=100,
        description="Page when more than this many percent of the steps of the last "
        "page_on_error_window_seconds failed or timed out. Empty: never.",
    )
    page_on_error_window_seconds: float = Field(
        300.0, gt=0, description="The window of page_on_error_rate_pct, in seconds."
    )
    page_on_baseline_days: float = Field(
        7.0, gt=0, description="How many days of other runs the page-on baselines are taken from."
    )
    # -- alerts out (webhooks) --------------------------------------------------------------
    alert_webhook_urls: list[SecretStr] = Field(
        default_factory=list,
        description="Webhook URLs that receive Bastion's alerts as JSON (the generic body in "
        "the README's Alerts out section), as a JSON list; each URL is a secret, never logged, "
        "traced or shown (targets are named webhook:0, webhook:1, ...).",
    )
    alert_slack_webhook_urls: list[SecretStr] = Field(
        default_factory=list,
        description="Slack incoming-webhook URLs (or a Slack-compatible receiver) for the same "
        "alerts, as a JSON list; secrets like alert_webhook_urls (named slack:0, ...).",
    )
    alert_group_wait_seconds: float = Field(
        10.0,
        ge=0,
        description="Alerts raised within this many seconds of the first go out as one message.",
    )
    alert_repeat_interval_seconds: float = Field(
        14_400.0,
        gt=0,
        description="A still-firing alert is sent again after this long (Alertmanager's "
        "repeat_interval); an alert already firing is otherwise never re-sent.",
    )
    alert_webhook_timeout_seconds: float = Field(
        5.0, gt=0, description="Time one webhook request may take before it is retried."
    )
    alert_webhook_deadline_seconds: float = Field(
        30.0,
        gt=0,
        description="Time one delivery may take with its retries (full jitter); then it is "
        "tried again later, or with the next alert.",
    )
    alert_queue_size: int = Field(
        500,
        ge=1,
        description="Notifications held per target while it is slow or down; when full, the "
        "oldest info notifications are dropped first (counted in "
        'bastion_alert_notifications_total{outcome="dropped"}).',
    )
    alert_flush_seconds: float = Field(
        5.0,
        ge=0,
        description="At shutdown, how long Bastion waits to deliver the alerts still queued.",
    )
    # -- operator agent -------------------------------------------------------------------
    operator_enabled: bool = Field(
        True,
        description="Run the operator agent in `bastion run`: Alertmanager's alerts in at POST "
        "/api/alerts/alertmanager, analysed, safe actions proposed.",
    )
    operator_webhook_secret: SecretStr | None = Field(
        None,
        description="A secret Alertmanager may send as its Bearer token to the alert intake "
        "instead of the console token (at least 16 characters). Never logged, traced or served.",
    )
    operator_safety_mode: bool = Field(
        True,
        description="Every operator action but a healthcheck waits in the approvals queue "
        "(kind operator_action) until a person approves it.",
    )
    operator_validation_minutes: float = Field(
        10.0,
        gt=0,
        description="How long after an action the operator waits for its alert to resolve and "
        "health to read OK before it judges the action ineffective.",
    )
    operator_poll_seconds: float = Field(
        2.0,
        gt=0,
        description="How often the operator reads decisions on its queued actions, runs the "
        "approved ones and validates the executed ones.",
    )
    operator_silence_minutes: float = Field(
        60.0, gt=0, description="How long a silence the operator creates lasts."
    )
    operator_prometheus_url: str = Field(
        "",
        description="Prometheus whose HTTP API the operator asks for an alert's series, as "
        "context for the LLM (empty: no context).",
    )
    operator_alertmanager_url: str = Field(
        "",
        description="Alertmanager the silence action creates silences in (empty: silences are "
        "recorded only).",
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_means_none(cls, data: Any) -> Any:
        """An empty variable for an optional setting is "none" (the table's "empty: unlimited");
        for a text setting it stays the empty text it is."""
        if not isinstance(data, dict):
            return data
        return {
            name: None if value == "" and _optional(name) else value for name, value in data.items()
        }

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.seller_min_days >= self.seller_max_days:
            raise ValueError(
                "seller_min_days must be below seller_max_days "
                f"({self.seller_min_days} >= {self.seller_max_days})"
            )
        if self.exchange_cancel_on_disconnect and not self.exchange_websocket:
            raise ValueError(
                "exchange_cancel_on_disconnect needs exchange_websocket=true: cancel-on-"
                "disconnect exists only on a WebSocket session"
            )
        schemes = ("http://", "https://") + (("ws://", "wss://") if self.exchange_websocket else ())
        if self.exchange_url and not self.exchange_url.startswith(schemes):
            raise ValueError(
                f"exchange_url {mask_url(self.exchange_url)!r} is not an http(s) URL: set "
                "BASTION_EXCHANGE_URL like https://test.deribit.com (or the URL `bastion "
                "exchange serve` prints)"
            )
        if self.exchange_websocket and not self.resolved_exchange_url:
            raise ValueError(
                "exchange_websocket needs an exchange URL (testnet, live, or "
                "BASTION_EXCHANGE_URL pointing at `bastion exchange serve`)"
            )
        self._check_llm()
        self._check_tools()
        self._check_named_tokens()
        self._check_alert_webhooks()
        self._check_operator()
        if self.mode != "paper" and self.exchange_client_id == "bastion-paper":
            raise ValueError(
                f"mode={self.mode} needs your Deribit API key: set BASTION_EXCHANGE_CLIENT_ID "
                "and BASTION_EXCHANGE_CLIENT_SECRET"
            )
        return self

    def _check_tools(self) -> None:
        if "news" in self.tools_allowed and not self.tools_news_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                "tools_allowed lists news but tools_news_url is not an http(s) URL: set "
                "BASTION_TOOLS_NEWS_URL, or take news out of BASTION_TOOLS_ALLOWED"
            )
        if self.tools_deadline_seconds < self.tools_timeout_seconds:
            raise ValueError(
                f"tools_deadline_seconds ({self.tools_deadline_seconds:g}) is below "
                f"tools_timeout_seconds ({self.tools_timeout_seconds:g}): the deadline would cut "
                "the first request short; raise BASTION_TOOLS_DEADLINE_SECONDS"
            )

    def _check_operator(self) -> None:
        secret = self.operator_webhook_secret
        if secret is not None and len(secret.get_secret_value()) < _MIN_NAMED_TOKEN:
            raise ValueError(
                f"operator_webhook_secret is shorter than {_MIN_NAMED_TOKEN} characters: set "
                "BASTION_OPERATOR_WEBHOOK_SECRET to a long random value (openssl rand -hex 24)"
            )
        for name in ("operator_prometheus_url", "operator_alertmanager_url"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(
                    f"{name} {mask_url(url)!r} is not an http(s) URL: set "
                    f"BASTION_{name.upper()} like http://127.0.0.1:9090"
                )

    def _check_named_tokens(self) -> None:
        seen: set[str] = set()
        if self.console_token is not None:
            seen.add(self.console_token.get_secret_value())
        for name, secret in self.console_named_tokens.items():
            token = secret.get_secret_value()
            if not name.strip() or len(name) > 100 or not name.isprintable():
                raise ValueError(
                    f"console_named_tokens: the name {name[:100]!r} must be 1-100 printable "
                    "characters: it is recorded as who decided"
                )
            if len(token) < _MIN_NAMED_TOKEN:
                raise ValueError(
                    f"console_named_tokens: the token of {name!r} is shorter than "
                    f"{_MIN_NAMED_TOKEN} characters; generate one with `python -c 'import "
                    "secrets; print(secrets.token_urlsafe(32))'`"
                )
            if token in seen:
                raise ValueError(
                    f"console_named_tokens: the token of {name!r} is also another token: each "
                    "person needs their own, or the record cannot say who decided"
                )
            seen.add(token)

    def _check_alert_webhooks(self) -> None:
        """Each webhook URL must be http(s); the message names the entry, never its value."""
        for field in ("alert_webhook_urls", "alert_slack_webhook_urls"):
            for index, url in enumerate(getattr(self, field)):
                if not url.get_secret_value().startswith(("http://", "https://")):
                    raise ValueError(
                        f"{field}[{index}] is not an http(s) URL: set {_env_name(field)} to a "
                        'JSON list of URLs like ["https://hooks.example.com/..."]'
                    )
        if self.alert_webhook_deadline_seconds < self.alert_webhook_timeout_seconds:
            raise ValueError(
                f"alert_webhook_deadline_seconds ({self.alert_webhook_deadline_seconds:g}) is "
                f"below alert_webhook_timeout_seconds ({self.alert_webhook_timeout_seconds:g}): "
                "the deadline would cut the first request short; raise "
                "BASTION_ALERT_WEBHOOK_DEADLINE_SECONDS"
            )

    def _check_llm(self) -> None:
        if self.agent == "llm_options_seller" and self.llm_provider == "none":
            raise ValueError(
                "agent=llm_options_seller needs an LLM: set BASTION_LLM_PROVIDER and "
                "BASTION_LLM_MODEL"
            )
        if self.llm_provider == "none":
            return
        self._check_llm_endpoint()
        self._check_llm_timings()
        if self.request_token_budget is not None and (
            self.request_token_budget <= self.llm_max_tokens
        ):
            raise ValueError(
                f"request_token_budget ({self.request_token_budget:,}) cannot admit one call of "
                f"llm_max_tokens ({self.llm_max_tokens:,}) output tokens plus its prompt: every "
                "call would be refused; raise BASTION_REQUEST_TOKEN_BUDGET or lower "
                "BASTION_LLM_MAX_TOKENS"
            )

    def _check_llm_endpoint(self) -> None:
        if not self.llm_model.strip() or any(not m.strip() for m in self.llm_fallback_models):
            raise ValueError(
                f"llm_provider={self.llm_provider} needs exact model ids: set BASTION_LLM_MODEL "
                "(e.g. gpt-4o-2024-08-06) and no blank name in BASTION_LLM_FALLBACK_MODELS"
            )
        if self.llm_base_url and not self.llm_base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"llm_base_url {mask_url(self.llm_base_url)!r} is not an http(s) URL: set "
                "BASTION_LLM_BASE_URL like http://127.0.0.1:8765/v1"
            )
        if self.llm_api_key is None and (self.llm_provider == "anthropic" or not self.llm_base_url):
            raise ValueError(
                f"llm_provider={self.llm_provider} needs BASTION_LLM_API_KEY (only a self-hosted "
                "OpenAI-compatible server at BASTION_LLM_BASE_URL may go without one)"
            )

    def _check_llm_timings(self) -> None:
        if self.llm_deadline_seconds < self.llm_timeout_seconds:
            raise ValueError(
                f"llm_deadline_seconds ({self.llm_deadline_seconds:g}) is below "
                f"llm_timeout_seconds ({self.llm_timeout_seconds:g}): the deadline would cut "
                "the first request short; raise BASTION_LLM_DEADLINE_SECONDS"
            )
        if self.budget_reservation_ttl_seconds <= self.llm_deadline_seconds:
            raise ValueError(
                f"budget_reservation_ttl_seconds ({self.budget_reservation_ttl_seconds:g}) must "
                f"exceed llm_deadline_seconds ({self.llm_deadline_seconds:g}), or a slow call's "
                "budget hold is reclaimed while it runs: raise "
                "BASTION_BUDGET_RESERVATION_TTL_SECONDS"
            )
        chain = self.llm_deadline_seconds * len(self.llm_models)
        if self.agent == "llm_options_seller" and self.step_timeout_seconds <= chain:
            raise ValueError(
                f"step_timeout_seconds ({self.step_timeout_seconds:g}) must exceed the time one "
                f"question may take down the chain, {len(self.llm_models)} model(s) x "
                f"llm_deadline_seconds ({self.llm_deadline_seconds:g}) = {chain:g} s, or the "
                "step timeout cuts the fallbacks off: raise BASTION_STEP_TIMEOUT_SECONDS or "
                "lower BASTION_LLM_DEADLINE_SECONDS"
            )

    @property
    def llm_models(self) -> list[str]:
        """The fallback chain's models in order: the pinned one, then the smaller ones."""
        return [self.llm_model, *self.llm_fallback_models] if self.llm_model else []

    # -- derived --------------------------------------------------------------------------
    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'bastion.db'}"

    @property
    def resolved_exchange_url(self) -> str:
        """Empty for the in-process paper exchange."""
        if self.exchange_url:
            return self.exchange_url.rstrip("/")
        return {"paper": "", "testnet": TESTNET_URL, "live": MAINNET_URL}[self.mode]

    @property
    def kill_switch_path(self) -> Path:
        return self.data_dir / "kill_switch.flag"

    @property
    def traces_dir(self) -> Path:
        return self.data_dir / "traces"

    def secret_values(self) -> list[str]:
        """Every secret's plain value, for redaction before anything is written."""
        values = [self.exchange_client_secret.get_secret_value()]
        if self.console_token is not None:
            values.append(self.console_token.get_secret_value())
        if self.llm_api_key is not None:
            values.append(self.llm_api_key.get_secret_value())
        values.extend(s.get_secret_value() for s in self.paper_allowed_credentials.values())
        values.extend(s.get_secret_value() for s in self.console_named_tokens.values())
        for url in (*self.alert_webhook_urls, *self.alert_slack_webhook_urls):
            values.extend(_webhook_secrets(url.get_secret_value()))
        if self.operator_webhook_secret is not None:
            values.append(self.operator_webhook_secret.get_secret_value())
        # Passwords and secret query values of every URL-valued setting (store, exchange, LLM,
        # and any added later), so they are caught even where a message quotes them bare.
        values.extend(
            v for text in _strings(self.model_dump(mode="json")) for v in url_secrets(text)
        )
        return [v for v in values if v]

    def public_dict(self) -> dict[str, Any]:
        """Settings with secrets masked: safe to log, trace and serve.

        A secret setting reads ``[REDACTED]``, every URL is masked by shape, and a secret's
        value quoted inside any other setting (a fault's message, a header) is replaced too.
        """
        data = self.model_dump(mode="json")
        for name in data:
            value = getattr(self, name)
            items = value.values() if isinstance(value, dict) else value
            if isinstance(value, SecretStr) or (
                isinstance(value, dict | list) and any(isinstance(v, SecretStr) for v in items)
            ):
                data[name] = "[REDACTED]"
        # Every URL-valued setting, by shape: userinfo passwords and secret query values; then
        # every secret's value wherever else it is quoted, longest first.
        usable = {s for s in self.secret_values() if len(s) >= MIN_SECRET_LENGTH}
        secrets = sorted(usable, key=len, reverse=True)
        return {name: _mask_urls(value, secrets) for name, value in data.items()}

    def config_hash(self) -> str:
        """A short, stable fingerprint of the effective settings, recorded with every run."""
        blob = orjson.dumps(self.public_dict(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _toml_path.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)


_WEBHOOK_TOKEN_LENGTH = 16


def _webhook_secrets(url: str) -> list[str]:
    """A webhook URL's secrets: the whole URL, its password and secret query values, and its
    last path segment when it is token-long (Slack, Discord and Teams put the token there)."""
    last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    token = [last] if len(last) >= _WEBHOOK_TOKEN_LENGTH else []
    return [url, *url_secrets(url), *token]


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a dumped setting value (lists and dicts walked)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _mask_urls(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` (dumped to JSON types) with :func:`mask_url` applied to every string in it and
    each of ``secrets`` replaced by ``[REDACTED]``."""
    if isinstance(value, str):
        text = mask_url(value)
        for secret in secrets:
            text = text.replace(secret, "[REDACTED]")
        return text
    if isinstance(value, dict):
        return {key: _mask_urls(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_urls(item, secrets) for item in value]
    return value


def _optional(name: str) -> bool:
    info = Settings.model_fields.get(name)
    return info is not None and type(None) in get_args(info.annotation)


def _env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def _unknown_env_keys() -> list[str]:
    known = {_env_name(name) for name in Settings.model_fields} | {_CONFIG_ENV}
    return sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)


def _describe(error: Any) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    field = loc[0] if loc else ""
    info = Settings.model_fields.get(field)
    where = f"{field} ({_env_name(field)})" if info else (".".join(loc) or "settings")
    got = error.get("input")
    secret = field == "store_url" or (info is not None and "secret" in str(info.annotation).lower())
    shown = not (secret or isinstance(got, dict | SecretStr) or got is None)
    got_text = f"; got {got!r}" if shown else ""
    hint = f" Fix: {info.description}" if info and info.description else ""
    if error.get("type") == "extra_forbidden":
        return f"{where}: unknown setting. Fix: remove it or correct its spelling."
    return f"{where}: {error.get('msg', 'invalid')}{got_text}.{hint}"


def _resolve_toml(config_file: Path | None) -> Path | None:
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {config_file} not found. Fix: check the path.")
        return config_file
    named = os.environ.get(_CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(
                f"{_CONFIG_ENV}={named}: file not found. Fix: point it at a bastion.toml."
            )
        return path
    return _DEFAULT_TOML if _DEFAULT_TOML.is_file() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings or raise :class:`ConfigError` naming every bad field and its fix."""
    unknown = _unknown_env_keys()
    if unknown:
        raise ConfigError(
            "Invalid configuration: unknown environment variable(s) "
            + ", ".join(unknown)
            + ". Fix: remove them or correct the spelling (see the README's configuration "
            "table)."
        )
    token = _toml_path.set(_resolve_toml(config_file))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError("Invalid configuration: " + " | ".join(lines)) from None
    except ValueError as exc:  # a malformed TOML file
        raise ConfigError(f"Invalid configuration file: {exc}. Fix: correct the TOML.") from None
    finally:
        _toml_path.reset(token)


def ensure_data_dir(settings: Settings) -> Path:
    """Create the data directory (and its traces folder) or fail naming the setting."""
    path = settings.data_dir
    try:
        settings.traces_dir.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"data_dir ({_env_name('data_dir')}): cannot write to {path} ({exc.strerror}). "
            "Fix: point it at a directory Bastion may create and write."
        ) from None
    return path


def _shown_default(name: str) -> str:
    info = Settings.model_fields[name]
    value = info.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return "(paper placeholder)"
    if value in ("", None) or value == {}:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def markdown_table() -> str:
    """The README's configuration table, generated so that it cannot drift from the code."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, info in Settings.model_fields.items():
        rows.append(f"| `{_env_name(name)}` | `{_shown_default(name)}` | {info.description} |")
    return "\n".join(rows)
