"""System Health: concurrent bounded checks, classified details, severity, cache and history."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bastion.clock import SimClock
from bastion.config import Settings
from bastion.errors import ErrorCode, ExchangeError, classify
from bastion.exchange.deribit import DeribitClient
from bastion.guard.health import (
    CachedHealthStatus,
    CheckResult,
    HealthChecker,
    HealthReport,
    HealthStatus,
    describe_error,
    summarize,
    worst,
)
from bastion.guard.health_checks import builtin_checks, config_problems
from bastion.llm.pricing import PriceBook
from bastion.resilience import Resilience, set_testing
from bastion.simulators.paper import PaperExchangeApp, create_app
from bastion.store import Store

OK, WARN, FAIL = HealthStatus.OK, HealthStatus.WARN, HealthStatus.FAIL
START = 1_800_000_000.0


def ok(detail: str = "fine") -> Any:
    async def check() -> tuple[HealthStatus, str]:
        return OK, detail

    return check


def returns(status: HealthStatus, detail: str, code: str | None = None) -> Any:
    async def check() -> CheckResult:
        return CheckResult("ignored", status, detail, code)

    return check


def raises(exc: Exception) -> Any:
    async def check() -> tuple[HealthStatus, str]:
        raise exc

    return check


def hangs(never: asyncio.Event) -> Any:
    async def check() -> tuple[HealthStatus, str]:
        await never.wait()
        return OK, "unreachable"

    return check


def checker(environment: str = "paper", **kwargs: Any) -> HealthChecker:
    return HealthChecker(clock=SimClock(start=START), environment=environment, **kwargs)


@pytest.fixture(autouse=True)
def _one_attempt_per_call() -> Iterator[None]:
    """Exchange calls fail on their first attempt, so fault tests are fast and exact."""
    set_testing(True, attempts=1)
    yield
    set_testing(False)


@pytest.fixture(autouse=True)
def _no_bastion_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("BASTION_"):
            monkeypatch.delenv(key)


@pytest.fixture
def clock() -> SimClock:
    return SimClock(start=START)


@pytest.fixture
def paper(clock: SimClock) -> Iterator[PaperExchangeApp]:
    app = create_app(clock=clock, seed=1)
    yield app
    app.faults.clear()  # releases hanging requests


def _client(paper: PaperExchangeApp, clock: SimClock, timeout: float = 10.0) -> DeribitClient:
    return DeribitClient(
        base_url="http://paper",
        client_id="bastion-paper",
        client_secret=SecretStr("paper-secret"),
        clock=clock,
        timeout=timeout,
        transport=httpx.ASGITransport(app=paper),
        resilience=Resilience(clock=clock, breakers=False),
    )


@pytest.fixture
async def client(paper: PaperExchangeApp, clock: SimClock) -> AsyncIterator[DeribitClient]:
    made = _client(paper, clock, timeout=0.3)
    yield made
    await made.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'bastion.db'}") as opened:
        yield opened


@dataclass
class Rig:
    """The paper exchange, a client on it, a store and a data dir: what built-in checks need."""

    paper: PaperExchangeApp
    clock: SimClock
    client: DeribitClient
    store: Store
    tmp_path: Path

    def full(
        self,
        environment: str,
        *,
        clock: SimClock | None = None,
        llm: dict[str, Any] | None = None,
        prices: PriceBook | None = None,
        **kwargs: Any,
    ) -> HealthChecker:
        """The built-in checks, disk thresholds pinned so the box's free space does not decide
        the outcome unless a test sets them."""
        mode = environment if environment in ("paper", "testnet", "live") else "paper"
        keys: dict[str, Any] = {}
        if mode != "paper":
            keys = {"exchange_client_id": "k", "exchange_client_secret": "s"}
        data_dir = kwargs.pop("data_dir", self.tmp_path / "data")
        limits = {
            "disk_warn_bytes": kwargs.pop("disk_warn_bytes", 1),
            "disk_fail_bytes": kwargs.pop("disk_fail_bytes", 0),
        }
        made = HealthChecker(
            clock=clock or self.clock, environment=environment, check_timeout=2.0, **kwargs
        )
        builtin_checks(
            made,
            settings=Settings(data_dir=data_dir, mode=mode, **keys, **(llm or {})),
            exchange=self.client,
            store=self.store,
            data_dir=data_dir,
            prices=prices,
            **limits,
        )
        return made


@pytest.fixture
def rig(
    paper: PaperExchangeApp, clock: SimClock, client: DeribitClient, store: Store, tmp_path: Path
) -> Rig:
    return Rig(paper, clock, client, store, tmp_path)


# -- aggregation and summary ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [((), OK), ((OK, OK), OK), ((OK, WARN), WARN), ((WARN, FAIL, OK), FAIL), ((FAIL,), FAIL)],
)
def test_worst_status_wins(statuses: tuple[HealthStatus, ...], expected: HealthStatus) -> None:
    """The overall status is the worst of the checks (OK when there are none)."""
    assert worst(statuses) is expected


async def test_overall_is_the_worst_check() -> None:
    """A run with OK, WARN and FAIL checks is FAIL and lists every check in order."""
    made = checker()
    made.register("a", ok())
    made.register("b", returns(WARN, "slow"))
    made.register("c", returns(FAIL, "broken"))
    report = await made.run()
    assert report.overall_status is FAIL
    assert [(c.name, c.status) for c in report.checks] == [("a", OK), ("b", WARN), ("c", FAIL)]


async def test_summary_is_one_line_naming_each_non_ok_check() -> None:
    """Worst first, each with its reason (the code when it is the taxonomy's), then the rest."""
    made = checker()
    made.register("config", ok(), title="Config")
    made.register("exchange_public", returns(WARN, "x", "rate_limit"), title="Deribit public")
    made.register("llm", returns(WARN, "LLM keys missing\n(second line)"), title="LLM")
    made.register("disk", returns(FAIL, "12 MiB free", "disk_space"), title="Disk")
    report = await made.run()
    assert report.summary == (
        "Disk FAIL (12 MiB free); Deribit public WARN (rate_limit); "
        "LLM WARN (LLM keys missing (second line)); 1 other check OK"
    )
    assert "\n" not in report.summary
    assert "\n" not in report.checks[2].detail


def test_summary_when_everything_passes() -> None:
    """All OK is said briefly; no checks at all is said too."""
    results = [CheckResult("a", OK, ""), CheckResult("b", OK, "")]
    assert summarize(results) == "all 2 checks OK"
    assert summarize([]) == "no checks registered"


async def test_report_serialises_to_the_api_shape() -> None:
    """to_dict has last_run_at (ISO, UTC), overall_status, summary and the checks."""
    made = checker()
    made.register("a", ok("fine"))
    data = (await made.run()).to_dict()
    assert set(data) == {"last_run_at", "overall_status", "summary", "checks"}
    assert data["last_run_at"] == datetime.fromtimestamp(START, tz=UTC).isoformat()
    assert data["overall_status"] == "OK"
    assert data["checks"][0]["name"] == "a"
    assert set(data["checks"][0]) == {"name", "status", "detail", "code", "latency_ms"}


# -- registration -------------------------------------------------------------------------------


async def test_user_registered_check_runs_with_the_builtins(rig: Rig) -> None:
    """A check a user registers runs beside the built-in ones and counts towards the total."""
    made = rig.full("paper")
    made.register("margin_headroom", returns(WARN, "margin 85% used", "margin"))
    report = await made.run()
    assert report.check("margin_headroom") == CheckResult(
        "margin_headroom", WARN, "margin 85% used", "margin", report.checks[-1].latency_ms
    )
    assert report.overall_status is WARN


def test_duplicate_and_bad_registrations_are_refused() -> None:
    """A name used twice, an empty name or a non-positive timeout is a developer error."""
    made = checker()
    made.register("a", ok())
    with pytest.raises(RuntimeError, match="already registered"):
        made.register("a", ok())
    with pytest.raises(RuntimeError):
        made.register("", ok())
    with pytest.raises(RuntimeError):
        made.register("b", ok(), timeout=0)


async def test_a_check_returning_nonsense_is_a_fail() -> None:
    """A check that answers neither a CheckResult nor (status, detail) fails, saying so."""

    async def nonsense() -> Any:
        return 42

    made = checker()
    made.register("odd", nonsense)
    result = (await made.run()).checks[0]
    assert result.status is FAIL
    assert "check returned int" in result.detail


async def test_a_raising_check_is_a_fail_with_class_and_message_only() -> None:
    """An unexpected exception is FAIL with its class name and message, no traceback."""
    made = checker()
    made.register("boom", raises(RuntimeError("disk controller on fire")))
    report = await made.run()
    result = report.checks[0]
    assert result.status is FAIL
    assert result.detail == "RuntimeError: disk controller on fire"
    assert result.code == "unknown"
    assert "Traceback" not in result.detail
    assert report.summary == "boom FAIL (RuntimeError: disk controller on fire)"


# -- timeouts -------------------------------------------------------------------------------------


async def test_a_slow_check_is_a_timeout_and_the_others_still_report() -> None:
    """One check past its own timeout is TIMEOUT; the rest answer normally."""
    never = asyncio.Event()
    made = checker("paper")
    made.register("fast", ok())
    made.register("stuck", hangs(never), timeout=0.2)
    report = await made.run()
    stuck = report.check("stuck")
    assert stuck is not None
    assert (stuck.status, stuck.code) == (WARN, "timeout")
    assert stuck.detail == "TIMEOUT: no answer within 0.2 s"
    assert report.check("fast") == CheckResult(
        "fast", OK, "fine", None, report.checks[0].latency_ms
    )


async def test_every_check_hanging_still_returns_within_the_timeout() -> None:
    """With every dependency hanging, run() answers within the per-check timeout plus 1 s."""
    never = asyncio.Event()
    made = checker("live", check_timeout=0.2)
    for name in ("config", "exchange_public", "exchange_private", "llm", "store", "disk"):
        made.register(name, hangs(never))
    started = time.monotonic()
    report = await made.run()
    elapsed = time.monotonic() - started
    assert report.overall_status is FAIL
    assert {c.code for c in report.checks} == {"timeout"}
    assert {c.status for c in report.checks} == {FAIL}
    assert elapsed < 0.2 + 1.0


async def test_a_check_that_ignores_cancellation_is_abandoned() -> None:
    """A check that swallows its cancellation cannot hold the run past the grace period."""
    release = asyncio.Event()

    async def stubborn() -> tuple[HealthStatus, str]:
        while True:
            try:
                await release.wait()
                return OK, "released"
            except asyncio.CancelledError:
                continue

    made = checker("paper")
    made.register("stubborn", stubborn, timeout=0.1)
    started = time.monotonic()
    report = await made.run()
    assert time.monotonic() - started < 0.1 + 1.0
    assert report.checks[0].code == "timeout"
    release.set()
    await asyncio.sleep(0)


# -- severity ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "expected"),
    [("dev", WARN), ("test", WARN), ("paper", WARN), ("testnet", FAIL), ("live", FAIL)],
)
async def test_exchange_403_severity_follows_the_environment(
    environment: str,
    expected: HealthStatus,
    rig: Rig,
) -> None:
    """The same 403 is WARN in dev/test/paper and FAIL in testnet/live."""
    rig.paper.faults.arm(
        {"kind": "status", "status": 403, "method": "public/get_time", "times": None}
    )
    report = await rig.full(environment).run()
    public = report.check("exchange_public")
    assert public is not None
    assert (public.status, public.code) == (expected, "forbidden")
    assert public.detail == "Deribit public API FORBIDDEN (HTTP 403)"
    assert report.overall_status is expected
    assert "Deribit public " + expected.value + " (forbidden)" in report.summary


