"""deploy/grafana/bastion.json: generated, on Bastion's metrics, clean by dashboard-linter's rules.

grafana/dashboard-linter is a Go binary that no package index here ships, so its rules are
mirrored: a ``datasource`` variable (template-datasource-rule), every panel and target on it
(panel-datasource-rule), a title and a description (panel-title-description-rule), a unit
(panel-units-rule), ``$__rate_interval`` in every rate (target-rate-interval-rule), a ``job``
matcher in every selector (target-job-rule) and PromQL that parses (target-promql-rule; here
by promtool, each expression wrapped as a recording rule).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from bastion.telemetry.metrics import Metrics
from prometheus_tools import DEPLOY, run

GENERATOR = DEPLOY / "grafana" / "generate.py"
DASHBOARD = DEPLOY / "grafana" / "bastion.json"
NAME = re.compile(r"(?<![\w:$])(?:bastion_\w+|job:[\w:]+)")
"""A metric or recording-rule name in PromQL (not a label, not a $variable)."""
SUFFIXES = {"counter": [""], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
"""What each type adds to its ``# TYPE`` name (a counter's already ends in ``_total``)."""
UNITS = {"none", "short", "s", "ops", "percentunit", "currencyUSD"}
"""Grafana unit ids this dashboard may use; an id Grafana does not know shows raw numbers."""


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bastion_dashboard", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that queries (rows only group)."""
    return (p for p in dashboard["panels"] if p["type"] != "row")


def _targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    return ((p, t) for p in _panels(dashboard) for t in p["targets"])


def _exported() -> set[str]:
    """Every sample name in a real registry's exposition, from its ``# TYPE`` lines."""
    names: set[str] = set()
    for line in Metrics().render().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.update(name + suffix for suffix in SUFFIXES[kind])
    return names


def _recorded() -> set[str]:
    """Every recording rule's name in deploy/prometheus/."""
    return {
        rule["record"]
        for path in sorted((DEPLOY / "prometheus").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def test_the_committed_dashboard_is_what_the_generator_writes() -> None:
    """bastion.json is generated: edit generate.py and run it, never the JSON."""
    assert DASHBOARD.read_text() == _generator().render(), (
        "deploy/grafana/bastion.json is stale: run make dashboard"
    )


def test_the_generators_check_mode_sees_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--check exits 0 on the committed file and 1 on an edited one."""
    generator = _generator()
    assert generator.main(["--check"]) == 0
    stale = tmp_path / "bastion.json"
    stale.write_text(DASHBOARD.read_text().replace('"Bastion"', '"Edited"'))
    monkeypatch.setattr(generator, "OUTPUT", stale)
    assert generator.main(["--check"]) == 1


def test_every_query_names_a_metric_bastion_exports_or_a_recording_rule(
    dashboard: dict[str, Any],
) -> None:
    """A renamed metric breaks this test, not a panel that silently shows 'No data'."""
    known = _exported() | _recorded()
    for panel, target in _targets(dashboard):
        names = set(NAME.findall(target["expr"]))
        assert names, f"{panel['title']}: no Bastion metric in {target['expr']}"
        assert names <= known, f"{panel['title']}: {sorted(names - known)} are not exported"


def test_it_has_the_panels_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    """Cycles, phases, gates, tokens and cost, breakers, health, trading state, burn rates,
    equity and daily P&L, steps and latency, orders: each read by some panel."""
    used = {name for _, t in _targets(dashboard) for name in NAME.findall(t["expr"])}
    wanted = {
        "bastion_cycles_total",
        "bastion_cycle_duration_seconds_bucket",
        "bastion_phase_duration_seconds_bucket",
        "bastion_quality_gates_total",
        "bastion_llm_tokens_total",
        "bastion_llm_cost_usd_total",
        "bastion_breaker_state",
        "bastion_health_status",
        "bastion_trading_state",
        "bastion_kill_switch_active",
        "job:bastion_step_errors:ratio_rate1h",
        "job:bastion_step_slow:ratio_rate5m",
        "bastion_account_equity",
        "bastion_account_daily_pnl",
        "bastion_steps_total",
        "bastion_step_duration_seconds_bucket",
        "bastion_orders_total",
    }
    assert wanted - used == set()


def test_it_has_a_prometheus_datasource_variable_and_every_panel_uses_it(
    dashboard: dict[str, Any],
) -> None:
    """template-datasource-rule and panel-datasource-rule: no hard-coded data source."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    reference = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels(dashboard):
        assert panel["datasource"] == reference, panel["title"]
        assert all(t["datasource"] == reference for t in panel["targets"]), panel["title"]


def test_every_panel_has_a_title_a_description_a_unit_and_lettered_targets(
    dashboard: dict[str, Any],
) -> None:
    """panel-title-description-rule and panel-units-rule; refIds unique within a panel."""
    titles = [p["title"] for p in _panels(dashboard)]
    assert len(titles) == len(set(titles))
    for panel in _panels(dashboard):
        assert panel["title"].strip(), panel
        assert panel["description"].strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert all(refs), panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert isinstance(panel["options"], dict), f"{panel['title']}: options must be set"


def test_every_rate_uses_the_rate_interval_and_every_selector_the_job(
    dashboard: dict[str, Any],
) -> None:
    """target-rate-interval-rule and target-job-rule."""
    for panel, target in _targets(dashboard):
        expr = target["expr"]
        ranges = re.findall(r"\[([^\]]*)\]", expr)
        assert set(ranges) <= {"$__rate_interval"}, f"{panel['title']}: {expr}"
        assert len(ranges) == len(re.findall(r"\b(?:rate|irate|increase)\(", expr))
        for name in NAME.finditer(expr):
            after = expr[name.end() :]
            assert after.startswith('{job=~"$job"'), f"{panel['title']}: {name.group()}"
    job = next(v for v in dashboard["templating"]["list"] if v["name"] == "job")
    assert NAME.findall(job["query"]) == ["bastion_steps_total"]


def _as_rules(dashboard: dict[str, Any], path: Path) -> int:
    """Each target's expression as a recording rule in ``path``, variables filled in."""
    rules = [
        {
            "record": f"dashboard:panel{panel['id']}:{target['refId']}",
            "expr": target["expr"].replace("$__rate_interval", "5m").replace("$job", ".*"),
        }
        for panel, target in _targets(dashboard)
    ]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return len(rules)


def test_promtool_accepts_every_query(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """target-promql-rule: each expression, wrapped as a recording rule, passes check rules."""
    rules = tmp_path / "dashboard.yml"
    count = _as_rules(dashboard, rules)
    done = run("promtool", "check", "rules", rules)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {count} rules found" in done.stdout


def test_the_promql_check_can_fail(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """The wrapper does not hide a broken query: a missing parenthesis is reported."""
    broken = json.loads(json.dumps(dashboard))
    target = next(_targets(broken))[1]
    target["expr"] = "max(" + target["expr"]
    rules = tmp_path / "broken.yml"
    _as_rules(broken, rules)
    done = run("promtool", "check", "rules", rules)
    assert done.returncode != 0
    assert "unclosed left parenthesis" in done.stdout + done.stderr
