"""The composition root of ``bastion run``: build every part from Settings, run, shut down.

Everything else receives its collaborators through its constructor; this is the one place that
decides which concrete ones (SQLite or PostgreSQL, in-process paper exchange or a Deribit URL,
the wall clock or a simulated one). Tests and benchmarks build a :class:`Runner` with a
``SimClock`` and a scripted agent; ``bastion run`` builds it with the defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy.engine import make_url

from bastion.agent import Agent
from bastion.api.app import create_app as create_console_app
from bastion.api.server import ConsoleServer
from bastion.api.token import ensure_console_token
from bastion.build import (
    build_agent,
    build_budget,
    build_exchange,
    build_health_checker,
    build_llm_routes,
    build_paper_app,
    build_price_book,
    build_resilience,
    risk_limits,
)
from bastion.clock import Clock, WallClock
from bastion.config import Settings, ensure_data_dir
from bastion.errors import BastionError
from bastion.events import Event, EventKind, Journal
from bastion.exchange.base import Exchange
from bastion.guard.approvals import ApprovalRecord, Approvals
from bastion.guard.budget import BudgetAlert, BudgetExhausted
from bastion.guard.halt import Halt
from bastion.guard.health_guard import HealthGuard
from bastion.llm.chain import FallbackChain, Route
from bastion.market import Order
from bastion.runtime.loop import Loop, LoopConfig
from bastion.simulators.paper import PaperExchangeApp
from bastion.store import Store
from bastion.telemetry.metrics import Metrics
from bastion.trace.record import TraceWriter
from bastion.trace.redact import Redactor

__all__ = ["RunSummary", "Runner"]

# Events worth a row in the store; per-step observations and decisions live in the trace only.
_STORED_KINDS = frozenset(EventKind) - {
    EventKind.OBSERVATION,
    EventKind.DECISION,
    EventKind.RISK_VERDICT,
    EventKind.STEP_COMPLETED,
    EventKind.LLM_CALL,  # the ledger keeps every call's figures; the trace keeps its text
}
# Events after which the trace is fsynced: the end of each step and anything about a halt.
_FLUSH_KINDS = frozenset(
    {
        EventKind.STEP_COMPLETED,
        EventKind.RUN_STARTED,
        EventKind.RUN_FINISHED,
        EventKind.HALT_TRIPPED,
        EventKind.HALT_ENFORCED,
        EventKind.HALT_RESUMED,
    }
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a finished run leaves behind, for the CLI to say."""

    run_id: str
    status: str
    steps: int
    trace_path: Path
    left_resting: tuple[Order, ...]