@pytest.mark.parametrize(
    ("code", "environment", "expected"),
    [
        ("network", "paper", WARN),
        ("rate_limit", "paper", WARN),
        ("timeout", "test", WARN),
        ("network", "live", FAIL),
        ("auth", "paper", FAIL),
        ("invalid_response", "paper", FAIL),
        ("unknown", "dev", FAIL),
        ("network", "staging", FAIL),  # an unknown environment is treated as strict
    ],
)
async def test_severity_table(code: str, environment: str, expected: HealthStatus) -> None:
    """Transient codes are WARN only in lenient environments; the rest are FAIL everywhere."""
    error = ExchangeError("deribit public/get_time: X", code=ErrorCode(code), dependency="x")
    made = checker(environment)
    made.register("probe", raises(error))
    assert (await made.run()).checks[0].status is expected


async def test_per_check_override_regrades_a_code(rig: Rig) -> None:
    """{check: {code: status}} overrides the environment's verdict for that check only."""
    rig.paper.faults.arm(
        {"kind": "status", "status": 403, "method": "public/get_time", "times": None}
    )
    made = rig.full(
        "paper", severity_overrides={"exchange_public": {"forbidden": "FAIL"}, "llm": {"x": OK}}
    )
    report = await made.run()
    public, skew = report.check("exchange_public"), report.check("clock_skew")
    assert public is not None
    assert skew is not None
    assert (public.status, public.code) == (FAIL, "forbidden")
    assert (skew.status, skew.code) == (WARN, "forbidden")  # same failure, no override


