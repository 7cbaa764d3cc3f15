"""Small factories: Settings in, one wired part out. The one way to build things.

The runner (``bastion run``), every CLI command and the API build their parts here, so a part
is configured the same way wherever it is used: the CLI's kill switch records into the store
through the same redacting sink as a run, the health command observes through the same
observer as the loop. Each factory takes what it needs and builds nothing it was given.

Each factory imports the part it builds inside its body, and this module imports at its top only
the ground floor. Every command goes through here, and the parts weigh very differently: the
database layer alone takes longer to import than a whole ``bastion kill`` may (issue #10), the
console's server and the SDKs take seconds. Importing in the factory makes a command pay for the
parts it builds and for no other.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bastion.clock import Clock
from bastion.config import Settings
from bastion.errors import ConfigError
from bastion.events import Event, Journal

if TYPE_CHECKING:
    import httpx
    from opentelemetry.trace import Tracer

    from bastion.agent import Agent
    from bastion.exchange.base import Exchange
    from bastion.exchange.deribit import HaltCheck
    from bastion.exchange.deribit_ws import DeribitWsSession
    from bastion.guard.approvals import ApprovalRecord, Approvals
    from bastion.guard.budget import Budget, BudgetLimits
    from bastion.guard.halt import Halt
    from bastion.guard.health import HealthChecker
    from bastion.guard.limits import Limits
    from bastion.guard.risk import RiskLimits
    from bastion.llm.base import LLM
    from bastion.llm.chain import FallbackChain, Route
    from bastion.llm.pricing import PriceBook
    from bastion.notify import Notifier
    from bastion.ops.flatten import Flattener
    from bastion.ops.ledger_pruning import LedgerPruning
    from bastion.ops.operator.actions import HealthRun
    from bastion.ops.operator.service import Operator
    from bastion.ops.replay import LLMMode, Replayer
    from bastion.ops.status import StatusService
    from bastion.resilience import Resilience
    from bastion.runtime.loop import LoopConfig
    from bastion.runtime.observe import Observer
    from bastion.simulators.paper import PaperExchangeApp
    from bastion.store import Store
    from bastion.store.emergency import EmergencyStore
    from bastion.store.retention import LedgerRetention
    from bastion.telemetry.metrics import Metrics
    from bastion.telemetry.monitor import AlertMonitor, SloReader
    from bastion.tools import Toolbox
    from bastion.trace.record import TraceWriter
    from bastion.trace.redact import Redactor

__all__ = [
    "PAPER_BASE_URL",
    "budget_limits",
    "build_agent",
    "build_alert_monitor",
    "build_approvals",
    "build_budget",
    "build_emergency_store",
    "build_exchange",
    "build_halt",
    "build_halt_limits",
    "build_health_checker",
    "build_journal",
    "build_ledger_pruning",
    "build_ledger_retention",
    "build_llm_routes",
    "build_loop_config",
    "build_observer",
    "build_operator",
    "build_paper_app",
    "build_price_book",
    "build_redactor",
    "build_replay_llm",
    "build_replayer",
    "build_resilience",
    "build_slo_reader",
    "build_status_service",
    "build_toolbox",
    "risk_limits",
]

PAPER_BASE_URL = "http://paper.local"


def risk_limits(settings: Settings) -> RiskLimits:
    """The risk caps the ``risk_*`` settings describe; an unlisted instrument is refused."""
    from bastion.guard.risk import RiskLimits

    return RiskLimits(
        max_order_amount=settings.risk_max_order_amount,
        max_order_notional_usd=settings.risk_max_order_notional_usd,
        max_position=settings.risk_max_position,
        allowed_instruments=tuple(settings.risk_allowed_instruments),
        max_total_notional_usd=settings.risk_max_total_notional_usd,
        max_orders_per_minute=settings.risk_max_orders_per_minute,
        price_collar_pct=settings.risk_price_collar_pct,
        price_collar_min_ticks=settings.risk_price_collar_min_ticks,
        allowed_currencies=tuple(settings.risk_allowed_currencies),
        allowed_kinds=tuple(settings.risk_allowed_kinds),
        listed_only=True,
        approval_notional_usd=settings.risk_approval_notional_usd,
        approve_new_underlying=settings.risk_approve_new_underlying,
        approve_new_kind=settings.risk_approve_new_kind,
    )


def build_halt_limits(settings: Settings, store: Store | None = None) -> Limits:
    """Every halt trigger the loop asks: health, cost cap, drift, daily loss and drawdown,
    the tool error rate and a runaway loop (of tool calls in a step, or of steps in a run).

    The daily loss keeps the day's start and peak in ``store`` when the exchange outlives the
    run (a URL): the embedded paper exchange is a new account at every start, which the marks
    of the last one would misjudge."""
    from bastion.guard.limits import (
        DailyLossTrigger,
        Limits,
        RunawayTrigger,
        ToolErrorRateTrigger,
        Trigger,
    )

    url = settings.resolved_exchange_url
    triggers: list[Trigger] = list(Limits.default().triggers)
    if settings.max_tool_calls_per_step is not None or settings.max_steps_per_run is not None:
        triggers.append(
            RunawayTrigger(
                max_tool_calls=settings.max_tool_calls_per_step,
                max_steps=settings.max_steps_per_run,
            )
        )
    if settings.tool_error_rate_pct is not None:
        triggers.append(
            ToolErrorRateTrigger(
                max_rate_pct=settings.tool_error_rate_pct,
                window_seconds=settings.tool_error_window_seconds,
                min_calls=settings.tool_error_min_calls,
            )
        )
    if settings.daily_loss_pct is not None or settings.max_drawdown_pct is not None:
        triggers.append(
            DailyLossTrigger(
                max_loss_pct=settings.daily_loss_pct,
                max_drawdown_pct=settings.max_drawdown_pct,
                flatten=settings.daily_loss_flatten,
                marks=store.day_marks if store is not None and url else None,
                account=_account_key(settings, url),
            )
        )
    return Limits(triggers)


def _account_key(settings: Settings, url: str) -> str:
    """``client_id@host:port/currency``: which account's day a day mark is (no secret in it)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    where = f"{parts.hostname or 'paper'}{f':{parts.port}' if parts.port else ''}"
    return f"{settings.exchange_client_id}@{where}/{settings.currency}"[:200]


