"""The generic fault table: ids, first fault that fires, counting, seeding, clearing, hangs."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field, ValidationError
from starlette.types import Message

from bastion.simulators.faults.options import OptionTable
from bastion.simulators.faults.spec import BaseFaultSpec
from bastion.simulators.faults.table import FaultTable, seed_of


class PathFault(BaseFaultSpec):
    """A spec for a made-up simulator whose requests are named by path."""

    TARGET: ClassVar[str] = "path"
    OPTIONS: ClassVar[OptionTable] = {
        "fail": (frozenset(), frozenset({"code"})),
        "hang": (frozenset(), frozenset()),
    }

    kind: Literal["fail", "hang"]
    path: str = Field("*", min_length=1)
    code: int | None = None


def table(*faults: dict[str, Any], seed: int = 1) -> FaultTable[PathFault]:
    return FaultTable(PathFault, seed=seed, faults=faults)


def codes(faults: FaultTable[PathFault], *targets: str) -> list[int | None]:
    """The ``code`` of the fault that fires for each request (None: none fired)."""
    return [
        None if (fault := faults.take(target)) is None else fault.spec.code for target in targets
    ]


def test_ids_count_up_and_are_never_reused() -> None:
    """An id names one fault for the table's life, through clear and replace."""
    faults = table({"kind": "fail"}, {"kind": "fail"})
    assert [f.id for f in faults.faults] == [1, 2]
    faults.clear()
    assert faults.arm({"kind": "fail"}).id == 3
    assert [f.id for f in faults.replace([{"kind": "fail"}, {"kind": "fail"}])] == [4, 5]
    assert [f.id for f in faults.faults] == [4, 5]


def test_the_first_armed_fault_that_fires_wins_and_a_spent_one_is_dropped() -> None:
    """Faults are tried in arming order; one that has fired its times leaves the table."""
    faults = table(
        {"kind": "fail", "path": "/a", "code": 1, "times": 2},
        {"kind": "fail", "code": 2, "times": None},
    )
    assert codes(faults, "/a", "/b", "/a", "/a") == [1, 2, 1, 2]
    assert [f.spec.code for f in faults.faults] == [2]


def test_a_probability_that_draws_no_lets_the_next_fault_try() -> None:
    """A probabilistic fault that does not fire does not shadow the faults after it."""
    faults = table({"kind": "fail", "code": 1, "probability": 0.5}, {"kind": "fail", "code": 2})
    seen = codes(faults, *["/x"] * 20)
    first_miss = next(i for i, code in enumerate(seen) if code != 1)
    assert seen[first_miss] == 2  # fault 2 answers the first request fault 1 lets through
    assert set(seen[first_miss + 1 :]) == {1, None}


def test_every_request_is_counted_under_its_target_faulted_or_not() -> None:
    """calls() counts per target, by glob, including requests a fault answered."""
    faults = table({"kind": "fail", "path": "/v1/chat"})
    codes(faults, "/v1/chat", "/v1/chat", "/v1/models", "/v2/chat")
    assert faults.call_counts() == {"/v1/chat": 2, "/v1/models": 1, "/v2/chat": 1}
    assert (faults.calls(), faults.calls("/v1/*"), faults.calls("/v3/*")) == (4, 3, 0)
    faults.reset_calls()
    assert faults.calls() == 0


def pattern(faults: FaultTable[PathFault], target: str, draws: int = 40) -> list[bool]:
    return [faults.take(target) is not None for _ in range(draws)]


def test_a_seed_fires_the_same_requests_in_a_fresh_table() -> None:
    """Same seed, same faults armed in the same order: the same firings; another seed differs."""
    spec = {"kind": "fail", "probability": 0.5}
    first = pattern(table(spec, seed=7), "/x")
    assert first == pattern(table(spec, seed=7), "/x")
    assert first != pattern(table(spec, seed=8), "/x")
    assert True in first
    assert False in first


def test_each_fault_draws_from_its_own_rng_seeded_by_table_seed_and_id() -> None:
    """A fault's draws do not depend on how often another fault drew before it."""
    quiet = table({"kind": "fail", "path": "/a", "probability": 0.5}, seed=3)
    busy = table({"kind": "fail", "path": "/a", "probability": 0.5}, seed=3)
    spec = {"kind": "fail", "path": "/b", "probability": 0.5}
    quiet.arm(spec)
    busy.arm(spec)
    pattern(busy, "/a", draws=25)  # fault 1 draws 25 times in one table only
    assert pattern(quiet, "/b") == pattern(busy, "/b")
    assert seed_of(3, 2) == "bastion-faults/3/2"


def test_a_batch_with_one_bad_spec_arms_none_and_replace_keeps_the_old() -> None:
    """arm_all and replace validate the whole batch first, naming the bad one by position."""
    faults = table({"kind": "fail", "code": 1})
    bad = [{"kind": "fail"}, {"kind": "explode"}]
    with pytest.raises(ValidationError, match=r"1\.kind"):
        faults.arm_all(bad)
    with pytest.raises(ValidationError, match=r"1\.kind"):
        faults.replace(bad)
    assert [f.spec.code for f in faults.faults] == [1]


def test_disarm_clears_one_fault_by_id() -> None:
    """disarm(id) removes that fault only; an id not armed (or spent) is reported as False."""
    faults = table({"kind": "fail", "code": 1}, {"kind": "fail", "code": 2})
    assert faults.disarm(1) is True
    assert (faults.disarm(1), faults.disarm(99)) == (False, False)
    assert codes(faults, "/x", "/x") == [2, None]
    assert (faults.get(2), faults.disarm(2)) == (None, False)  # fired once: spent


def test_clear_reports_how_many_were_armed() -> None:
    """clear() says how many faults it disarmed, not counting spent ones."""
    faults = table({"kind": "fail"}, {"kind": "fail"}, {"kind": "fail", "times": None})
    faults.take("/x")
    assert faults.clear() == 2
    assert (faults.faults, len(faults)) == ([], 0)


def test_snapshot_shows_each_fault_with_its_counters() -> None:
    """A row: id, the options set, times (even None), remaining and fired; then calls, hangs."""
    faults = table({"kind": "fail", "code": 7, "times": None})
    faults.take("/x")
    assert faults.snapshot() == {
        "faults": [
            {
                "id": 1,
                "kind": "fail",
                "path": "*",
                "code": 7,
                "times": None,
                "remaining": None,
                "fired": 1,
            }
        ],
        "calls": {"/x": 1},
        "hanging": 0,
    }


async def never_disconnects() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_disarming_a_hang_fault_releases_its_requests_only() -> None:
    """disarm(id) lets go of that fault's held requests; clear() lets go of the rest."""
    faults = table({"kind": "hang", "times": None}, {"kind": "hang", "times": None})
    first = asyncio.create_task(faults.hangs.wait(never_disconnects, 1))
    second = asyncio.create_task(faults.hangs.wait(never_disconnects, 2))
    for _ in range(100):
        if faults.hanging == 2:
            break
        await asyncio.sleep(0.001)
    faults.disarm(1)
    assert await first is False  # released, not disconnected
    assert not second.done()
    faults.clear()
    assert await second is False
    assert faults.hanging == 0
