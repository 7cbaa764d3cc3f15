"""Wall time of `bastion kill` and `bastion resume` against a bare `import typer`; prints JSON.

The goal of issue #10: `bastion kill`, the command a person types when something is wrong,
completes within 5x the start of an interpreter that only imports Typer. Each round runs, one
after the other, the baseline `python -c "import typer"`, `python -m bastion kill --reason
bench` and `python -m bastion resume`, so all three share the drift of the machine; the ratios
(``*_ratio``) are of medians, and of each round's own pair (``*_ratio_per_round``). The data
directory is a fresh temporary one whose SQLite store is created (migrated to head) before the
first round, as on any deployment that has run once; no exchange URL is set, so kill trips the
flag and records the halt without cancelling over the network. ``run_all.py`` picks this script
up with the others.

Measure another checkout with ``PYTHONPATH=/that/checkout/src``: the commands run in children
that inherit it, and ``source`` says which package was measured (``src`` of this checkout, or
another).

Usage: ``.venv/bin/python benchmarks/cli_start.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

import bastion
from _support import spread, sqlite_settings
from bastion.store import Store

GOAL_RATIO = 5.0


def _seconds(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one child; CPU (user + system) holds up better on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _source() -> str:
    """Which package was measured: this checkout's ``src`` (relative, so no path of the machine
    lands in the committed results), or "another checkout" under ``PYTHONPATH``."""
    measured = Path(bastion.__file__).resolve().parent.parent
    here = Path(__file__).resolve().parent.parent
    return str(measured.relative_to(here)) if measured.is_relative_to(here) else "another checkout"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        url = f"sqlite:///{data / 'bastion.db'}"
        with Store.open(url) as store:
            store_settings = sqlite_settings(store.engine)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        env |= {"BASTION_DATA_DIR": str(data), "BASTION_CONSOLE_PORT": "0"}
        commands = {
            "baseline_import_typer": ["-c", "import typer"],
            "kill": ["-m", "bastion", "kill", "--reason", "bench"],
            "resume": ["-m", "bastion", "resume"],
        }
        _seconds(commands["kill"], env)  # warm the bytecode caches, then undo
        _seconds(commands["resume"], env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                wall, used = _seconds(command, env)
                times[name].append(wall)
                cpu[name].append(used)
    base = times["baseline_import_typer"]
    result = {
        "settings": {
            "python": sys.version.split()[0],
            "source": _source(),
            "rounds": args.rounds,
            "order_in_round": list(commands),
            "store": "sqlite, at head before the first round",
            **store_settings,
            "exchange": "none (in-process paper; kill cancels nothing remotely)",
            "goal_ratio": GOAL_RATIO,
        },
        **{f"{name}_ms": spread([s * 1000 for s in times[name]]) for name in commands},
        **{
            f"{name}_ratio": round(statistics.median(times[name]) / statistics.median(base), 2)
            for name in ("kill", "resume")
        },
        **{
            f"{name}_ratio_per_round": spread(
                [t / b for t, b in zip(times[name], base, strict=True)], digits=2
            )
            for name in ("kill", "resume")
        },
    }
    result |= {f"{name}_cpu_ms": spread([s * 1000 for s in cpu[name]]) for name in commands}
    result |= {
        f"{name}_cpu_ratio": round(
            statistics.median(cpu[name]) / statistics.median(cpu["baseline_import_typer"]), 2
        )
        for name in ("kill", "resume")
    }
    result["kill_meets_goal"] = result["kill_ratio"] <= GOAL_RATIO
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
