"""Fault injection through the real app: every kind, targeting, counting, the control endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from paper_support import PERP, START, Rpc
from pydantic import ValidationError

from bastion.build import build_paper_app
from bastion.clock import SimClock, WallClock
from bastion.config import load_settings
from bastion.errors import ConfigError
from bastion.simulators.faults.control import is_loopback
from bastion.simulators.paper import (
    DroppedConnection,
    Fault,
    FaultSpec,
    PaperExchangeApp,
    create_app,
)
from bastion.simulators.paper.fault_responses import MALFORMED_BODY
from loopback_server import serve_on_loopback

KINDS: dict[str, dict[str, Any]] = {
    "status": {"status": 503},
    "error": {"code": 10028},
    "delay": {"seconds": 0.001},
    "hang": {},
    "malformed": {},
    "truncated": {},
    "drop": {},
    "crash": {},
}
HANG_BOUND = 0.2  # seconds: how long a test waits on a hang before giving up, not a timing claim
IN_PROCESS_HANG_BOUND = 0.05  # in process only cancellation ends a hang; keep the many short


@pytest.fixture
async def client(app: PaperExchangeApp) -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client on the app through ASGITransport (client address 127.0.0.1)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://paper") as http:
        yield http


@pytest.fixture
def served() -> Iterator[tuple[PaperExchangeApp, str]]:
    """A paper exchange on a WallClock, served by uvicorn on loopback; faults cleared at the end."""
    app = create_app(clock=WallClock(), seed=3)
    with serve_on_loopback(app, log_level="critical") as url:
        try:
            yield app, url
        finally:
            app.faults.clear()  # releases any hang so the server can stop


async def get_time(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/api/v2/public/get_time")


async def outcome(client: httpx.AsyncClient, fault: Fault) -> str:
    """Call public/get_time once and say what the client saw ("delayed" from the fault's count)."""
    fired = fault.fired
    try:
        async with asyncio.timeout(IN_PROCESS_HANG_BOUND):
            response = await get_time(client)
    except TimeoutError:
        return "hang"
    except httpx.RemoteProtocolError:
        return "drop"
    try:
        payload = response.json()
    except ValueError:
        return "garbled"
    if "error" in payload:
        return f"error {response.status_code} {payload['error']['code']}"
    return "delayed" if fault.fired > fired else "ok"
    return "ok"


async def until_hanging(app: PaperExchangeApp) -> None:
    """Wait (at most 5 s) until a request hangs in ``app``."""
    for _ in range(500):
        if app.faults.hanging:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no request started hanging")


SEEN = {
    "status": "error 503 13028",
    "error": "error 429 10028",
    "delay": "delayed",
    "hang": "hang",
    "malformed": "garbled",
    "truncated": "garbled",
    "drop": "drop",
    "crash": "error 400 11094",
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_kind_fires_for_the_next_n_calls(
    app: PaperExchangeApp, client: httpx.AsyncClient, kind: str
) -> None:
    """Every kind answers the next N matching calls as it says, then the exchange is normal."""
    fault = app.faults.arm({"kind": kind, "method": "public/get_time", "times": 2, **KINDS[kind]})
    seen = [await outcome(client, fault) for _ in range(3)]
    assert seen == [SEEN[kind], SEEN[kind], "ok"]
    assert (fault.fired, fault.remaining, app.faults.faults) == (2, 0, [])


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_kind_with_a_probability_is_reproducible_for_a_seed(kind: str) -> None:
    """A probabilistic fault fires on some calls, in the same pattern for the same seed."""

    async def pattern(seed: int) -> list[bool]:
        app = create_app(clock=SimClock(START), seed=seed)
        fault = app.faults.arm(
            {"kind": kind, "method": "public/get_time", "probability": 0.5, **KINDS[kind]}
        )
        fired = []
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://paper"
        ) as http:
            for _ in range(12):
                before = fault.fired
                seen = await outcome(http, fault)
                fired.append(fault.fired > before)
                assert seen == (SEEN[kind] if fired[-1] else "ok")
        assert fault.remaining is None  # until cleared
        return fired

    first = await pattern(seed=5)
    assert first == await pattern(seed=5)
    assert True in first
    assert False in first


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        ({"kind": "status", "status": 503}, 503),
        ({"kind": "error", "code": 10028}, 429),
        ({"kind": "malformed"}, 200),
        ({"kind": "truncated"}, 200),
    ],
)
async def test_retry_after_rides_on_every_http_answer(
    app: PaperExchangeApp, client: httpx.AsyncClient, spec: dict[str, Any], status: int
) -> None:
    """retry_after adds a Retry-After header (whole seconds) to each kind that answers HTTP."""
    app.faults.arm({**spec, "retry_after": 7})
    response = await get_time(client)
    assert (response.status_code, response.headers["retry-after"]) == (status, "7")
    assert "retry-after" not in (await get_time(client)).headers