class Runner:
    """One guarded run with its console; use as ``async with Runner(settings) as r``."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        agent: Agent | None = None,
        exchange: Exchange | None = None,
        console: bool = True,
        llm_routes: list[Route] | None = None,
    ) -> None:
        """``llm_routes`` replaces the adapters the ``llm_*`` settings describe (tests)."""
        self.settings = settings
        self.clock = clock or WallClock()
        self.agent = agent or build_agent(settings)
        self.run_id = f"{self.clock.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.metrics = Metrics()
        self.journal = Journal(run_id=self.run_id)
        ensure_data_dir(settings)
        self.store = Store.open(settings.resolved_store_url)
        self.trace = TraceWriter(
            settings.traces_dir, self.run_id, self.clock, settings.secret_values()
        )
        self._redactor = Redactor(settings.secret_values())
        self.journal.subscribe(self._to_trace)
        self.journal.subscribe(self._to_store)
        self.halt = Halt(
            flag_path=settings.kill_switch_path,
            clock=self.clock,
            store=self.store,
            journal=self.journal,
            metrics=self.metrics,
        )
        self.resilience = build_resilience(settings, self.clock, self.metrics, self.journal)
        self.prices = build_price_book(settings)
        in_process = exchange is None and not settings.resolved_exchange_url
        # The in-process paper exchange, kept so tests and drills can inject faults into it.
        self.paper: PaperExchangeApp | None = (
            build_paper_app(settings, self.clock) if in_process else None
        )
        self.exchange = exchange or build_exchange(
            settings,
            self.clock,
            self.metrics,
            self.halt.check,
            resilience=self.resilience,
            paper=self.paper,
        )
        self.halt.set_canceller(self.exchange.cancel_all)
        self.loop = Loop(
            run_id=self.run_id,
            agent=self.agent,
            exchange=self.exchange,
            halt=self.halt,
            journal=self.journal,
            clock=self.clock,
            limits=risk_limits(settings),
            config=LoopConfig(
                currency=settings.currency,
                interval_seconds=settings.loop_interval_seconds,
                step_timeout_seconds=settings.step_timeout_seconds,
                dry_run=settings.dry_run,
                halt_poll_seconds=settings.halt_poll_seconds,
                instruments_refresh_seconds=settings.instruments_refresh_seconds,
                ticker_concurrency=settings.ticker_concurrency,
                drift_dust_coin=settings.position_drift_dust_coin,
                drift_observations=settings.position_drift_observations,
            ),
            metrics=self.metrics,
        )
        self.health = build_health_checker(
            settings,
            clock=self.clock,
            exchange=self.exchange,
            store=self.store,
            observe=self.loop.build_observation,
            prices=self.prices,
        )
        self.guard = HealthGuard(
            checker=self.health,
            halt=self.halt,
            clock=self.clock,
            recheck_interval=settings.health_recheck_interval_seconds,
            auto_kill=settings.auto_kill_on_health_fail,
        )
        self.loop.health = self.guard
        self.budget = build_budget(
            settings,
            self.store,
            self.clock,
            self.agent.name,
            on_alert=self._budget_alert,
            on_exhausted=self._cost_cap,
            metrics=self.metrics,
        )
        self.approvals = Approvals(
            self.store, clock=self.clock, agent=self.agent.name, on_request=self._approval_asked
        )
        self.llm: FallbackChain | None = None
        if settings.llm_provider != "none":
            self.llm = FallbackChain(
                llm_routes if llm_routes is not None else build_llm_routes(settings),
                resilience=self.resilience,
                prices=self.prices,
                clock=self.clock,
                budget=self.budget,
                escalations=self.approvals,
                timeout=settings.llm_timeout_seconds,
                deadline=settings.llm_deadline_seconds,
                max_tokens=settings.llm_max_tokens,
                cache_ttl=settings.llm_cache_ttl_seconds,
                escalation_ttl=settings.llm_escalation_ttl_seconds,
                metrics=self.metrics,
                journal=self.journal,
                run_id=self.run_id,
            )
        self.loop.llm = self.llm
        self._console_enabled = console
        self._server: ConsoleServer | None = None
        self.console_url: str | None = None
        self._closed = False

    # -- sinks --------------------------------------------------------------------------
    def _to_trace(self, event: Event) -> None:
        self.trace.write(event.kind.value, event.payload)
        if event.kind in _FLUSH_KINDS:
            self.trace.flush()

    def _to_store(self, event: Event) -> None:
        if event.kind in _STORED_KINDS:
            self.store.events.append(
                event.kind.value,
                self._redactor.redact(dict(event.payload)),
                at=self.clock.now(),
                run_id=event.run_id,
            )

    # -- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> Runner:
        if self._console_enabled:
            await self._start_console()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _start_console(self) -> None:
        s = self.settings
        token = (
            s.console_token.get_secret_value()
            if s.console_token
            else ensure_console_token(s.data_dir / "console_token")
        )
        app = create_console_app(
            status=lambda: self.loop.status,
            halt=self.halt,
            metrics=self.metrics,
            token=token,
            refresh_seconds=s.console_refresh_seconds,
            redactor=self._redactor,
            breakers=self._breakers,
            health=self.health,
            health_paused=lambda: self.guard.paused,
            budget=self.budget.usage_today,
            approvals=self.approvals,
            allowed_hosts=[s.console_host, *s.console_allowed_hosts],
        )
        self._server = ConsoleServer(app, host=s.console_host, port=s.console_port)
        self._server.start()
        self.console_url = f"{self._server.base_url}/?token={token}"

    async def _cost_cap(self, reason: str) -> None:
        """A daily or USD budget is used up: the one halt path, reason cost_cap."""
        await self.halt.trip("cost_cap", who="budget", detail={"reason": reason})

    def _approval_asked(self, record: ApprovalRecord) -> None:
        self.journal.emit(
            EventKind.APPROVAL_REQUESTED,
            {"approval_id": record.id, "kind": record.kind, "reason": record.reason},
        )

    def _budget_alert(self, alert: BudgetAlert) -> None:
        self.journal.emit(EventKind.BUDGET_ALERT, asdict(alert))

    def _breakers(self) -> list[dict[str, Any]]:
        registry = self.resilience.breakers
        return registry.snapshot() if registry is not None else []

    async def run(
        self,
        *,
        max_steps: int | None = None,
        duration_seconds: float | None = None,
        stop: asyncio.Event | None = None,
    ) -> RunSummary:
        """Run the loop until a bound or ``stop``; a run stopped early is "interrupted".

        ``stop`` ends the run after the step in progress, so no send is cut off halfway; a
        cancelled task (the last resort) is recorded as interrupted too and re-raised.
        """
        s = self.settings
        self.store.runs.start(
            run_id=self.run_id,
            agent_name=self.agent.name,
            agent_version=self.agent.version,
            mode=s.mode,
            config_hash=s.config_hash(),
            started_at=self.clock.now(),
        )
        self.journal.emit(
            EventKind.RUN_STARTED,
            {
                "config_hash": s.config_hash(),
                "agent": self.agent.name,
                "agent_version": self.agent.version,
                "mode": s.mode,
                "dry_run": s.dry_run,
                "settings": s.public_dict(),
            },
        )
        status = "failed"
        try:
            if self.llm is not None and getattr(self.agent, "uses_llm", False):
                await self._refuse_without_budget()
            if s.health_check_on_startup:
                await self.guard.startup()  # FAIL raises HealthAborted: no step is run
            await self.loop.run(
                max_steps=max_steps or s.max_steps,
                duration_seconds=duration_seconds,
                stop=stop,
            )
            if stop is not None and stop.is_set():
                status = "interrupted"
            else:
                status = "halted" if self.halt.active() else "completed"
        except asyncio.CancelledError:
            status = "interrupted"
            raise
        finally:
            steps = self.loop.status.last_step
            self.store.runs.finish(
                self.run_id, status=status, steps=steps, ended_at=self.clock.now()
            )
            self.journal.emit(EventKind.RUN_FINISHED, {"status": status, "steps": steps})
        return RunSummary(self.run_id, status, steps, self.trace.path, await self.resting())

    async def _refuse_without_budget(self) -> None:
        """An agent that needs the LLM does not start a run its budget cannot pay for.

        An agent says it needs one with ``uses_llm = True`` (optional, so agents that never
        ask ``ctx.llm``, like the rule-based seller, keep running on a spent budget).
        """
        usage = await asyncio.to_thread(self.budget.usage_today)
        if usage["budget_available"]:
            return
        used, limit = usage["tokens_used_today"], usage["daily_budget"]
        if limit is not None and used >= limit:
            figures = f"{used:,} of {limit:,} tokens used today"
        else:
            figures = f"${usage['usd_used_today']:,.2f} used today"
        message = (
            f"Run refused: budget_exhausted ({figures}; resets {usage['reset_date']} 00:00 UTC). "
            "Fix: wait for the reset or raise BASTION_DAILY_TOKEN_BUDGET / "
            "BASTION_DAILY_USD_BUDGET."
        )
        self.journal.emit(EventKind.RUN_REFUSED, {"reason": "budget_exhausted", **usage})
        raise BudgetExhausted(
            message,
            limit=limit,
            observed=used,
            scope=f"agent:{self.agent.name}",
            unit="tokens",
            need=0,
            remaining=usage["tokens_remaining"] or 0,
            exhausted=True,
        )

    async def resting(self) -> tuple[Order, ...]:
        """Orders still on the book, to tell the operator what a stop left behind."""
        with contextlib.suppress(BastionError):
            return tuple(await self.exchange.get_open_orders(self.settings.currency))
        return ()

    async def aclose(self) -> None:
        """Stop the console, close the exchange, trace and store; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            await self._server.stop()
        await self.exchange.close()
        if self.llm is not None:
            await self.llm.aclose()
        self.trace.close()
        self.store.close()

    def describe(self) -> dict[str, Any]:
        """Where things are, for the start-up banner."""
        return {
            "run_id": self.run_id,
            "console_url": self.console_url,
            "trace_path": str(self.trace.path),
            "store": make_url(self.settings.resolved_store_url).render_as_string(
                hide_password=True
            ),
            "kill_switch": str(self.settings.kill_switch_path),
            "exchange": self.settings.resolved_exchange_url or "in-process paper exchange",
        }
