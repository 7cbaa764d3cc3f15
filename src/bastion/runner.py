"""The composition root of ``bastion run``: build every part from Settings, run, shut down.

Everything else receives its collaborators through its constructor; this is the one place that
decides which concrete ones (SQLite or PostgreSQL, in-process paper exchange or a Deribit URL,
the wall clock or a simulated one). Tests and benchmarks build a :class:`Runner` with a
``SimClock`` and a scripted agent; ``bastion run`` builds it with the defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from structlog.contextvars import bound_contextvars

from bastion.agent import Agent
from bastion.api.app import create_app as create_console_app
from bastion.api.server import ConsoleServer
from bastion.api.token import ensure_console_token
from bastion.build import (
    build_agent,
    build_alert_monitor,
    build_approvals,
    build_budget,
    build_exchange,
    build_halt,
    build_halt_limits,
    build_health_checker,
    build_journal,
    build_ledger_pruning,
    build_llm_routes,
    build_loop_config,
    build_notifier,
    build_observer,
    build_operator,
    build_paper_app,
    build_price_book,
    build_redactor,
    build_resilience,
    build_status_service,
    build_toolbox,
    risk_limits,
)
from bastion.clock import Clock, WallClock
from bastion.config import Settings, ensure_data_dir
from bastion.errors import BastionError
from bastion.events import Event, EventKind
from bastion.exchange.base import Exchange
from bastion.guard.approvals import ApprovalRecord
from bastion.guard.budget import BudgetAlert
from bastion.guard.health_guard import HealthGuard
from bastion.llm.chain import FallbackChain, Route
from bastion.market import Order
from bastion.runtime.checkpoint import CheckpointFile
from bastion.runtime.equity_sink import EquitySink
from bastion.runtime.lock import Holder, RunLock
from bastion.runtime.loop import Loop
from bastion.sensitive import mask_url
from bastion.simulators.paper import PaperExchangeApp
from bastion.store import RunRecord, Store
from bastion.store.task_sink import TaskSink
from bastion.telemetry.metrics import Metrics
from bastion.telemetry.tracing import Tracing
from bastion.trace.record import TraceWriter
from bastion.trace.sink import TraceSink

__all__ = ["RunSummary", "Runner"]


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a finished run leaves behind, for the CLI to say."""

    run_id: str
    status: str
    steps: int
    trace_path: Path
    left_resting: tuple[Order, ...]
    steps_ok: int = 0
    steps_failed: int = 0
    steps_halted: int = 0
    last_failure: str = ""
    """The detail of the last failed or timed-out step, for the closing line."""