def budget_limits(settings: Settings) -> BudgetLimits:
    """The budget limits the ``*_budget`` settings describe."""
    from bastion.guard.budget import BudgetLimits

    return BudgetLimits(
        request_tokens=settings.request_token_budget,
        request_usd=settings.request_usd_budget,
        daily_tokens=settings.daily_token_budget,
        daily_usd=settings.daily_usd_budget,
        monthly_tokens=settings.monthly_token_budget,
        monthly_usd=settings.monthly_usd_budget,
        envelope_tokens=settings.run_token_budget,
        envelope_usd=settings.run_usd_budget,
        fleet_daily_tokens=settings.fleet_daily_token_budget,
        fleet_daily_usd=settings.fleet_daily_usd_budget,
    )


def build_budget(
    settings: Settings,
    store: Store,
    clock: Clock,
    agent: str,
    *,
    on_alert: Callable[[Any], Any] | None = None,
    on_exhausted: Callable[[str], Any] | None = None,
    metrics: Metrics | None = None,
) -> Budget:
    """The agent's token and USD budget on the shared store."""
    from bastion.guard.budget import Budget

    return Budget(
        store,
        clock=clock,
        metrics=metrics,
        agent=agent,
        limits=budget_limits(settings),
        alert_ratio=settings.budget_alert_ratio,
        on_alert=on_alert,
        on_exhausted=on_exhausted,
        reservation_ttl_seconds=settings.budget_reservation_ttl_seconds,
    )


def build_ledger_retention(settings: Settings, store: Store) -> LedgerRetention | None:
    """The budget ledger's retention, or None when the ledger is kept forever."""
    from bastion.store.retention import LedgerRetention

    days = settings.budget_ledger_retention_days
    return LedgerRetention(store.engine, days=days) if days is not None else None


def build_ledger_pruning(settings: Settings, store: Store, clock: Clock) -> LedgerPruning | None:
    """A run's ledger pruning (at start, then about daily), or None when kept forever."""
    from bastion.ops.ledger_pruning import LedgerPruning

    retention = build_ledger_retention(settings, store)
    return LedgerPruning(retention, clock) if retention is not None else None


