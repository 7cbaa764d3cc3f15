"""What the process-level tests share: running `bastion` as a user would, with patience."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PATIENCE_S = 60.0
"""A liveness bound for a process to answer, not a performance figure: a loaded box never flakes."""


def clean_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The caller's environment without any BASTION_* from the shell, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(BASTION_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    env.update(settings)
    return env


def bastion(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``bastion ARGS`` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bastion", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        check=False,
    )
