"""promtool, amtool, Prometheus and Alertmanager for the deploy tests: Debian's binaries,
required and never skipped.

``make test`` installs them (scripts/system-packages.sh); a test run without them fails at once
with the command to run. The same SYSTEM_PACKAGES_* variables as the script move them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(argv: list[str], url: str, *, quiet: bool = True) -> Iterator[httpx.Client]:
    """Prometheus or Alertmanager started with ``argv`` and listening at ``url``: a client once
    ``/-/ready`` answers 200 (fails with the server's log if it dies first); stopped after and,
    with ``quiet``, the test fails if the server logged an error meanwhile."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=url, timeout=2) as client:
            for _ in range(300):
                assert process.poll() is None, process.communicate()[1].decode()
                try:
                    if client.get("/-/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                threading.Event().wait(0.05)
            yield client
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert not quiet or b"level=error" not in stderr, stderr.decode()


def prometheus_argv(
    workdir: Path, target: str, *, alertmanager: str | None = None
) -> tuple[list[str], str]:
    """Debian's Prometheus scraping ``target`` (host:port) and evaluating every deploy rule, both
    every second, alerting ``alertmanager`` (host:port) when given: its argv and its URL."""
    tool("promtool")  # the same package; fails with the install command when it is missing
    config = workdir / "prometheus.yml"
    rules = "\n".join(f"  - {path}" for path in sorted((DEPLOY / "prometheus").glob("*.yml")))
    alerting = (
        f"alerting:\n  alertmanagers: [{{static_configs: [{{targets: ['{alertmanager}']}}]}}]\n"
        if alertmanager
        else ""
    )
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files:\n{rules}\n"
        f"{alerting}"
        "scrape_configs:\n"
        f"  - job_name: bastion\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    url = f"http://127.0.0.1:{free_port()}"
    binary = os.environ.get("SYSTEM_PACKAGES_PROMETHEUS", "/usr/bin/prometheus")
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
        "--log.level=warn",
    ]
    return argv, url