async def test_override_applies_to_returned_results_with_a_code() -> None:
    """A check's own code (disk_space) can be re-graded too."""
    made = checker("live", severity_overrides={"disk": {"disk_space": "WARN"}})
    made.register("disk", returns(FAIL, "low", "disk_space"))
    assert (await made.run()).checks[0].status is WARN


# -- classified details from the paper exchange -------------------------------------------------


async def test_rate_limit_detail_names_the_status_and_the_wait(rig: Rig) -> None:
    """A 10028 with HTTP 429 and Retry-After reads `RATE_LIMIT (HTTP 429), retry after 2 s`."""
    rig.paper.faults.arm(
        {
            "kind": "error",
            "code": 10028,
            "retry_after": 2,
            "method": "public/get_index_price",
            "times": None,
        }
    )
    report = await rig.full("paper").run()
    public = report.check("exchange_public")
    assert public is not None
    assert public.detail == "Deribit public API RATE_LIMIT (HTTP 429), retry after 2 s"
    assert (public.status, public.code) == (WARN, "rate_limit")
    assert "Deribit public WARN (rate_limit)" in report.summary


async def test_exchange_timeout_detail(rig: Rig) -> None:
    """A hanging exchange under the client's timeout reads `NETWORK: timeout after 0.3 s`."""
    rig.paper.faults.arm({"kind": "hang", "method": "public/get_time", "times": None})
    report = await rig.full("paper").run()
    public = report.check("exchange_public")
    assert public is not None
    assert public.detail == "Deribit public API NETWORK: timeout after 0.3 s"
    assert (public.status, public.code) == (WARN, "timeout")


