"""SIGKILL in the middle of a step, as processes: the exchange and two runs, one after the other.

``bastion exchange serve`` runs on its own; a ``bastion run`` trades against it. Once its first
step has completed, a delay is armed on ``private/sell`` so the next sale reaches the exchange
and waits there; the run is killed while it waits for the answer. The exchange then takes the
order (its client is gone, as when an answer is lost). The next ``bastion run`` on the same data
directory must adopt that order by its label, send no second one, and the killed run's trace
must hold every line of its completed steps.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e_support import PATIENCE_S, bastion, clean_env, exchange_served, until

from bastion.runtime.lock import read_holder

AUTH = ("bastion-paper", "paper-secret")  # the run's default paper credentials


@pytest.fixture
def exchange(free_port: int, tmp_path: Path) -> Iterator[str]:
    with exchange_served(free_port, tmp_path / "exchange-data") as base:
        yield base


def _rpc(base: str, method: str, **params: Any) -> Any:
    answer = httpx.get(f"{base}/api/v2/{method}", params=params, auth=AUTH, timeout=10).json()
    return answer["result"]


def _trace_lines(data_dir: Path, run_id: str) -> list[dict[str, Any]]:
    paths = list((data_dir / "traces").rglob(f"{run_id}.ndjson"))
    if not paths:
        return []
    lines = paths[0].read_bytes().split(b"\n")
    parsed = []
    for k, line in enumerate(lines):
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            assert k == len(lines) - 1, f"line {k + 1} of the trace is torn"  # the last only
    return parsed


def test_a_run_killed_mid_send_restarts_without_a_duplicate_or_a_lost_trace_line(
    exchange: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = clean_env(
        data_dir,
        BASTION_EXCHANGE_URL=exchange,
        BASTION_CONSOLE_PORT="0",
        BASTION_LOOP_INTERVAL_SECONDS="0.5",
    )
    victim = subprocess.Popen(
        [sys.executable, "-m", "bastion", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        holder = until(lambda: read_holder(data_dir), "the run to record itself")
        run_id = holder.run_id

        def first_sale_done() -> bool:
            lines = _trace_lines(data_dir, run_id)
            kinds = [(line["kind"], line.get("step")) for line in lines]
            return ("order_sent", 1) in kinds and ("step_completed", 1) in kinds

        until(first_sale_done, "step 1 to sell and complete")
        armed = httpx.post(
            f"{exchange}/_paper/faults",
            json={"method": "private/sell", "kind": "delay", "seconds": 2, "times": 1},
            timeout=10,
        )
        assert armed.status_code < 300, armed.text

        def second_sale_waiting() -> bool:
            calls = httpx.get(f"{exchange}/_paper/calls", timeout=10).json()["calls"]
            return bool(calls.get("private/sell", 0) >= 2)

        until(second_sale_waiting, "the second sale to reach the exchange")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=PATIENCE_S)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()

    def sells() -> list[dict[str, Any]]:
        resting = _rpc(exchange, "private/get_open_orders_by_currency", currency="BTC")
        closed = _rpc(
            exchange,
            "private/get_order_history_by_currency",
            currency="BTC",
            include_unfilled="true",
        )
        return [o for o in [*resting, *closed] if o["direction"] == "sell"]

    until(lambda: len(sells()) == 2, "the exchange to take the sale whose answer was lost")
    lost = next(o for o in sells() if not o["label"].endswith("-1-0"))

    again = bastion("run", "--steps", "1", env=env)

    assert again.returncode == 0, again.stdout + again.stderr
    assert f"Recovered from run {run_id}" in again.stdout
    assert f"adopted {lost['order_id']} ({lost['label']}): was being sent" in again.stdout
    assert len(sells()) == 2, "the restart sent no second sale"
    assert (
        len(_rpc(exchange, "private/get_order_state_by_label", currency="BTC", label=lost["label"]))
        == 1
    )

    lines = _trace_lines(data_dir, run_id)
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1)), "no line lost"
    completed = {line["step"] for line in lines if line["kind"] == "step_completed"}
    assert 1 in completed
    for step in completed:
        kinds = [line["kind"] for line in lines if line.get("step") == step]
        assert kinds[0] == "observation", (step, kinds)
        assert kinds[-1] == "step_completed", (step, kinds)