def build_agent(settings: Settings) -> Agent:
    """The reference agent ``agent`` names, with its ``seller_*`` settings."""
    from bastion.agents.llm_seller import LLMOptionsSeller, LLMSellerParams
    from bastion.agents.options_seller import OptionsSeller, SellerParams

    params = SellerParams(
        currency=settings.currency,
        target_delta=settings.seller_target_delta,
        min_days=settings.seller_min_days,
        max_days=settings.seller_max_days,
        order_amount=settings.seller_order_amount,
        max_shorts=settings.seller_max_shorts,
        buyback_delta=settings.seller_buyback_delta,
        buyback_days=settings.seller_buyback_days,
    )
    if settings.agent == "llm_options_seller":
        return LLMOptionsSeller(
            LLMSellerParams(seller=params, max_tokens=min(400, settings.llm_max_tokens))
        )
    return OptionsSeller(params)


def build_replayer(
    settings: Settings, *, llm: LLMMode = "recorded", live_llm: FallbackChain | None = None
) -> Replayer:
    """The replay audit with the agent and risk limits the settings describe now.

    A fresh agent per replayed run, as a run starts with a fresh one.
    """
    from bastion.ops.replay import Replayer

    return Replayer(
        agent_factory=lambda: build_agent(settings),
        limits=risk_limits(settings),
        llm=llm,
        live_llm=live_llm,
        settings=settings.public_dict(),
    )


def build_replay_llm(settings: Settings, store: Store, clock: Clock) -> FallbackChain | None:
    """The configured model chain for ``bastion replay --llm live``; None without a provider.

    Its calls are admitted by the agent's budget (a replay spends real money like a run) under
    the workflow ``replay``; it escalates to no one and caches nothing, since a replay must ask
    the model every question and must not page a person.
    """
    from bastion.llm.chain import FallbackChain

    if settings.llm_provider == "none":
        return None
    agent = build_agent(settings)
    return FallbackChain(
        build_llm_routes(settings),
        resilience=build_resilience(settings, clock),
        prices=build_price_book(settings),
        clock=clock,
        budget=build_budget(settings, store, clock, agent.name),
        timeout=settings.llm_timeout_seconds,
        deadline=settings.llm_deadline_seconds,
        max_tokens=settings.llm_max_tokens,
        cache_ttl=0.0,
        workflow="replay",
    )


def build_price_book(settings: Settings) -> PriceBook:
    """The built-in price table under ``llm_prices``, ``llm_default_price`` for the rest."""
    from bastion.llm.pricing import Price, PriceBook

    return PriceBook(
        {model: Price.of(*price) for model, price in settings.llm_prices.items()},
        default=Price.of(*settings.llm_default_price),
    )


def build_llm_routes(settings: Settings) -> list[Route]:
    """The fallback chain's links: one adapter for the provider, one route per model.

    The SDKs are imported here, not at the top: together they take 1.5-2.5 s to import, which
    every ``bastion`` command would pay (and ``bastion run`` before its first order) whether or
    not an LLM is configured.
    """
    from bastion.llm.chain import Route

    if settings.llm_provider == "none":
        return []
    adapter: LLM
    if settings.llm_provider == "anthropic":
        from bastion.llm.anthropic import AnthropicChat

        assert settings.llm_api_key is not None  # Settings refuses anthropic without a key
        adapter = AnthropicChat(api_key=settings.llm_api_key, base_url=settings.llm_base_url)
    else:
        from bastion.llm.openai import OpenAIChat

        adapter = OpenAIChat(
            api_key=settings.llm_api_key,
            base_url=settings.llm_base_url,
            max_tokens_field=settings.llm_max_tokens_field,
        )
    return [Route(adapter, model) for model in settings.llm_models]


