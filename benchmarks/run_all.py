"""Run every benchmark script and write their JSON, each under its name, to one file.

A benchmark is any ``benchmarks/*.py`` that is not a helper (a name starting with ``_``) and not
this runner or ``readme_table.py``; a new script joins by being there. Each runs on its own, one
after another (they would skew each other on a shared machine), with this interpreter, and must
print one JSON document on stdout; its stderr passes through. A script that fails or prints no
JSON is recorded under ``failed`` with the reason, and the runner exits 1 after writing the rest.

Usage: ``.venv/bin/python benchmarks/run_all.py [--out build/bench.json] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOT_BENCHMARKS = {"run_all", "readme_table"}
TIMEOUT_SECONDS = 900


def discover() -> list[Path]:
    """The benchmark scripts, by name."""
    return sorted(
        path
        for path in HERE.glob("*.py")
        if not path.name.startswith("_") and path.stem not in NOT_BENCHMARKS
    )


def run(path: Path) -> tuple[object | None, str | None, float]:
    """(its JSON, None) or (None, why it failed), and the wall seconds it took."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT_SECONDS} s", time.monotonic() - started
    seconds = time.monotonic() - started
    if done.returncode != 0:
        return None, f"exit status {done.returncode}", seconds
    try:
        return json.loads(done.stdout), None, seconds
    except json.JSONDecodeError as exc:
        return None, f"stdout is not one JSON document ({exc})", seconds


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args],  # noqa: S607 - whichever git is on PATH, as a developer would
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.rstrip("\n")
    except (OSError, subprocess.CalledProcessError):
        return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench.json")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names to run")
    args = parser.parse_args()
    scripts = [p for p in discover() if args.only is None or p.stem in args.only]
    report: dict[str, object] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        # what the measured tree held beyond that commit: other work in progress shows here
        "git_modified": _git("status", "--porcelain", "--untracked-files=no").splitlines(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    results: dict[str, object] = {}
    seconds: dict[str, float] = {}
    failed: dict[str, str] = {}
    for path in scripts:
        sys.stderr.write(f"run_all: {path.stem} ...\n")
        sys.stderr.flush()
        result, error, took = run(path)
        seconds[path.stem] = round(took, 1)
        if error is None:
            results[path.stem] = result
        else:
            failed[path.stem] = error
            sys.stderr.write(f"run_all: {path.stem} failed: {error}\n")
    report.update(benchmarks=results, wall_seconds=seconds, failed=failed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    sys.stderr.write(f"run_all: wrote {args.out}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
