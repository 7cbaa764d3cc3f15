"""`bastion run` with the LLM seller, as a process, against `bastion llm fake-server`.

What an operator does from the README: start the fake server, run the LLM agent for a few
steps. The run must decide through the model, record each answer, bill the ledger, and leave a
budget `bastion budget` can read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
from e2e_support import PATIENCE_S, wait_for

HOLD = json.dumps(
    {"action": "hold", "instrument": None, "amount": None, "limit_price": None, "rationale": "e2e"}
)
MODEL = "gpt-4o-2024-08-06"


def test_the_llm_agent_runs_against_the_fake_server(free_port: int, tmp_path: Path) -> None:
    serve = ["llm", "fake-server", "--port", str(free_port), "--default-reply", HOLD]
    fake = subprocess.Popen(
        [sys.executable, "-m", "bastion", *serve],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BASTION_")},
        "BASTION_DATA_DIR": str(tmp_path / "data"),
        "BASTION_CONSOLE_PORT": "0",
        "BASTION_LOOP_INTERVAL_SECONDS": "0.5",
        "BASTION_AGENT": "llm_options_seller",
        "BASTION_LLM_PROVIDER": "openai",
        "BASTION_LLM_BASE_URL": f"http://127.0.0.1:{free_port}/v1",
        "BASTION_LLM_MODEL": MODEL,
        "BASTION_STEP_TIMEOUT_SECONDS": "300",
    }
    try:
        wait_for(f"http://127.0.0.1:{free_port}/v1/models", fake)
        run = subprocess.run(
            [sys.executable, "-m", "bastion", "run", "--steps", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=PATIENCE_S * 2,
            check=False,
        )
        budget = subprocess.run(
            [sys.executable, "-m", "bastion", "budget", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=PATIENCE_S,
            check=False,
        )
    finally:
        fake.terminate()
        fake.communicate(timeout=10)
    assert run.returncode == 0, run.stderr
    assert "completed after 2 steps" in run.stdout
    assert "HTTP Request" not in run.stderr + run.stdout  # the SDK's per-request log is quiet
    (trace,) = (tmp_path / "data" / "traces").rglob("*.ndjson")
    lines = [orjson.loads(line) for line in trace.read_bytes().splitlines()]
    calls = [line for line in lines if line["kind"] == "llm_call"]
    assert [(c["model"], c["tier"]) for c in calls] == [(MODEL, "primary")] * 2
    decisions = [line["rationale"] for line in lines if line["kind"] == "decision"]
    assert decisions == ["hold: e2e", "hold: e2e"]
    usage = orjson.loads(budget.stdout)
    assert usage["agent"] == "llm_options_seller"
    assert usage["invocations_today"] == 2
    assert usage["tokens_used_today"] == sum(c["tokens_in"] + c["tokens_out"] for c in calls)