def build_paper_app(settings: Settings, clock: Clock) -> PaperExchangeApp:
    """The paper exchange configured by the ``paper_*`` settings (an ASGI app)."""
    from pydantic import ValidationError

    from bastion.simulators.paper import (
        FaultSpec,
        create_app,
    )

    try:
        faults = [FaultSpec.model_validate(f) for f in settings.paper_faults]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'fault'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(
            f"paper_faults (BASTION_PAPER_FAULTS): {problems}. Fix: see the fault kinds in the "
            "README's configuration table."
        ) from None
    return create_app(
        faults=faults,
        clock=clock,
        seed=settings.paper_seed,
        allowed_credentials={
            k: v.get_secret_value() for k, v in settings.paper_allowed_credentials.items()
        },
        initial_balances={
            "BTC": settings.paper_initial_balance_btc,
            "ETH": settings.paper_initial_balance_eth,
        },
        token_ttl_seconds=settings.paper_token_ttl_seconds,
    )


def build_resilience(
    settings: Settings,
    clock: Clock,
    metrics: Metrics | None = None,
    journal: Journal | None = None,
    *,
    deadline: float | None = None,
    tracer: Tracer | None = None,
) -> Resilience:
    """Breakers, retries and classification for every external call of one runtime; ``tracer``
    (the runtime's :class:`~bastion.telemetry.tracing.Tracing`) makes the calls' spans."""
    from bastion.resilience import BreakerConfig, Resilience, RetrySettings

    llm_breaker = BreakerConfig(
        settings.llm_breaker_failures,
        window=None,
        recovery_timeout=settings.llm_breaker_recovery_seconds,
        slow_call=settings.llm_breaker_slow_call_seconds,
    )
    return Resilience(
        clock=clock,
        metrics=metrics,
        journal=journal,
        tracer=tracer,
        breaker_defaults={"llm": llm_breaker},
        retry=RetrySettings(
            base=settings.retry_base_seconds,
            cap=settings.retry_cap_seconds,
            deadline=deadline or settings.call_deadline_seconds,
        ),
    )


def build_exchange(
    settings: Settings,
    clock: Clock,
    metrics: Metrics,
    halt_check: HaltCheck,
    *,
    resilience: Resilience | None = None,
    paper: PaperExchangeApp | None = None,
) -> Exchange:
    """A Deribit client: over ASGI to an in-process paper exchange, or to the configured URL.

    With ``exchange_websocket`` the client keeps one WebSocket session (and asks for
    cancel-on-disconnect when configured); it connects on first use.
    """
    import httpx

    from bastion.exchange.deribit import DeribitClient

    url = settings.resolved_exchange_url
    transport: httpx.AsyncBaseTransport | None = None
    if not url:
        transport = httpx.ASGITransport(app=paper or build_paper_app(settings, clock))
        url = PAPER_BASE_URL
    return DeribitClient(
        base_url=url,
        client_id=settings.exchange_client_id,
        client_secret=settings.exchange_client_secret,
        clock=clock,
        timeout=settings.exchange_timeout_seconds,
        refresh_margin=settings.exchange_token_refresh_margin_seconds,
        transport=transport,
        metrics=metrics,
        halt_check=halt_check,
        resilience=resilience,
        websocket=_websocket(settings, url),
    )


def build_health_checker(
    settings: Settings,
    *,
    clock: Clock,
    exchange: Exchange,
    store: Store,
    observe: Callable[[], Awaitable[object]] | None = None,
    prices: PriceBook | None = None,
) -> HealthChecker:
    """The health checks of this deployment: the built-in ones, severities by mode."""
    from bastion.guard.health import HealthChecker
    from bastion.guard.health_checks import builtin_checks

    checker = HealthChecker(
        clock=clock,
        environment=settings.mode,
        check_timeout=settings.health_check_timeout_seconds,
        severity_overrides=settings.health_severity_overrides,
        store=store,
        retention=settings.health_history_retention,
        redact=build_redactor(settings).redact_text,
    )
    builtin_checks(
        checker,
        settings=settings,
        exchange=exchange,
        store=store,
        data_dir=settings.data_dir,
        observe=observe,
        prices=prices or build_price_book(settings),
    )
    return checker


def build_observer(
    settings: Settings, exchange: Exchange, clock: Clock, agent: Agent | None = None
) -> Observer:
    """The exchange snapshot the loop and the health check observe through.

    With ``agent`` the tickers are its watchlist's; without one (``bastion health``) only the
    instruments the account holds are ticked, so no agent is built just to look.
    """
    from bastion.runtime.observe import Observer

    return Observer(
        exchange=exchange,
        clock=clock,
        currency=settings.currency,
        watchlist=agent.watchlist if agent is not None else (),
        instruments_refresh_seconds=settings.instruments_refresh_seconds,
        ticker_concurrency=settings.ticker_concurrency,
    )


