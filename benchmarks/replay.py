"""Steps replayed per second by the replay audit for the rule-based seller; prints JSON.

A run of ``--steps`` steps is recorded first with the real ``Runner`` (the options seller, the
in-process paper exchange, a SimClock, the NDJSON trace in a scratch directory). Then, in
alternating rounds (``--repeats`` of each):

* **replay**: ``Replayer.replay([trace])`` as ``bastion replay`` runs it: read and group the
  trace, rebuild each observation, ``decide()`` on a SimClock, review again, compare;
* **replay of a read trace**: the same without reading the file (``replay_run`` on the grouped
  run), so the parse cost and the per-step cost can be told apart;
* **baseline**: bare ``decide()`` calls on the same observations, already rebuilt: what the
  agent itself costs, which no replay can go below.

Rates are min/median/max over the rounds, with the per-round ratio of baseline to replay (how
many bare decides one replayed step costs) and the settings they ran under. The goal in issue
11 is 10,000 steps/s for the rule-based agent, end to end.

Usage: ``.venv/bin/python benchmarks/replay.py [--steps N] [--repeats N]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from _support import interleaved, spread
from bastion.agent import Context
from bastion.build import build_agent, build_replayer
from bastion.clock import SimClock
from bastion.config import load_settings
from bastion.runner import Runner
from bastion.runtime.payloads import instruments_from_payload, observation_from_payload
from bastion.trace.replay import read_run

GOAL_STEPS_PER_SECOND = 10_000


async def record(data_dir: Path, steps: int, interval: float) -> Path:
    """A real run of the seller; its trace."""
    settings = load_settings(data_dir=data_dir, console_port=0, loop_interval_seconds=interval)
    runner = Runner(settings, clock=SimClock(start=1_800_000_000), console=False)
    try:
        await runner.run(max_steps=steps)
    finally:
        await runner.aclose()
    return runner.trace.path


async def measure(steps: int, repeats: int, interval: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        path = await record(data_dir, steps, interval)
        settings = load_settings(data_dir=data_dir, loop_interval_seconds=interval)
        replayer = build_replayer(settings)
        run = read_run(path)
        observations = []
        known: dict[str, Any] = {}
        for step in run.steps:
            if step.observation is not None:
                known = {**known, **instruments_from_payload(step.observation)}
                observations.append(observation_from_payload(step.observation, known))
        agent = build_agent(settings)
        clock = SimClock(start=1_800_000_000)
        check = await replayer.replay([path])
        if check.exit_code != 0 or check.steps_replayed != steps:
            raise SystemExit(f"the recorded run does not replay cleanly: {check.to_dict()}")

        async def full() -> float:
            t0 = time.perf_counter()
            report = await replayer.replay([path])
            return report.steps_replayed / (time.perf_counter() - t0)

        async def parsed() -> float:
            t0 = time.perf_counter()
            result = await replayer.replay_run(run)
            return result.replayed / (time.perf_counter() - t0)

        async def bare() -> float:
            t0 = time.perf_counter()
            for n, obs in enumerate(observations, start=1):
                await agent.decide(obs, Context("bench", n, clock, dry_run=False))
            return len(observations) / (time.perf_counter() - t0)

        await full()  # warm every path before the first measured round
        await bare()
        baseline, replayed = await interleaved(repeats, bare, full)
        baseline_2, replayed_read = await interleaved(repeats, bare, parsed)
        size = path.stat().st_size
        sent = sum(1 for s in run.steps if s.decision and s.decision.get("intents"))
    return {
        "steps_replayed_per_second": spread(replayed, 0),
        "steps_replayed_per_second_trace_already_read": spread(replayed_read, 0),
        "baseline_bare_decide_per_second": spread(baseline + baseline_2, 0),
        "replay_cost_in_bare_decides_ratio": spread(
            [b / r for b, r in zip(baseline, replayed, strict=True)], 2
        ),
        "goal_steps_per_second": GOAL_STEPS_PER_SECOND,
        "goal_met_median": sorted(replayed)[len(replayed) // 2] >= GOAL_STEPS_PER_SECOND,
        "settings": {
            "agent": "options_seller 1.0.0",
            "llm": "recorded (none asked: rule-based)",
            "steps_per_round": steps,
            "repeats": repeats,
            "recorded_loop_interval_seconds": interval,
            "steps_with_intents": sent,
            "trace_bytes_per_step": round(size / steps),
            "tickers_per_observation": len(observations[-1].tickers),
            "clock": "SimClock",
        },
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps recorded and replayed")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of each side")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="the recorded run's loop interval (s)"
    )
    args = parser.parse_args()
    result = {
        "python": sys.version.split()[0],
        "replay_rule_based": await measure(args.steps, args.repeats, args.interval),
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    asyncio.run(main())
