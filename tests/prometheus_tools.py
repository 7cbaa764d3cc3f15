"""promtool and amtool for the deploy tests: Debian's binaries, required and never skipped.

``make test`` installs them (scripts/system-packages.sh); a test run without them fails at once
with the command to run. The same SYSTEM_PACKAGES_* variables as the script move them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"

_TOOLS = {
    "promtool": ("SYSTEM_PACKAGES_PROMTOOL", "/usr/bin/promtool", "prometheus"),
    "amtool": ("SYSTEM_PACKAGES_AMTOOL", "/usr/bin/amtool", "prometheus-alertmanager"),
}


def tool(name: str) -> str:
    """The path of ``promtool`` or ``amtool``; fails the test with the install command if absent."""
    variable, default, package = _TOOLS[name]
    path = Path(os.environ.get(variable, default))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"{name} is missing at {path}: run sudo apt-get install -y {package} "
            "(make test installs it)",
            pytrace=False,
        )
    return str(path)


def run(
    name: str, *args: str | Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the tool with ``args``; returns its status and output, never raises on failure."""
    return subprocess.run(
        [tool(name), *map(str, args)],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
