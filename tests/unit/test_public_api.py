"""The package's public face is complete, sorted and importable; adapters own httpx."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import bastion

SRC = Path(bastion.__file__).parent


def test_all_is_sorted_and_every_name_is_ours() -> None:
    """`from bastion import *` gives sorted names, each defined in a bastion module."""
    assert bastion.__all__ == sorted(bastion.__all__)
    namespace: dict[str, object] = {}
    exec("from bastion import *", namespace)  # noqa: S102  (the import users write)
    assert sorted(k for k in namespace if not k.startswith("__")) == bastion.__all__
    for name in bastion.__all__:
        assert getattr(bastion, name).__module__.startswith("bastion."), name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_adapters_import_httpx() -> None:
    """External calls go through resilience.call: httpx lives in the adapters and the edges."""
    allowed = {
        "exchange/deribit.py",  # the Deribit adapter
        "tools/news.py",  # the news feed adapter; its requests run inside the choke point
        "notify/webhook.py",  # the alert webhook adapter; its posts run inside the choke point
        "simulators/faults/responses.py",  # a simulator's dropped connection is httpx's own error
        "build.py",  # wires the in-process transport
        "api/client.py",  # asks the local console for status
        "ops/operator/prometheus.py",  # the operator's Prometheus query; inside the choke point
        "ops/operator/silences.py",  # the operator's Alertmanager silences; inside the choke point
    }
    offenders = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if "httpx" in _imports(p) and str(p.relative_to(SRC)) not in allowed
    )
    assert offenders == []


def test_only_the_llm_adapters_import_the_provider_sdks() -> None:
    """An SDK call outside its adapter would skip the budget, the breaker and the ledger."""
    owners = {"openai": {"llm/openai.py"}, "anthropic": {"llm/anthropic.py"}}
    for sdk, allowed in owners.items():
        importers = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if sdk in _imports(p)}
        assert importers == allowed, sdk


def test_the_cli_starts_without_importing_the_provider_sdks() -> None:
    """The SDKs take seconds to import; a run without an LLM (and its first order) never pays."""
    probe = "import sys, bastion.cli; print(sorted({'openai', 'anthropic'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
