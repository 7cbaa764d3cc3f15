"""The built-in System Health checks, registered on a :class:`~bastion.guard.health.HealthChecker`.

==================  ===========  ==============================================================
check               lightweight  what it proves
==================  ===========  ==============================================================
``config``          yes          live/testnet keys are real; limits are sane; model versions
                                 pinned (no LLM is configured yet: OK, "no LLM configured")
``exchange_public`` yes          the venue answers: ``get_time`` and the currency's index
``exchange_private`` no          our keys authenticate and the account summary reads
``llm``             yes          the provider and pinned models are set and every model has a
                                 price (an unknown one is WARN: its cost is a guess); without
                                 an LLM: WARN "LLM keys missing" in testnet/live, OK in paper.
                                 It sends no request: a ping would spend tokens.
``state_builder``   no           an Observation can be built (the injected ``observe``)
``store``           yes          the store takes a write and reads it back (one probe row)
``disk``            yes          free space in the data directory (WARN / FAIL thresholds)
``clock_skew``      yes          exchange time against ours (WARN / FAIL thresholds)
==================  ===========  ==============================================================

Exchange failures are raised as they come (classified :class:`~bastion.errors.BastionError`) and
described by the checker; the state builder prefixes its own (``state builder failed: Deribit
public API FORBIDDEN (HTTP 403)``). Heavy checks are left out of the runtime's periodic
re-checks: they authenticate or fetch a whole observation.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bastion.clock import Clock
from bastion.config import Settings
from bastion.errors import BastionError, ErrorCode, code_for_exception
from bastion.exchange.base import Exchange
from bastion.guard.health import (
    CheckFailed,
    CheckResult,
    HealthChecker,
    HealthStatus,
    describe_error,
)
from bastion.llm.pricing import PriceBook
from bastion.store import Store

__all__ = ["builtin_checks", "config_problems"]

PAPER_CLIENT_ID = "bastion-paper"
PAPER_CLIENT_SECRET = "paper-secret"  # noqa: S105  the paper placeholder, refused in live

_GIB = 1 << 30
_MIB = 1 << 20


def config_problems(settings: Settings) -> list[str]:
    """What is wrong with ``settings`` for its mode, in words an operator can act on (pure).

    Settings validate field by field at load; this looks at what only makes sense together or
    only matters in testnet and live.
    """
    problems: list[str] = []
    if settings.mode != "paper":
        client_id = settings.exchange_client_id.strip()
        secret = settings.exchange_client_secret.get_secret_value()
        if not client_id or client_id == PAPER_CLIENT_ID:
            problems.append(f"exchange_client_id missing for {settings.mode}")
        if not secret.strip() or secret == PAPER_CLIENT_SECRET:
            problems.append(f"exchange_client_secret missing for {settings.mode}")
    for name in ("risk_max_order_amount", "risk_max_order_notional_usd", "risk_max_position"):
        if not getattr(settings, name) > 0:
            problems.append(f"{name} must be > 0")
    if settings.risk_max_order_amount > settings.risk_max_position:
        problems.append("risk_max_order_amount above risk_max_position")
    if not settings.risk_allowed_instruments:
        problems.append("risk_allowed_instruments is empty")
    if settings.seller_min_days >= settings.seller_max_days:
        problems.append("seller_min_days not below seller_max_days")
    if settings.seller_order_amount > settings.risk_max_order_amount:
        problems.append("seller_order_amount above risk_max_order_amount")
    return problems


def _size(n: float) -> str:
    return f"{n / _GIB:.1f} GiB" if n >= _GIB else f"{n / _MIB:.0f} MiB"


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (the data dir may not be created yet)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


class _Builtin:
    """The built-in checks over one set of collaborators; each method is one check."""

    def __init__(
        self,
        checker: HealthChecker,
        *,
        settings: Settings,
        exchange: Exchange,
        store: Store,
        data_dir: Path,
        observe: Callable[[], Awaitable[object]] | None,
        disk_warn_bytes: int,
        disk_fail_bytes: int,
        skew_warn_seconds: float,
        skew_fail_seconds: float,
        prices: PriceBook | None,
    ) -> None:
        self.clock: Clock = checker.clock
        self.prices = prices
        self.settings = settings
        self.currency = settings.currency
        self.exchange = exchange
        self.store = store
        self.data_dir = data_dir
        self.observe = observe or self._fetch_observation_inputs
        self.disk_warn_bytes = disk_warn_bytes
        self.disk_fail_bytes = disk_fail_bytes
        self.skew_warn_seconds = skew_warn_seconds
        self.skew_fail_seconds = skew_fail_seconds

    async def config(self) -> CheckResult | tuple[HealthStatus, str]:
        problems = config_problems(self.settings)
        if problems:
            return CheckResult("config", HealthStatus.FAIL, "; ".join(problems), "config")
        keys = "paper credentials" if self.settings.mode == "paper" else "exchange keys present"
        llm = (
            f"LLM {self.settings.llm_provider} pinned to {self.settings.llm_model}"
            if self.settings.llm_provider != "none"
            else "no LLM configured"
        )
        return HealthStatus.OK, f"{keys}; limits sane; {llm}"

    async def exchange_public(self) -> tuple[HealthStatus, str]:
        await self.exchange.get_time()
        index = await self.exchange.get_index_price(self.currency)
        return HealthStatus.OK, f"time and {self.currency} index ({index:,.2f}) answered"

    async def exchange_private(self) -> tuple[HealthStatus, str]:
        account = await self.exchange.get_account_summary(self.currency)
        return HealthStatus.OK, f"authenticated; equity {account.equity:g} {self.currency}"

    async def llm(self) -> CheckResult | tuple[HealthStatus, str]:
        settings = self.settings
        if settings.llm_provider == "none":
            if settings.mode in ("testnet", "live"):
                return CheckResult("llm", HealthStatus.WARN, "LLM keys missing", "llm_keys_missing")
            return HealthStatus.OK, "no LLM configured"
        models = settings.llm_models
        prices = self.prices
        unpriced = sorted(
            {m for m in models if prices is None or prices.resolve(m) is None}
            | (prices.unknown_models if prices is not None else frozenset())
        )
        if unpriced:
            default_in, default_out = settings.llm_default_price
            return CheckResult(
                "llm",
                HealthStatus.WARN,
                f"no price for {', '.join(unpriced)}: costed at the default ${default_in:g} / "
                f"${default_out:g} per million tokens; set BASTION_LLM_PRICES",
                "llm_price_unknown",
            )
        extra = len(models) - 1
        chain = f" (+{extra} fallback{'s' if extra > 1 else ''})" if extra else ""
        return HealthStatus.OK, f"{settings.llm_provider} {models[0]}{chain}; every model priced"

    async def _fetch_observation_inputs(self) -> object:
        return await asyncio.gather(
            self.exchange.get_instruments(self.currency),
            self.exchange.get_positions(self.currency),
            self.exchange.get_open_orders(self.currency),
        )

    async def state_builder(self) -> tuple[HealthStatus, str]:
        try:
            await self.observe()
        except BastionError as exc:
            raise CheckFailed(
                f"state builder failed: {describe_error(exc)}", code=exc.code
            ) from exc
        except Exception as exc:
            raise CheckFailed(
                f"state builder failed: {type(exc).__name__}: {exc}",
                code=code_for_exception(type(exc)),
            ) from exc
        return HealthStatus.OK, "observation built"

    async def store_probe(self) -> tuple[HealthStatus, str]:
        token = uuid.uuid4().hex
        try:
            ok = await asyncio.to_thread(self.store.health.probe, token, at=self.clock.now())
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise CheckFailed(
                f"store write failed: {type(exc).__name__}: {first}", code=ErrorCode.UNKNOWN
            ) from exc
        if not ok:
            raise CheckFailed("store read back a different probe value", code=ErrorCode.UNKNOWN)
        return HealthStatus.OK, f"write and read back ({self.store.dialect})"

    async def disk(self) -> CheckResult:
        free = shutil.disk_usage(_existing(self.data_dir)).free
        detail = f"{_size(free)} free in {self.data_dir}"
        for status, below in (
            (HealthStatus.FAIL, self.disk_fail_bytes),
            (HealthStatus.WARN, self.disk_warn_bytes),
        ):
            if free < below:
                return CheckResult("disk", status, f"{detail} (below {_size(below)})", "disk_space")
        return CheckResult("disk", HealthStatus.OK, detail)

    async def clock_skew(self) -> CheckResult:
        before = self.clock.time()
        exchange_ms = await self.exchange.get_time()
        skew = exchange_ms / 1000 - (before + self.clock.time()) / 2
        detail = f"exchange clock {skew:+.3f} s from ours"
        for status, above in (
            (HealthStatus.FAIL, self.skew_fail_seconds),
            (HealthStatus.WARN, self.skew_warn_seconds),
        ):
            if abs(skew) > above:
                return CheckResult(
                    "clock_skew", status, f"{detail} ({status} above {above:g} s)", "clock_skew"
                )
        return CheckResult("clock_skew", HealthStatus.OK, detail)


def builtin_checks(
    checker: HealthChecker,
    *,
    settings: Settings,
    exchange: Exchange,
    store: Store,
    data_dir: Path,
    observe: Callable[[], Awaitable[object]] | None = None,
    disk_warn_bytes: int = 1 << 30,
    disk_fail_bytes: int = 100 << 20,
    skew_warn_seconds: float = 1.0,
    skew_fail_seconds: float = 5.0,
    prices: PriceBook | None = None,
) -> None:
    """Register ``config``, ``exchange_public``, ``exchange_private``, ``llm``,
    ``state_builder``, ``store``, ``disk`` and ``clock_skew``.

    ``prices`` is the runtime's price book: the ``llm`` check WARNs on every model it had to
    price at the default, pinned or seen answering. ``observe`` builds one Observation
    without side effects (``Observer.observe`` in :mod:`bastion.runtime.observe`); without it
    the state builder fetches what an observation is made of (instruments, positions, orders).
    """
    checks = _Builtin(
        checker,
        settings=settings,
        exchange=exchange,
        store=store,
        data_dir=data_dir,
        observe=observe,
        disk_warn_bytes=disk_warn_bytes,
        disk_fail_bytes=disk_fail_bytes,
        skew_warn_seconds=skew_warn_seconds,
        skew_fail_seconds=skew_fail_seconds,
        prices=prices,
    )
    venue = f"{exchange.name[:1].upper()}{exchange.name[1:]}"
    checker.register("config", checks.config, title="Config")
    checker.register("exchange_public", checks.exchange_public, title=f"{venue} public")
    checker.register(
        "exchange_private", checks.exchange_private, lightweight=False, title=f"{venue} private"
    )
    checker.register("llm", checks.llm, title="LLM")
    checker.register(
        "state_builder", checks.state_builder, lightweight=False, title="State builder"
    )
    checker.register("store", checks.store_probe, title="Store")
    checker.register("disk", checks.disk, title="Disk")
    checker.register("clock_skew", checks.clock_skew, title="Clock skew")