async def test_hanging_exchange_beyond_the_check_timeout(
    paper: PaperExchangeApp, clock: SimClock
) -> None:
    """When the check gives up before the client does, the detail is the check's TIMEOUT."""
    paper.faults.arm({"kind": "hang", "method": "*", "times": None})
    slow = _client(paper, clock, timeout=30.0)

    async def exchange_time() -> tuple[HealthStatus, str]:
        return OK, f"time {await slow.get_time()}"

    try:
        made = checker("live", check_timeout=0.2)
        made.register("exchange_public", exchange_time)
        started = time.monotonic()
        report = await made.run()
        assert time.monotonic() - started < 0.2 + 1.0
        result = report.checks[0]
        assert (result.status, result.code) == (FAIL, "timeout")
        assert result.detail == "TIMEOUT: no answer within 0.2 s"
    finally:
        paper.faults.clear()
        await slow.close()


async def test_state_builder_failure_names_the_exchange_cause(rig: Rig) -> None:
    """An observation failing on the exchange says so instead of dumping an exception."""
    rig.paper.faults.arm(
        {"kind": "status", "status": 403, "method": "public/get_instruments", "times": None}
    )
    report = await rig.full("paper").run()
    state = report.check("state_builder")
    assert state is not None
    assert state.detail == "state builder failed: Deribit public API FORBIDDEN (HTTP 403)"
    assert (state.status, state.code) == (WARN, "forbidden")