def build_flattener(
    settings: Settings, exchange: Exchange, clock: Clock, journal: Journal
) -> tuple[Flattener, TraceWriter]:
    """``bastion flatten``'s planner and sender (the settings' caps, the held instruments), and
    the trace it records into: ``traces/<date>/flatten-<stamp>-<pid>.ndjson``, redacted like a
    run's. The caller closes the trace."""
    from bastion.ops.flatten import Flattener
    from bastion.trace.record import TraceWriter
    from bastion.trace.sink import TraceSink

    run_id = f"flatten-{clock.now().strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    trace = TraceWriter(settings.traces_dir, run_id, clock, settings.secret_values())
    journal.subscribe(TraceSink(trace))
    flattener = Flattener(
        exchange=exchange,
        observer=build_observer(settings, exchange, clock),
        limits=risk_limits(settings),
        journal=journal,
        run_id=run_id,
    )
    return flattener, trace


def build_loop_config(settings: Settings) -> LoopConfig:
    """How the loop paces and bounds itself, from the loop and drift settings."""
    from bastion.runtime.loop import LoopConfig

    return LoopConfig(
        currency=settings.currency,
        interval_seconds=settings.loop_interval_seconds,
        step_timeout_seconds=settings.step_timeout_seconds,
        dry_run=settings.dry_run,
        halt_poll_seconds=settings.halt_poll_seconds,
        watch_flag=True,
        instruments_refresh_seconds=settings.instruments_refresh_seconds,
        ticker_concurrency=settings.ticker_concurrency,
        drift_dust_coin=settings.position_drift_dust_coin,
        drift_observations=settings.position_drift_observations,
        approval_ttl_seconds=settings.risk_approval_ttl_seconds,
    )


def build_toolbox(
    settings: Settings,
    *,
    exchange: Exchange,
    resilience: Resilience,
    journal: Journal,
    agent: Agent,
    news_transport: httpx.AsyncBaseTransport | None = None,
) -> Toolbox:
    """The tools ``tools_allowed`` names, offered to ``agent`` as far as it declares them.

    Only the allowed tools are built (the news tool needs its URL, which the settings check),
    so a tool the configuration leaves out cannot even be reached by mistake.
    ``news_transport`` replaces the network under the news tool (tests).
    """
    from bastion.tools import AgentTool, NewsTool, TickerTool, Toolbox

    tools: list[AgentTool] = []
    if "ticker" in settings.tools_allowed:
        tools.append(TickerTool(exchange))
    if "news" in settings.tools_allowed:
        tools.append(
            NewsTool(
                settings.tools_news_url,
                timeout=settings.tools_timeout_seconds,
                transport=news_transport,
            )
        )
    return Toolbox(
        tools,
        allowed=settings.tools_allowed,
        declared=tuple(agent.tools),
        agent=agent.name,
        resilience=resilience,
        journal=journal,
        timeout=settings.tools_timeout_seconds,
        deadline=settings.tools_deadline_seconds,
    )


def build_redactor(settings: Settings) -> Redactor:
    """The redactor of every secret the settings hold (keys, tokens, URL passwords)."""
    from bastion.trace.redact import Redactor

    return Redactor(settings.secret_values())


def build_journal(
    settings: Settings,
    clock: Clock,
    *,
    store: Store | EmergencyStore | None,
    run_id: str | None = None,
    also: Callable[[Event], None] | None = None,
) -> Journal:
    """A journal recording into the store through the redacting :class:`StoreSink`.

    ``also`` is one more sink, subscribed first (a CLI collecting what a halt reported).
    """
    from bastion.store.sink import StoreSink

    journal = Journal(run_id=run_id)
    if also is not None:
        journal.subscribe(also)
    if store is not None:
        redactor = build_redactor(settings)
        journal.subscribe(StoreSink(store.events, clock=clock, redact=redactor.redact))
    return journal


