"""Seconds from `bastion run` to its first order on the paper exchange; prints JSON.

The acceptance figure of issue #2 ("within 10 s the reference agent has placed an order") as a
measurement, not a test assertion. Each run spawns `python -m bastion run` in a scratch data
directory with the default settings (2 s interval) and polls the console's /api/status. The
baseline, in the same process and interleaved with the runs (import, run, import, run, ...), is
the start-up of `python -c "import bastion.cli"`: what any command costs before doing anything.
Figures are min/median/max over ``--runs``.

Usage: ``.venv/bin/python benchmarks/time_to_first_order.py [--runs N]``
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import httpx
import orjson

from _support import free_port, spread

PATIENCE_S = 60.0


def _import_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import bastion.cli"], check=True)
    return time.perf_counter() - t0


def _first_order_seconds() -> tuple[float, float]:
    """(seconds to the console URL, seconds to the first order) for one fresh run."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        env.update(BASTION_DATA_DIR=tmp, BASTION_CONSOLE_PORT=str(free_port()))
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bastion", "run"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert proc.stdout is not None
            url = ""
            for line in proc.stdout:
                found = re.search(r"Console:\s+(http://\S+)", line)
                if found:
                    url = found.group(1)
                    break
            console_s = time.perf_counter() - t0
            base, token = url.split("/?token=")
            headers = {"Authorization": f"Bearer {token}"}
            while time.perf_counter() - t0 < PATIENCE_S:
                status = httpx.get(f"{base}/api/status", headers=headers).json()
                if status["orders_sent"] >= 1:
                    return console_s, time.perf_counter() - t0
                time.sleep(0.02)
            raise RuntimeError("no order within the patience window")
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=PATIENCE_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    imports: list[float] = []
    runs: list[tuple[float, float]] = []
    for _ in range(args.runs):  # interleaved: baseline, run, baseline, run, ...
        imports.append(_import_seconds())
        runs.append(_first_order_seconds())
    result = {
        "settings": {"python": sys.version.split()[0], "runs": args.runs, "store": "sqlite"},
        "seconds_to_console_url": spread([r[0] for r in runs], 3),
        "seconds_to_first_order": spread([r[1] for r in runs], 3),
        "baseline_import_seconds": spread(imports, 3),
        "first_order_in_import_times": spread(
            [r[1] / b for r, b in zip(runs, imports, strict=True)], 2
        ),
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