async def test_private_auth_failure_is_described_as_the_private_api(rig: Rig) -> None:
    """A refused login fails the private check (FAIL even in paper: it is our keys)."""
    rig.paper.faults.arm({"kind": "error", "code": 13004, "method": "public/auth", "times": None})
    report = await rig.full("paper").run()
    private = report.check("exchange_private")
    assert private is not None
    assert private.detail == "Deribit private API AUTH (HTTP 401)"
    assert (private.status, private.code) == (FAIL, "auth")


RATE_LIMIT, FORBIDDEN, FUNDS = (
    ErrorCode.RATE_LIMIT,
    ErrorCode.FORBIDDEN,
    ErrorCode.INSUFFICIENT_FUNDS,
)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"http_status": 403}, "Deribit public API FORBIDDEN (HTTP 403)"),
        (
            {"code": RATE_LIMIT, "exchange_code": 10028, "retry_after": 2.0},
            "Deribit public API RATE_LIMIT (10028), retry after 2 s",
        ),
        (
            {"code": RATE_LIMIT, "exchange_code": 10028, "http_status": 429, "retry_after": 2.0},
            "Deribit public API RATE_LIMIT (HTTP 429), retry after 2 s",
        ),
        (
            {"code": FORBIDDEN, "exchange_code": 13021, "http_status": 403},
            "Deribit public API FORBIDDEN (HTTP 403)",
        ),
        (
            {"code": FUNDS, "exchange_code": 10009, "http_status": 400},
            "Deribit public API INSUFFICIENT_FUNDS (10009)",
        ),
        ({"exc": TimeoutError(), "timeout": 5.0}, "Deribit public API NETWORK: timeout after 5 s"),
        ({"exc": httpx.ReadTimeout("slow")}, "Deribit public API NETWORK: timeout (ReadTimeout)"),
        ({"exc": ConnectionError("refused")}, "Deribit public API NETWORK (ConnectionError)"),
        ({"http_status": 503}, "Deribit public API SERVER (HTTP 503)"),
        ({"http_status": 504}, "Deribit public API TIMEOUT (HTTP 504)"),
    ],
)
def test_describe_error_table(kwargs: dict[str, Any], expected: str) -> None:
    """describe_error renders classified errors from their data."""
    error = classify(dependency="deribit public/get_time", error_class=ExchangeError, **kwargs)
    assert describe_error(error) == expected


def test_describe_error_reads_fields_not_the_message() -> None:
    """Timeout, retry-after and codes come from the fields, whatever the message says."""
    error = ExchangeError(
        "deribit public/get_time: something else entirely after 99 s (12345)",
        code=ErrorCode.TIMEOUT,
        dependency="deribit public/get_time",
        timeout=0.25,
    )
    assert describe_error(error) == "Deribit public API NETWORK: timeout after 0.25 s"
    limited = ExchangeError(
        "no numbers here",
        code=ErrorCode.RATE_LIMIT,
        dependency="deribit private/buy",
        exchange_code=10028,
        retry_after=1.5,
    )
    assert describe_error(limited) == "Deribit private API RATE_LIMIT (10028), retry after 1.5 s"
    opened = ExchangeError(
        "deribit public/ticker: CIRCUIT_OPEN (deribit open; retry in 3 s)",
        code=ErrorCode.CIRCUIT_OPEN,
        dependency="deribit public/ticker",
        retry_after=3.0,
    )
    assert describe_error(opened) == "Deribit public API CIRCUIT_OPEN, retry after 3 s"


def test_describe_error_outside_the_message_format() -> None:
    """An error whose message is not the taxonomy's format is shown as CODE: message."""
    error = ExchangeError("store unreachable", code=ErrorCode.NETWORK, dependency="store")
    assert describe_error(error) == "NETWORK: store unreachable"