def build_approvals(
    settings: Settings,
    store: Store,
    clock: Clock,
    *,
    agent: str | None = None,
    on_request: Callable[[ApprovalRecord], Any] | None = None,
) -> Approvals:
    """The approvals queue on the shared store; entries it queues are labelled ``agent`` and
    redacted of every secret the settings hold."""
    from bastion.guard.approvals import Approvals

    return Approvals(
        store,
        clock=clock,
        agent=agent or build_agent(settings).name,
        on_request=on_request,
        redact=build_redactor(settings).redact,
    )


def build_emergency_store(settings: Settings) -> EmergencyStore | None:
    """The store's halts and events without the database layer, if the store allows it.

    None unless the store is a SQLite file already at this code's schema; the caller then opens
    the full :class:`~bastion.store.Store` (see :mod:`bastion.store.emergency`).
    """
    from bastion.store.emergency import EmergencyStore

    return EmergencyStore.open(settings.resolved_store_url)


def build_halt(
    settings: Settings,
    clock: Clock,
    *,
    store: Store | EmergencyStore | None = None,
    journal: Journal | None = None,
    metrics: Metrics | None = None,
) -> Halt:
    """The one halt path on this data directory's flag, recording into ``store``."""
    from bastion.guard.halt import Halt

    return Halt(
        flag_path=settings.kill_switch_path,
        clock=clock,
        halts=store.halts if store is not None else None,
        journal=journal,
        metrics=metrics,
        auto_resume=settings.halt_auto_resume,
    )


def build_status_service(
    settings: Settings,
    clock: Clock,
    *,
    halt: Halt,
    store: Store | None,
    budget: Budget | None = None,
    breakers: Callable[[], list[dict[str, Any]]] | None = None,
    notifications: Callable[[], list[dict[str, Any]]] | None = None,
) -> StatusService:
    """The one status report, for the console and ``bastion status`` alike."""
    from bastion.ops.status import StatusService

    if budget is None and store is not None:
        budget = build_budget(settings, store, clock, build_agent(settings).name)
    return StatusService(
        data_dir=settings.data_dir,
        clock=clock,
        halt_state=halt.state,
        store=store,
        budget=budget.usage_today if budget is not None else None,
        breakers=breakers,
        notifications=notifications,
        redact=build_redactor(settings).redact,
        auto_resume=settings.halt_auto_resume,
    )


def _websocket(settings: Settings, url: str) -> DeribitWsSession | None:
    if not settings.exchange_websocket:
        return None
    from bastion.exchange.deribit_ws import DeribitWsSession

    return DeribitWsSession(
        base_url=url,
        client_id=settings.exchange_client_id,
        client_secret=settings.exchange_client_secret,
        timeout=settings.exchange_timeout_seconds,
        cancel_on_disconnect=settings.exchange_cancel_on_disconnect,
    )


def build_slo_reader(settings: Settings, store: Store) -> SloReader:
    """The SLOs and page-on thresholds of the ``slo_*`` and ``page_on_*`` settings, over the
    store's task records."""
    from bastion.telemetry.monitor import SloReader
    from bastion.telemetry.page_on import PageOnSettings
    from bastion.telemetry.slo import default_slos

    s = settings
    error_pct = s.page_on_error_rate_pct
    return SloReader(
        store.tasks,
        slos=default_slos(
            completion=s.slo_task_completion_objective,
            latency=s.slo_latency_objective,
            latency_s=s.slo_latency_threshold_seconds,
            cost=s.slo_cost_objective,
            cost_usd=s.slo_cost_threshold_usd,
        ),
        page_on=PageOnSettings(
            cost_factor=s.page_on_cost_factor,
            cost_baseline_usd=s.page_on_cost_baseline_usd,
            tool_calls_per_run=s.page_on_tool_calls_per_run,
            latency_factor=s.page_on_latency_factor,
            latency_baseline_s=s.page_on_latency_baseline_seconds,
            error_rate=error_pct / 100 if error_pct is not None else None,
            error_window_s=s.page_on_error_window_seconds,
            baseline_days=s.page_on_baseline_days,
        ),
        period_days=s.slo_period_days,
    )


def build_alert_monitor(
    settings: Settings, store: Store, journal: Journal, clock: Clock, run_id: str
) -> AlertMonitor:
    """A run's SLO and page-on alert monitor; subscribe it after the run's task sink."""
    from bastion.telemetry.monitor import AlertMonitor

    return AlertMonitor(
        build_slo_reader(settings, store),
        journal,
        clock,
        run_id=run_id,
        interval_seconds=settings.slo_evaluation_interval_seconds,
    )


