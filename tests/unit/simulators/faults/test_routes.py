"""Both simulators' fault control APIs follow one semantics, proven by one parametrized suite.

Each test runs against the paper exchange (``/_paper``, faults target a ``method``) and the fake
LLM server (``/_fake``, faults target a ``model``) through the real apps in process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from bastion.clock import SimClock
from bastion.simulators import llm, paper

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Simulator:
    """How a test arms, calls and reads one simulator through HTTP."""

    name: str
    prefix: str
    target_field: str
    target: str
    other: str
    build: Callable[[int], ASGIApp]
    request: Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]

    def fault(self, target: str | None = None, **options: Any) -> dict[str, Any]:
        """A 503 fault on ``target`` (default: the simulator's own) with ``options``."""
        return {
            "kind": "status",
            "status": 503,
            self.target_field: target or self.target,
            **options,
        }


def _chat(http: httpx.AsyncClient, model: str) -> Awaitable[httpx.Response]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return http.post("/v1/chat/completions", json=body)


PAPER = Simulator(
    "paper",
    "/_paper",
    "method",
    "public/get_time",
    "public/test",
    lambda seed: paper.create_app(clock=SimClock(START), seed=seed),
    lambda http, method: http.get(f"/api/v2/{method}"),
)
LLM = Simulator(
    "llm", "/_fake", "model", "gpt-4o", "small", lambda seed: llm.create_app(seed=seed), _chat
)
SIMULATORS = pytest.mark.parametrize("sim", [PAPER, LLM], ids=lambda sim: sim.name)


@asynccontextmanager
async def client(
    sim: Simulator, seed: int = 1, host: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on a fresh app of ``sim``, appearing to come from ``host``."""
    transport = httpx.ASGITransport(app=sim.build(seed), client=(host, 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        yield http


async def statuses(sim: Simulator, http: httpx.AsyncClient, *targets: str) -> list[int]:
    return [(await sim.request(http, target)).status_code for target in targets]


async def listed(sim: Simulator, http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get(f"{sim.prefix}/faults")
    assert response.status_code == 200
    payload: dict[str, Any] = response.json()
    return payload


@SIMULATORS
async def test_post_appends_and_get_lists_every_fault_with_its_counters(sim: Simulator) -> None:
    """Arming twice lists two faults, each with its id, times, remaining and fired."""
    async with client(sim) as http:
        one = await http.post(f"{sim.prefix}/faults", json=sim.fault(times=2))
        two = await http.post(f"{sim.prefix}/faults", json=[sim.fault(sim.other, times=None)])
        assert (one.status_code, two.status_code) == (201, 201)
        assert one.json()["fault"] == {"id": 1, **sim.fault(times=2), "remaining": 2, "fired": 0}
        assert [fault["id"] for fault in two.json()["faults"]] == [2]
        assert await statuses(sim, http, sim.target) == [503]
        snapshot = await listed(sim, http)
    assert [(f["id"], f["times"], f["remaining"], f["fired"]) for f in snapshot["faults"]] == [
        (1, 2, 1, 1),
        (2, None, None, 0),
    ]
    assert (snapshot["calls"], snapshot["hanging"]) == ({sim.target: 1}, 0)


@SIMULATORS
async def test_the_next_n_matching_requests_fail_then_pass(sim: Simulator) -> None:
    """times=3 fails exactly the next three matching requests; others are never touched."""
    async with client(sim) as http:
        await http.post(f"{sim.prefix}/faults", json=sim.fault(times=3))
        seen = await statuses(sim, http, sim.target, sim.other, sim.target, sim.target, sim.target)
        assert seen == [503, 200, 503, 503, 200]
        snapshot = await listed(sim, http)
        calls = (await http.get(f"{sim.prefix}/calls")).json()
    assert snapshot["faults"] == []  # spent faults leave the list
    assert calls == {"calls": {sim.other: 1, sim.target: 4}, "total": 5}


@SIMULATORS
async def test_the_first_armed_fault_that_fires_wins(sim: Simulator) -> None:
    """A targeted fault armed first shadows a catch-all one armed after it."""
    async with client(sim) as http:
        await http.post(f"{sim.prefix}/faults", json=sim.fault(times=None))
        catch_all = {**sim.fault("*", times=None), "status": 500}
        await http.post(f"{sim.prefix}/faults", json=catch_all)
        assert await statuses(sim, http, sim.target, sim.other) == [503, 500]


async def firing_pattern(sim: Simulator, seed: int) -> list[bool]:
    """Which of 32 matching requests a probability-0.5 fault failed, on a fresh server."""
    async with client(sim, seed) as http:
        await http.post(f"{sim.prefix}/faults", json=sim.fault(probability=0.5))
        return [status == 503 for status in await statuses(sim, http, *[sim.target] * 32)]


@SIMULATORS
async def test_a_probability_with_a_seed_is_reproducible_across_fresh_servers(
    sim: Simulator,
) -> None:
    """Two fresh servers with one seed fail the same requests; another seed fails others."""
    first = await firing_pattern(sim, seed=5)
    assert first == await firing_pattern(sim, seed=5)
    assert first != await firing_pattern(sim, seed=6)
    assert True in first  # fires until cleared, not on every request
    assert False in first


async def test_one_seed_fires_the_same_requests_on_either_simulator() -> None:
    """The seeding rule is one: a seed and a fault id draw alike on the exchange and the LLM."""
    assert await firing_pattern(PAPER, seed=9) == await firing_pattern(LLM, seed=9)


@SIMULATORS
async def test_delete_clears_all_and_delete_by_id_clears_one(sim: Simulator) -> None:
    """DELETE /faults/{id} clears that fault, DELETE /faults the rest; then requests pass."""
    async with client(sim) as http:
        await http.post(f"{sim.prefix}/faults", json=[sim.fault(times=None)] * 3)
        one = await http.delete(f"{sim.prefix}/faults/2")
        assert (one.status_code, one.json()) == (200, {"cleared": 1})
        assert [f["id"] for f in (await listed(sim, http))["faults"]] == [1, 3]
        again = await http.delete(f"{sim.prefix}/faults/2")
        assert (again.status_code, again.json()["error"]) == (404, "not found")
        assert "no armed fault has id '2'" in again.json()["reason"]
        assert (await http.get(f"{sim.prefix}/faults/3")).json()["fault"]["id"] == 3
        cleared = await http.delete(f"{sim.prefix}/faults")
        assert cleared.json() == {"cleared": 2}
        assert await statuses(sim, http, sim.target) == [200]
        assert (await listed(sim, http))["faults"] == []


@SIMULATORS
async def test_put_replaces_every_fault(sim: Simulator) -> None:
    """PUT /faults states the whole table: the old faults go, the new ones get fresh ids."""
    async with client(sim) as http:
        await http.post(f"{sim.prefix}/faults", json=sim.fault(times=None))
        replaced = await http.put(
            f"{sim.prefix}/faults", json=[sim.fault(sim.other), {**sim.fault(), "status": 500}]
        )
        assert replaced.status_code == 200
        assert [f["id"] for f in replaced.json()["faults"]] == [2, 3]
        assert await statuses(sim, http, sim.target, sim.target) == [500, 200]
        emptied = await http.put(f"{sim.prefix}/faults", json=[])
        assert emptied.json() == {"faults": []}


@SIMULATORS
async def test_clearing_one_hang_fault_releases_its_requests_only(sim: Simulator) -> None:
    """DELETE /faults/{id} of a hang fault drops the requests it holds, not another's."""
    hang = {"kind": "hang", "times": None}
    async with client(sim) as http:
        await http.post(
            f"{sim.prefix}/faults",
            json=[{**hang, sim.target_field: sim.target}, {**hang, sim.target_field: sim.other}],
        )
        first = asyncio.create_task(sim.request(http, sim.target))
        second = asyncio.create_task(sim.request(http, sim.other))
        for _ in range(500):
            if (await listed(sim, http))["hanging"] == 2:
                break
            await asyncio.sleep(0.01)
        await http.delete(f"{sim.prefix}/faults/1")
        with pytest.raises(httpx.RemoteProtocolError):
            await first
        assert not second.done()
        assert (await listed(sim, http))["hanging"] == 1
        await http.delete(f"{sim.prefix}/faults")
        with pytest.raises(httpx.RemoteProtocolError):
            await second


BAD_BODIES = [
    (b"{not json", 400, "the body is not JSON"),
    (b'"a string"', 422, "the body must be one fault"),
    (b'{"kind": "status"}', 422, "a status fault needs status"),
    (b'[{"kind": "drop"}, {"kind": "explode"}]', 422, "1.kind"),
    (b'{"kind": "drop", "count": 2}', 422, "count is now times"),
    (b'{"kind": "drop", "times": 0}', 422, "times"),
    (b"x" * 40_000, 413, "at most"),
]
ERRORS = {400: "bad request", 413: "body too large", 422: "invalid fault"}


@SIMULATORS
@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize(("body", "status", "reason"), BAD_BODIES)
async def test_a_bad_fault_is_the_same_4xx_with_a_reason_and_arms_nothing(
    sim: Simulator, method: str, body: bytes, status: int, reason: str
) -> None:
    """Both simulators refuse bad bodies with one status and ``{"error", "reason"}`` shape."""
    async with client(sim) as http:
        await http.post(f"{sim.prefix}/faults", json=sim.fault(times=None))
        response = await http.request(method, f"{sim.prefix}/faults", content=body)
        assert response.status_code == status
        assert set(response.json()) == {"error", "reason"}
        assert response.json()["error"] == ERRORS[status]
        assert reason in response.json()["reason"]
        assert [f["id"] for f in (await listed(sim, http))["faults"]] == [1]  # unchanged


@SIMULATORS
@pytest.mark.parametrize(
    ("path", "method", "allow"),
    [
        ("/faults", "PATCH", "GET, POST, PUT, DELETE"),
        ("/faults/1", "POST", "GET, DELETE"),
        ("/calls", "PUT", "GET, DELETE"),
    ],
)
async def test_an_unserved_http_method_is_a_json_405_naming_the_allowed(
    sim: Simulator, path: str, method: str, allow: str
) -> None:
    """A method a route does not serve is a 405 in the control routes' JSON, with Allow."""
    async with client(sim) as http:
        response = await http.request(method, sim.prefix + path, json={})
    assert (response.status_code, response.headers["allow"]) == (405, allow)
    assert response.json()["error"] == "method not allowed"


@SIMULATORS
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/faults"), ("POST", "/faults"), ("PUT", "/faults"), ("DELETE", "/faults"),
     ("DELETE", "/faults/1"), ("GET", "/calls")],
)  # fmt: skip
@pytest.mark.parametrize("host", ["203.0.113.9", "::ffff:10.0.0.1", "localhost"])
async def test_remote_clients_are_refused_on_every_fault_route(
    sim: Simulator, method: str, path: str, host: str
) -> None:
    """Anyone but a loopback IP gets 403 with a reason, on either simulator."""
    async with client(sim, host=host) as remote:
        response = await remote.request(method, sim.prefix + path, json=sim.fault())
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "loopback" in response.json()["reason"]