# -- built-in checks ----------------------------------------------------------------------------


async def test_builtin_checks_pass_on_a_healthy_paper_exchange(rig: Rig) -> None:
    """All eight built-in checks run and pass in paper mode."""
    report = await rig.full("paper").run()
    assert [c.name for c in report.checks] == [
        "config",
        "exchange_public",
        "exchange_private",
        "llm",
        "state_builder",
        "store",
        "disk",
        "clock_skew",
    ]
    assert report.overall_status is OK, report.summary
    assert report.summary == "all 8 checks OK"
    llm = report.check("llm")
    assert llm is not None
    assert llm.detail == "no LLM configured"


async def test_lightweight_only_skips_the_heavy_checks(rig: Rig) -> None:
    """The runtime's re-check leaves out the private exchange and the state builder."""
    report = await rig.full("paper").run(lightweight_only=True)
    names = {c.name for c in report.checks}
    assert names.isdisjoint({"exchange_private", "state_builder"})
    assert {"config", "exchange_public", "store", "clock_skew"} <= names


async def test_live_without_llm_keys_warns(rig: Rig) -> None:
    """In live, the missing LLM keys are a WARN named in the summary."""
    report = await rig.full("live").run()
    assert report.overall_status is WARN
    assert report.summary == "LLM WARN (LLM keys missing); 7 other checks OK"


LLM = {"llm_provider": "openai", "llm_base_url": "http://127.0.0.1:8765/v1"}


async def test_llm_names_the_pinned_model_and_its_fallbacks(rig: Rig) -> None:
    """Every model priced: OK with the provider, the pinned id and the chain's length."""
    settings = {**LLM, "llm_model": "gpt-4o-2024-08-06", "llm_fallback_models": ["gpt-4o-mini"]}
    report = await rig.full("paper", llm=settings, prices=PriceBook()).run()
    llm = report.check("llm")
    assert llm is not None
    assert llm.status is OK
    assert llm.detail == "openai gpt-4o-2024-08-06 (+1 fallback); every model priced"


async def test_llm_warns_when_a_model_has_no_price(rig: Rig) -> None:
    """A pinned model without a price is costed at the default: WARN, naming the fix."""
    prices = PriceBook()
    report = await rig.full(
        "paper", llm={**LLM, "llm_model": "my-local-model"}, prices=prices
    ).run()
    llm = report.check("llm")
    assert llm is not None
    assert llm.status is WARN
    assert llm.detail.startswith("no price for my-local-model: costed at the default $15 / $75")
    assert "BASTION_LLM_PRICES" in llm.detail


async def test_llm_warns_on_a_model_seen_answering_without_a_price(rig: Rig) -> None:
    """A provider answering with an unpriced model (a silent swap) turns the check WARN."""
    prices = PriceBook()
    checker = rig.full("paper", llm={**LLM, "llm_model": "gpt-4o"}, prices=prices)
    assert (await checker.run()).overall_status is OK
    prices.cost_usd("gpt-9-preview", 10, 10)
    llm = (await checker.run()).check("llm")
    assert llm is not None
    assert llm.status is WARN
    assert "gpt-9-preview" in llm.detail


def test_config_problems_in_live_and_in_limits(tmp_path: Path) -> None:
    """Placeholder keys in live and caps that contradict each other are named."""
    settings = Settings.model_construct(
        **{
            **Settings(data_dir=tmp_path).model_dump(),
            "mode": "live",
            "exchange_client_secret": SecretStr(""),
            "risk_max_order_amount": 3.0,
            "risk_max_position": 2.0,
            "seller_min_days": 5.0,
            "seller_max_days": 1.0,
        }
    )
    assert config_problems(settings) == [
        "exchange_client_id missing for live",
        "exchange_client_secret missing for live",
        "risk_max_order_amount above risk_max_position",
        "seller_min_days not below seller_max_days",
    ]
    assert config_problems(Settings(data_dir=tmp_path)) == []