def build_notifier(
    settings: Settings,
    clock: Clock,
    *,
    resilience: Resilience,
    metrics: Metrics | None = None,
    run_id: str | None = None,
    agent: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Notifier | None:
    """The alert webhooks of ``alert_webhook_urls`` and ``alert_slack_webhook_urls``, or None
    when neither lists one (nothing is subscribed, nothing runs)."""
    if not settings.alert_webhook_urls and not settings.alert_slack_webhook_urls:
        return None
    from bastion.notify import Context, Notifier, NotifierSettings, WebhookTarget

    timeout = settings.alert_webhook_timeout_seconds
    targets = [
        WebhookTarget(f"webhook:{n}", url, format="json", timeout=timeout, transport=transport)
        for n, url in enumerate(settings.alert_webhook_urls)
    ] + [
        WebhookTarget(f"slack:{n}", url, format="slack", timeout=timeout, transport=transport)
        for n, url in enumerate(settings.alert_slack_webhook_urls)
    ]
    return Notifier(
        targets,
        clock=clock,
        resilience=resilience,
        metrics=metrics,
        context=Context(run_id=run_id, agent=agent),
        settings=NotifierSettings(
            group_wait=settings.alert_group_wait_seconds,
            repeat_interval=settings.alert_repeat_interval_seconds,
            timeout=timeout,
            deadline=settings.alert_webhook_deadline_seconds,
            queue_size=settings.alert_queue_size,
        ),
    )


def build_operator(
    settings: Settings,
    *,
    store: Store,
    clock: Clock,
    halt: Halt,
    approvals: Approvals,
    resilience: Resilience,
    budget: Budget | None = None,
    healthcheck: Callable[[], Awaitable[HealthRun]] | None = None,
    llm_routes: list[Route] | None = None,
    metrics: Metrics | None = None,
    journal: Journal | None = None,
) -> Operator:
    """The operator agent on this store: its rules always; the LLM (a chain of its own, admitted
    by ``budget``, workflow ``operator``, escalating to no one: a failed question falls back to
    the rules) when ``llm_routes`` are given; Prometheus and Alertmanager when their URLs are.

    The caller owns ``llm_routes`` (the runner's, or :func:`build_llm_routes`) and closes their
    adapters; the operator closes only its Prometheus and Alertmanager clients.
    """
    from bastion.llm.chain import FallbackChain
    from bastion.ops.operator.actions import Effects
    from bastion.ops.operator.analyst import LLMAnalyst
    from bastion.ops.operator.prometheus import PrometheusContext
    from bastion.ops.operator.service import Operator, OperatorConfig
    from bastion.ops.operator.silences import Silencer

    routes = llm_routes or []
    analyst = None
    if routes:
        chain = FallbackChain(
            routes,
            resilience=resilience,
            prices=build_price_book(settings),
            clock=clock,
            budget=budget,
            timeout=settings.llm_timeout_seconds,
            deadline=settings.llm_deadline_seconds,
            max_tokens=min(600, settings.llm_max_tokens),
            cache_ttl=0.0,
            metrics=metrics,
            journal=journal,
            workflow="operator",
        )
        analyst = LLMAnalyst(chain, max_tokens=min(600, settings.llm_max_tokens))
    prometheus = (
        PrometheusContext(settings.operator_prometheus_url, resilience=resilience)
        if settings.operator_prometheus_url
        else None
    )
    silencer = Silencer(
        settings.operator_alertmanager_url or None, resilience=resilience, clock=clock
    )
    return Operator(
        store=store,
        clock=clock,
        approvals=approvals,
        effects=Effects(halt=halt, approvals=approvals, silencer=silencer, healthcheck=healthcheck),
        config=OperatorConfig(
            safety_mode=settings.operator_safety_mode,
            validation_minutes=settings.operator_validation_minutes,
            poll_seconds=settings.operator_poll_seconds,
            silence_minutes=settings.operator_silence_minutes,
        ),
        analyst=analyst,
        prometheus=prometheus,
        redact=build_redactor(settings).redact,
    )