class _StepTally:
    """Counts steps by outcome as they complete, and records each in the run's row."""

    def __init__(self, store: Store, clock: Clock, run_id: str) -> None:
        self._store = store
        self._clock = clock
        self._run_id = run_id
        self.steps = 0
        self.by_status: dict[str, int] = {}
        self.last_failure = ""
        self.last_step_at: str | None = None

    def __call__(self, event: Event) -> None:
        if event.kind is not EventKind.STEP_COMPLETED:
            return
        status = str(event.payload.get("status"))
        self.steps = int(event.payload.get("step", self.steps + 1))
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status in ("failed", "timeout"):
            self.last_failure = str(event.payload.get("detail", ""))
        now = self._clock.now()
        self.last_step_at = now.isoformat()
        self._store.runs.record_step(self._run_id, self.steps, at=now)

    def counts(self) -> dict[str, int]:
        """Steps by outcome, as the run's row and the closing line report them."""
        get = self.by_status.get
        return {
            "steps_ok": get("ok", 0),
            "steps_failed": get("failed", 0) + get("timeout", 0),
            "steps_halted": get("halted", 0),
        }

    @property
    def succeeded(self) -> int:
        """Steps that did what they should: traded (ok) or, halted, only reconciled."""
        return self.by_status.get("ok", 0) + self.by_status.get("halted", 0)


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
        exclusive: bool = True,
    ) -> None:
        """``llm_routes`` replaces the adapters the ``llm_*`` settings describe (tests).

        ``exclusive`` takes the data directory's run lock (one trading run per directory) and
        records a crashed predecessor; ``bastion smoke``'s dry run, which never sends an order,
        runs beside a live run without it.
        """
        self.settings = settings
        self.clock = clock or WallClock()
        self.agent = agent or build_agent(settings)
        self.run_id = f"{self.clock.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        ensure_data_dir(settings)
        self.lock: RunLock | None = RunLock(settings.data_dir) if exclusive else None
        previous = None
        if self.lock is not None:
            previous = self.lock.acquire(
                Holder(
                    pid=os.getpid(),
                    run_id=self.run_id,
                    since=self.clock.now().isoformat(),
                    host=socket.gethostname(),
                )
            )
        try:
            self._wire(settings, exchange, llm_routes)
            self.crashed_run = self._record_crash(previous)
        except BaseException:
            self._abandon()
            raise
        self._console_enabled = console
        self._server: ConsoleServer | None = None
        self.console_url: str | None = None
        self._closed = False

    def _wire(
        self, settings: Settings, exchange: Exchange | None, llm_routes: list[Route] | None
    ) -> None:
        self.metrics = Metrics()
        # The OTEL_* variables: a bad one is a ConfigError before anything is opened.
        self.tracing = Tracing.from_env(secrets=settings.secret_values())
        self.store = Store.open(
            settings.resolved_store_url, synchronous_settle=settings.budget_synchronous_settle
        )
        self.trace = TraceWriter(
            settings.traces_dir, self.run_id, self.clock, settings.secret_values()
        )
        # The trace first: it is the audit record, fsynced before anything else hears of a step.
        self.journal = build_journal(
            settings, self.clock, store=self.store, run_id=self.run_id, also=TraceSink(self.trace)
        )
        self._redactor = build_redactor(settings)
        self.tally = _StepTally(self.store, self.clock, self.run_id)
        self.journal.subscribe(self.tally)
        # Task records, then the monitor that reads them and emits alert_firing/resolved.
        self.journal.subscribe(
            TaskSink(
                self.store.tasks,
                run_id=self.run_id,
                agent=self.agent.name,
                clock=self.clock,
                observe_cost=self.metrics.step_cost.observe,
            )
        )
        self.slo = build_alert_monitor(settings, self.store, self.journal, self.clock, self.run_id)
        self.journal.subscribe(self.slo)
        self.equity = EquitySink()  # the console's equity chart
        self.journal.subscribe(self.equity)
        self.halt = build_halt(
            settings, self.clock, store=self.store, journal=self.journal, metrics=self.metrics
        )
        self.resilience = build_resilience(
            settings, self.clock, self.metrics, self.journal, tracer=self.tracing.tracer
        )
        # Alerts out: webhooks hear of halts, breakers, budgets, approvals and evaluated alerts;
        # not from a smoke's dry run beside the live run (no lock), which would page twice.
        self.notifier = (
            build_notifier(
                settings,
                self.clock,
                resilience=self.resilience,
                metrics=self.metrics,
                run_id=self.run_id,
                agent=self.agent.name,
            )
            if self.lock is not None
            else None
        )
        if self.notifier is not None:
            self.journal.subscribe(self.notifier)
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
        self.observer = build_observer(settings, self.exchange, self.clock, self.agent)
        self.health = build_health_checker(
            settings,
            clock=self.clock,
            exchange=self.exchange,
            store=self.store,
            observe=self.observer.observe,
            prices=self.prices,
        )
        self.metrics.watch_health(self._health_ranks)
        self.guard = HealthGuard(
            checker=self.health,
            halt=self.halt,
            clock=self.clock,
            recheck_interval=settings.health_recheck_interval_seconds,
            auto_kill=settings.auto_kill_on_health_fail,
        )
        self.budget = build_budget(
            settings,
            self.store,
            self.clock,
            self.agent.name,
            on_alert=self._budget_alert,
            on_exhausted=self._cost_cap,
            metrics=self.metrics,
        )
        self.approvals = build_approvals(
            settings, self.store, self.clock, agent=self.agent.name, on_request=self._approval_asked
        )
        # Budget ledger retention: a pass at run start, then about daily at a step's end.
        self.ledger_pruning = build_ledger_pruning(settings, self.store, self.clock)
        if self.ledger_pruning is not None:
            self.journal.subscribe(self.ledger_pruning)
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
        # The operator agent (alerts in through the console): its LLM questions are admitted
        # by the same budget, through a chain of their own over the run's adapters. Not on the
        # run's journal: that journal is the agent's trace (replayed step by step) and its task
        # records (a step's LLM cost); an operator question asked mid-step would be counted as
        # the agent's. Its spend is still in the budget's ledger and the metrics, its answer in
        # the stored analysis.
        self.operator = (
            build_operator(
                settings,
                store=self.store,
                clock=self.clock,
                halt=self.halt,
                approvals=self.approvals,
                resilience=self.resilience,
                budget=self.budget,
                healthcheck=self.health.run_and_cache_healthcheck,
                llm_routes=list(self.llm.routes) if self.llm is not None else None,
                metrics=self.metrics,
            )
            if settings.operator_enabled
            else None
        )
        self.tools = build_toolbox(
            settings,
            exchange=self.exchange,
            resilience=self.resilience,
            journal=self.journal,
            agent=self.agent,
        )
        self.loop = Loop(
            run_id=self.run_id,
            agent=self.agent,
            exchange=self.exchange,
            halt=self.halt,
            journal=self.journal,
            clock=self.clock,
            limits=risk_limits(settings),
            halt_limits=build_halt_limits(settings, self.store),
            config=build_loop_config(settings),
            metrics=self.metrics,
            tracer=self.tracing.tracer,
            health=self.guard,
            llm=self.llm,
            observer=self.observer,
            tools=self.tools,
            approvals=self.approvals,
            checkpoints=CheckpointFile(settings.data_dir) if self.lock is not None else None,
        )
        self.status = build_status_service(
            settings,
            self.clock,
            halt=self.halt,
            store=self.store,
            budget=self.budget,
            breakers=self._breakers,
            notifications=self.notifier.status if self.notifier is not None else None,
        )

    def _record_crash(self, previous: Holder | None) -> RunRecord | None:
        """The last run on this directory died holding the lock: record it as crashed."""
        if previous is None:
            return None
        return self.store.runs.mark_crashed(previous.run_id, detected_at=self.clock.now())

    def _abandon(self) -> None:
        """A start that failed half-way: close what was opened, give the lock back untouched."""
        for closing in ("trace", "store"):
            part = getattr(self, closing, None)
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()
        if self.lock is not None:
            self.lock.abandon()

    def _announce_crash(self) -> None:
        crashed = self.crashed_run
        if crashed is None:
            return
        self.journal.emit(
            EventKind.RUN_CRASHED,
            {
                "crashed_run_id": crashed.run_id,
                "steps": crashed.steps,
                "last_step_at": (crashed.detail or {}).get("last_step_at"),
            },
        )

    # -- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> Runner:
        if self._console_enabled:
            try:
                await self._start_console()
            except BaseException:
                await self.aclose()  # a busy port: nothing was run, nothing stays locked
                raise
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
            status=lambda: self.status.report(self.loop.status.to_dict()),
            halt=self.halt,
            metrics=self.metrics,
            token=token,
            refresh_seconds=s.console_refresh_seconds,
            redactor=self._redactor,
            health=self.health,
            health_paused=lambda: self.guard.paused,
            budget=self.budget.usage_today,
            approvals=self.approvals,
            slo=self.slo.report,
            allowed_hosts=[s.console_host, *s.console_allowed_hosts],
            named_tokens={n: t.get_secret_value() for n, t in s.console_named_tokens.items()},
            equity=self.equity.series,
            traces_dir=s.traces_dir,
            operator=self.operator,
            operator_webhook_secret=(
                s.operator_webhook_secret.get_secret_value() if s.operator_webhook_secret else None
            ),
        )
        self._server = ConsoleServer(app, host=s.console_host, port=s.console_port)
        self._server.start()
        if self.operator is not None:
            self.operator.start()
        self.console_url = f"{self._server.base_url}/?token={token}"
        if self.lock is not None:
            self.lock.update(console_host=self._server.host, console_port=self._server.port)

    def _cost_cap(self, reason: str) -> None:
        """A daily or USD budget is used up: noted in the loop's ledger, where the cost-cap
        trigger trips the halt (reason cost_cap) at the loop's next limits check."""
        self.loop.ledger.record_budget_exhausted(reason)

    def _approval_asked(self, record: ApprovalRecord) -> None:
        self.journal.emit(
            EventKind.APPROVAL_REQUESTED,
            {"approval_id": record.id, "kind": record.kind, "reason": record.reason},
        )

    def _budget_alert(self, alert: BudgetAlert) -> None:
        self.journal.emit(EventKind.BUDGET_ALERT, asdict(alert))

    def _health_ranks(self) -> list[tuple[str, int]]:
        """Each check's latest status for ``bastion_health_status`` (0 OK, 1 WARN, 2 FAIL)."""
        return [(c.name, c.status.rank) for c in self.health.get_cached_health_status().details]

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
        cancelled task (the last resort) is recorded as interrupted too and re-raised. The run
        is one ``bastion.run`` span, and its log lines carry its ``run_id``.
        """
        attributes = {"bastion.run_id": self.run_id, "bastion.agent": self.agent.name}
        with (
            self.tracing.tracer.start_as_current_span("bastion.run", attributes=attributes),
            bound_contextvars(run_id=self.run_id),
        ):
            return await self._run(max_steps, duration_seconds, stop)

    async def _run(
        self, max_steps: int | None, duration_seconds: float | None, stop: asyncio.Event | None
    ) -> RunSummary:
        s = self.settings
        if self.notifier is not None:
            self.notifier.start()
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
                "max_steps": max_steps or s.max_steps,
            },
        )
        self._announce_crash()
        if self.ledger_pruning is not None:
            self.ledger_pruning.start()
        status = "failed"
        try:
            if self.llm is not None and getattr(self.agent, "uses_llm", False):
                await self._refuse_without_budget()
            if s.health_check_on_startup:
                await self.guard.startup()  # FAIL raises HealthAborted: no step is run
            if self.crashed_run is not None and self.loop.checkpoints is not None:
                await self.loop.recover(self.crashed_run.run_id)
            await self.loop.run(
                max_steps=max_steps or s.max_steps,
                duration_seconds=duration_seconds,
                stop=stop,
            )
            status = self._final_status(stop)
        except asyncio.CancelledError:
            status = "interrupted"
            raise
        finally:
            with contextlib.suppress(Exception):  # recorded by the loop; expiry is the backstop
                await self.loop.withdraw_approvals(f"run {self.run_id} ended ({status})")
            if self.ledger_pruning is not None:
                await self.ledger_pruning.stop()
            await self.slo.idle()
            tally = self.tally
            counts = {
                "steps_ok": tally.by_status.get("ok", 0),
                "steps_failed": tally.by_status.get("failed", 0)
                + tally.by_status.get("timeout", 0),
                "steps_halted": tally.by_status.get("halted", 0),
            }
            self.store.runs.finish(
                self.run_id,
                status=status,
                steps=tally.steps,
                detail=counts,
                ended_at=self.clock.now(),
            )
            self.journal.emit(
                EventKind.RUN_FINISHED, {"status": status, "steps": tally.steps, **counts}
            )
        return RunSummary(
            self.run_id,
            status,
            tally.steps,
            self.trace.path,
            await self.resting(),
            last_failure=tally.last_failure,
            **counts,
        )

    def _final_status(self, stop: asyncio.Event | None) -> str:
        """interrupted, failed (steps ran and none succeeded), halted or completed."""
        if stop is not None and stop.is_set():
            return "interrupted"
        if self.tally.steps > 0 and self.tally.succeeded == 0:
            return "failed"
        return "halted" if self.halt.active() else "completed"

    async def _refuse_without_budget(self) -> None:
        """An agent that needs the LLM does not start a run its budget cannot pay for.

        An agent says it needs one with ``uses_llm = True`` (optional, so agents that never
        ask ``ctx.llm``, like the rule-based seller, keep running on a spent budget).
        """
        usage = await asyncio.to_thread(self.budget.usage_today)
        refusal = usage.refusal()
        if refusal is None:
            return
        self.journal.emit(EventKind.RUN_REFUSED, {"reason": "budget_exhausted", **usage.to_dict()})
        raise refusal

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
        try:
            notifier = getattr(self, "notifier", None)
            if notifier is not None:  # the run's last alerts, within a bounded wait
                await notifier.aclose(self.settings.alert_flush_seconds)
            if self._server is not None:
                await self._server.stop()
            if self.operator is not None:
                with contextlib.suppress(Exception):
                    await self.operator.aclose()
            await self.exchange.close()
            if self.llm is not None:
                await self.llm.aclose()
            await self.tools.aclose()
            budget = getattr(self, "budget", None)
            if budget is not None:  # its unused lease goes back now, not at the TTL
                with contextlib.suppress(Exception):
                    await budget.aclose()
            self.trace.close()
            self.store.close()
        finally:
            await asyncio.to_thread(self.tracing.shutdown)  # flushes the spans still queued
            if self.lock is not None:
                self.lock.release()

    def describe(self) -> dict[str, Any]:
        """Where things are, for the start-up banner."""
        # A generated token is printed in the URL, the way Jupyter does, so the person who
        # started the run can open the console; a token from the settings is the operator's
        # secret, which the terminal (a journal, a CI log) must not carry: it is masked.
        shown = self.console_url
        if shown is not None and self.settings.console_token is not None:
            shown = mask_url(shown)
        return {
            "run_id": self.run_id,
            "console_url": shown,
            "trace_path": str(self.trace.path),
            "store": mask_url(self.settings.resolved_store_url),
            "kill_switch": str(self.settings.kill_switch_path),
            "exchange": mask_url(self.settings.resolved_exchange_url or "")
            or "in-process paper exchange",
        }