async def test_status_with_a_deribit_envelope(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """A status fault without a body answers a Deribit envelope at that status, code and id."""
    app.faults.arm({"kind": "status", "status": 502, "code": 10040, "message": "retry later"})
    response = await client.post(
        "/api/v2/public/test", json={"jsonrpc": "2.0", "id": 9, "method": "public/test"}
    )
    assert response.status_code == 502
    assert response.json()["id"] == 9
    assert response.json()["error"] == {"code": 10040, "message": "retry later"}


async def test_status_with_a_raw_body_like_a_proxy_page(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """A 503 with an HTML page and a 403 with an empty body are served exactly as given."""
    html = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
    app.faults.arm({"kind": "status", "status": 503, "body": html, "content_type": "text/html"})
    app.faults.arm({"kind": "status", "status": 403, "body": ""})
    page, empty = await get_time(client), await get_time(client)
    assert (page.status_code, page.text, page.headers["content-type"]) == (
        503,
        html,
        "text/html; charset=utf-8",
    )
    assert (empty.status_code, empty.content) == (403, b"")
    assert "content-type" not in empty.headers


async def test_error_code_uses_the_usual_status(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """An error fault answers its Deribit code at the status the code's table gives."""
    app.faults.arm({"kind": "error", "code": 13009})
    response = await get_time(client)
    assert (response.status_code, response.json()["error"]["code"]) == (401, 13009)


async def test_delay_answers_normally_after_the_delay(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """A delay waits (wall time) and then answers the same bytes as an undelayed call."""
    normal = await get_time(client)
    app.faults.arm({"kind": "delay", "seconds": 0.05})
    started = time.monotonic()
    delayed = await get_time(client)
    assert time.monotonic() - started >= 0.05
    assert delayed.content == normal.content


async def test_delay_trips_a_client_deadline(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """A delay longer than the caller's deadline ends in TimeoutError on the caller's side."""
    app.faults.arm({"kind": "delay", "seconds": 5})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await get_time(client)


async def test_malformed_body_is_not_json(app: PaperExchangeApp, client: httpx.AsyncClient) -> None:
    """A malformed answer is HTTP 200 application/json whose body does not parse."""
    app.faults.arm({"kind": "malformed"})
    response = await get_time(client)
    assert response.headers["content-type"] == "application/json"
    assert response.content == MALFORMED_BODY
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


async def test_truncated_body_is_the_answer_cut_with_an_honest_length(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """A truncated answer is the first half of the real bytes, and Content-Length says so."""
    normal = (await get_time(client)).content
    app.faults.arm({"kind": "truncated"})
    response = await get_time(client)
    assert response.content == normal[: len(normal) // 2]
    assert response.headers["content-length"] == str(len(response.content))
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


async def test_a_garbled_answer_still_reached_the_venue(app: PaperExchangeApp, rpc: Rpc) -> None:
    """A truncated private/buy places the order: the answer is lost, not the request."""
    await rpc.login()
    bid = (await rpc.result("public/ticker", instrument_name=PERP))["best_bid_price"]
    app.faults.arm({"kind": "truncated", "method": "private/buy"})
    response = await rpc.get("private/buy", instrument_name=PERP, amount=10, price=bid - 20)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)
    orders = await rpc.result("private/get_open_orders_by_instrument", instrument_name=PERP)
    assert [order["amount"] for order in orders] == [10]


async def test_drop_under_asgi_transport_is_a_remote_protocol_error(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """In process, a dropped connection raises httpx.RemoteProtocolError (DroppedConnection)."""
    app.faults.arm({"kind": "drop"})
    with pytest.raises(httpx.RemoteProtocolError) as raised:
        await get_time(client)
    assert isinstance(raised.value, DroppedConnection)
    assert (await get_time(client)).status_code == 200


async def test_hang_under_asgi_transport_ends_with_the_callers_deadline(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """In process, a hang ends when the caller's deadline cancels it and leaves no task behind.

    httpx's own timeout does not apply under ASGITransport (there is no socket to time out), so
    the bound is an asyncio deadline, as ``resilience.call`` sets.
    """
    tasks_before = asyncio.all_tasks()
    app.faults.arm({"kind": "hang"})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(HANG_BOUND):
            await get_time(client)
    assert app.faults.hanging == 0
    assert asyncio.all_tasks() == tasks_before


async def test_other_requests_are_answered_while_one_hangs(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """A hanging call blocks nobody else; clearing the faults drops it."""
    app.faults.arm({"kind": "hang", "method": "public/get_time"})
    hanging = asyncio.create_task(get_time(client))
    await until_hanging(app)
    assert (await client.get("/api/v2/public/test")).status_code == 200
    assert app.faults.clear() == 0  # the hang fired once: nothing is left armed
    with pytest.raises(DroppedConnection):
        await hanging
    assert app.faults.hanging == 0


def test_drop_over_loopback_is_a_remote_protocol_error(
    served: tuple[PaperExchangeApp, str],
) -> None:
    """Over uvicorn, a drop closes the socket without a byte: httpx.RemoteProtocolError."""
    app, url = served
    app.faults.arm({"kind": "drop"})
    with httpx.Client(base_url=url, timeout=5) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            http.get("/api/v2/public/get_time")
        assert http.get("/api/v2/public/get_time").status_code == 200


def test_hang_over_loopback_ends_with_the_client_timeout(
    served: tuple[PaperExchangeApp, str],
) -> None:
    """Over uvicorn, a hang ends in httpx.ReadTimeout; the server answers others meanwhile."""
    app, url = served
    app.faults.arm({"kind": "hang", "method": "public/get_time"})
    with httpx.Client(base_url=url, timeout=HANG_BOUND) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.get("/api/v2/public/get_time")
        assert http.get("/api/v2/public/test").status_code == 200
    deadline = time.monotonic() + 5
    while app.faults.hanging and time.monotonic() < deadline:  # the server sees the client leave
        time.sleep(0.01)
    assert app.faults.hanging == 0


async def test_other_requests_over_loopback_while_one_hangs(
    served: tuple[PaperExchangeApp, str],
) -> None:
    """Over uvicorn, a hang blocks no other client, and clearing it lets the server stop."""
    app, url = served
    app.faults.arm({"kind": "hang", "method": "public/get_time"})
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        hanging = asyncio.create_task(http.get("/api/v2/public/get_time"))
        await until_hanging(app)
        assert (await http.get("/api/v2/public/test")).status_code == 200
        app.faults.clear()
        with pytest.raises(httpx.RemoteProtocolError):
            await hanging


# -- targeting and counting ---------------------------------------------------------------
async def test_exact_method_targets_only_that_method(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """A fault on public/get_time leaves public/test alone."""
    app.faults.arm({"kind": "error", "code": 10040, "method": "public/get_time"})
    assert (await client.get("/api/v2/public/test")).status_code == 200
    assert (await get_time(client)).status_code == 400


async def test_glob_targets_a_family(app: PaperExchangeApp, rpc: Rpc) -> None:
    """private/* hits private methods only; the first armed fault that fires wins."""
    await rpc.login()
    app.faults.arm({"kind": "error", "code": 10028, "method": "private/*", "times": None})
    app.faults.arm({"kind": "error", "code": 13009, "method": "*", "times": None})
    positions = await rpc.get("private/get_positions")
    assert positions.json()["error"]["code"] == 10028
    assert (await rpc.get("public/test")).json()["error"]["code"] == 13009


async def test_calls_are_counted_per_method_including_faulted_ones(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """Every call of a real method counts, faulted or not; unknown methods and control do not."""
    app.faults.arm({"kind": "drop", "method": "public/test"})
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get("/api/v2/public/test")
    await get_time(client)
    await get_time(client)
    await client.get("/api/v2/public/no_such_method")
    await client.get("/_paper/faults")
    assert app.faults.call_counts() == {"public/get_time": 2, "public/test": 1}
    assert (
        app.faults.calls(),
        app.faults.calls("public/get_*"),
        app.faults.calls("private/*"),
    ) == (
        3,
        2,
        0,
    )
    app.faults.reset_calls()
    assert app.faults.calls() == 0


def test_create_app_arms_faults_from_settings() -> None:
    """create_app(faults=[...]) validates plain dicts (settings) into FaultSpecs and arms them."""
    app = create_app(
        clock=SimClock(START), faults=[{"kind": "error", "code": 10028, "method": "public/*"}]
    )
    assert [(f.kind, f.spec.method, f.remaining) for f in app.faults.faults] == [
        ("error", "public/*", 1)
    ]
    with pytest.raises(ValidationError, match="needs status"):
        create_app(clock=SimClock(START), faults=[{"kind": "status"}])


async def test_settings_arm_deribit_rate_limits_then_http_429s_on_private_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BASTION_PAPER_FAULTS: three 10028 errors, then two HTTP 429s with Retry-After, then OK."""
    faults = [
        {"kind": "error", "code": 10028, "method": "private/*", "times": 3},
        {"kind": "status", "status": 429, "retry_after": 2, "method": "private/*", "times": 2},
    ]
    monkeypatch.setenv("BASTION_PAPER_FAULTS", orjson.dumps(faults).decode())
    app = build_paper_app(load_settings(), SimClock(START))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://paper"
    ) as http:
        rpc = Rpc(http)
        await rpc.login()  # public/auth: not a private method, so not faulted
        seen = []
        for _ in range(6):
            response = await rpc.get("private/get_positions")
            error = response.json().get("error", {}).get("code")
            seen.append((response.status_code, error, response.headers.get("retry-after")))
    assert seen == [
        *[(429, 10028, None)] * 3,
        *[(429, 10028, "2")] * 2,
        (200, None, None),
    ]


def test_settings_with_the_old_count_name_fail_at_start_naming_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault written with count (the fake LLM's old name) stops start-up, saying times."""
    fault = [{"kind": "error", "code": 10028, "count": 3}]
    monkeypatch.setenv("BASTION_PAPER_FAULTS", orjson.dumps(fault).decode())
    with pytest.raises(ConfigError, match=r'count is now times .*send "times": 3'):
        build_paper_app(load_settings(), SimClock(START))


# -- the spec -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"kind": "teapot"}, "kind"),
        ({"kind": "status"}, "a status fault needs status"),
        ({"kind": "delay"}, "a delay fault needs seconds"),
        ({"kind": "error"}, "an error fault needs code"),
        ({"kind": "hang", "retry_after": 1}, "retry_after does not apply to a hang fault"),
        ({"kind": "drop", "code": 1}, "code does not apply to a drop fault"),
        ({"kind": "status", "status": 503, "body": "x", "code": 1}, "either a raw body"),
        ({"kind": "status", "status": 503, "content_type": "text/html"}, "content_type needs"),
        ({"kind": "status", "status": 99}, "status"),
        ({"kind": "error", "code": "10028"}, "code"),
        ({"kind": "hang", "method": "public/tikcer"}, "matches no method"),
        ({"kind": "hang", "times": 0}, "times"),
        ({"kind": "hang", "probability": 1.5}, "probability"),
        ({"kind": "delay", "seconds": -1}, "seconds"),
        ({"kind": "hang", "colour": "red"}, "colour"),
    ],
)
def test_invalid_specs_are_refused_with_a_reason(spec: dict[str, Any], reason: str) -> None:
    """A fault that cannot mean one thing is refused, naming the field or the rule."""
    with pytest.raises(ValidationError, match=reason):
        FaultSpec.model_validate(spec)


def test_probability_defaults_to_until_cleared() -> None:
    """Without times, a next-N fault fires once and a probabilistic one until cleared."""
    assert FaultSpec(kind="hang").times == 1
    assert FaultSpec.model_validate({"kind": "hang", "probability": 0.1}).times is None
    assert FaultSpec.model_validate({"kind": "hang", "probability": 0.1, "times": 3}).times == 3


# -- the control endpoint (the semantics shared with the fake LLM: faults/test_routes.py) ---
async def test_control_adds_lists_and_clears(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """POST arms a fault (201), GET shows it with the call counts, DELETE clears it."""
    spec = {"kind": "status", "status": 503, "method": "public/*", "times": 2, "retry_after": 3}
    added = await client.post("/_paper/faults", json=spec)
    assert added.status_code == 201
    fault = {"id": 1, **spec, "remaining": 2, "fired": 0}
    assert added.json() == {"fault": fault}
    assert (await get_time(client)).status_code == 503
    listed = (await client.get("/_paper/faults")).json()
    assert listed == {
        "faults": [{**fault, "remaining": 1, "fired": 1}],
        "calls": {"public/get_time": 1},
        "hanging": 0,
    }
    cleared = await client.delete("/_paper/faults")
    assert (cleared.status_code, cleared.json()) == (200, {"cleared": 1})
    assert (await get_time(client)).status_code == 200
    calls = await client.get("/_paper/calls")
    assert calls.json() == {"calls": {"public/get_time": 2}, "total": 2}
    assert (await client.delete("/_paper/calls")).json()["total"] == 0
    assert app.faults.calls() == 0


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "JSON object"),
        (b"[1, 2]", 422, "valid dictionary"),
        (b'{"kind": "status"}', 422, "a status fault needs status"),
        (b'{"kind": "hang", "method": "public/nope"}', 422, "matches no method"),
        (b'{"kind": "error", "code": 10028, "times": -1}', 422, "times"),
        (b"x" * 40_000, 413, "at most"),
    ],
)
async def test_control_refuses_bad_faults_with_a_reason(
    app: PaperExchangeApp, client: httpx.AsyncClient, body: bytes, status: int, reason: str
) -> None:
    """A bad fault is a 4xx JSON error with a reason, never a 500, and arms nothing."""
    response = await client.post("/_paper/faults", content=body)
    assert response.status_code == status
    assert reason in response.json()["reason"]
    assert app.faults.faults == []


@pytest.mark.parametrize("host", ["203.0.113.9", "10.0.0.1", "::2", "testclient"])
async def test_control_refuses_non_loopback_clients(app: PaperExchangeApp, host: str) -> None:
    """A client address outside loopback gets 403 on every control route, and arms nothing."""
    transport = httpx.ASGITransport(app=app, client=(host, 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://paper") as remote:
        for method, path in [("GET", "/_paper/faults"), ("POST", "/_paper/faults"),
                             ("DELETE", "/_paper/calls")]:  # fmt: skip
            response = await remote.request(method, path, json={"kind": "hang"})
            assert response.status_code == 403
            assert "loopback" in response.json()["reason"]
    assert app.faults.faults == []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.8.7", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", False),
        ("localhost", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_addresses(host: str | None, loopback: bool) -> None:
    """Loopback means 127.0.0.0/8, ::1 or IPv4-mapped 127/8; a name is not an address."""
    assert is_loopback(host) is loopback


async def test_control_is_not_a_json_rpc_method(
    app: PaperExchangeApp, client: httpx.AsyncClient
) -> None:
    """The control routes cannot be reached as a JSON-RPC method, by path or by body."""
    by_path = await client.get("/api/v2/_paper/faults")
    by_body = await client.post(
        "/api/v2", json={"jsonrpc": "2.0", "id": 1, "method": "_paper/faults"}
    )
    assert by_path.json()["error"]["code"] == -32601
    assert by_body.json()["error"]["code"] == -32601