@pytest.mark.parametrize(
    ("warn", "fail", "expected"), [(1, 0, OK), (1 << 62, 0, WARN), (1 << 62, 1 << 61, FAIL)]
)
async def test_disk_thresholds(
    warn: int,
    fail: int,
    expected: HealthStatus,
    rig: Rig,
) -> None:
    """Free space below the WARN or FAIL threshold grades the disk check."""
    made = rig.full(
        "paper",
        data_dir=rig.tmp_path / "missing" / "data",
        disk_warn_bytes=warn,
        disk_fail_bytes=fail,
    )
    disk = (await made.run(lightweight_only=True)).check("disk")
    assert disk is not None
    assert disk.status is expected
    assert "free in" in disk.detail


@pytest.mark.parametrize(("ahead", "expected"), [(0.0, OK), (2.0, WARN), (10.0, FAIL)])
async def test_clock_skew_thresholds(
    ahead: float,
    expected: HealthStatus,
    rig: Rig,
) -> None:
    """Our clock behind the exchange's by more than 1 s warns, by more than 5 s fails."""
    made = rig.full("paper", clock=SimClock(start=START - ahead))
    skew = (await made.run(lightweight_only=True)).check("clock_skew")
    assert skew is not None
    assert skew.status is expected
    assert f"{ahead:+.3f} s" in skew.detail


# -- cache and history --------------------------------------------------------------------------


async def test_cache_is_empty_before_the_first_run_and_filled_after() -> None:
    """get_cached_health_status is all None before a run and the last report after."""
    made = checker()
    assert made.get_cached_health_status() == CachedHealthStatus()
    assert made.get_cached_health_status().to_dict() == {
        "last_run_at": None,
        "overall_status": None,
        "summary": None,
        "checks": [],
    }
    made.register("a", returns(WARN, "meh"))
    report = await made.run_and_cache_healthcheck()
    cached = made.get_cached_health_status()
    assert cached.overall_status is WARN
    assert cached.last_run_at == report.run_at
    assert cached.details == report.checks
    assert cached.summary == report.summary
    assert cached.to_dict() == report.to_dict()


async def test_history_without_a_store_is_kept_in_memory() -> None:
    """Without a store the last runs are kept in memory, newest first, up to retention."""
    made = checker(retention=2)
    made.register("a", ok())
    reports = [await made.run() for _ in range(3)]
    assert made.history() == [reports[2], reports[1]]


async def test_history_is_stored_pruned_and_survives_a_new_store(store_url: str) -> None:
    """Every run is stored, pruned to retention, and read back after a restart."""
    clock = SimClock(start=START)
    with Store.open(store_url) as first:
        made = HealthChecker(clock=clock, environment="paper", store=first, retention=3)
        statuses = iter([OK, WARN, FAIL, OK, WARN])

        async def varying() -> tuple[HealthStatus, str]:
            return next(statuses), "varies"

        made.register("v", varying)
        for _ in range(5):
            await made.run()
            clock.advance(60)
        assert first.health.count() == 3
        history = made.history(10)
        assert [r.overall_status for r in history] == [WARN, OK, FAIL]
        assert history[0].run_at > history[1].run_at
    with Store.open(store_url) as second:
        again = HealthChecker(clock=clock, environment="paper", store=second)
        restored = again.history(2)
        assert [r.overall_status for r in restored] == [WARN, OK]
        assert restored[0] == HealthReport(
            WARN,
            history[0].run_at,
            (CheckResult("v", WARN, "varies", None, history[0].checks[0].latency_ms),),
            "v WARN (varies)",
        )


async def test_a_failing_store_does_not_fail_the_run(tmp_path: Path) -> None:
    """History that cannot be written costs that one row, never the report."""
    broken = Store.open(f"sqlite:///{tmp_path / 'h.db'}")
    broken.close()
    (tmp_path / "h.db").unlink()
    (tmp_path / "h.db").mkdir()  # the file is now a directory: every write fails
    made = checker(store=broken)
    made.register("a", ok())
    report = await made.run()
    assert report.overall_status is OK
    assert made.get_cached_health_status().overall_status is OK
