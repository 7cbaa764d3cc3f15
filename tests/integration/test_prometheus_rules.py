"""deploy/prometheus: `promtool check rules` and `promtool test rules` pass, and can fail."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from bastion.telemetry.metrics import Metrics
from prometheus_tools import DEPLOY, run

RULES = sorted((DEPLOY / "prometheus").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))


def test_the_rule_files_are_there() -> None:
    """Recording, SLO and page-on rules, each with its promtool test file."""
    assert [p.name for p in RULES] == [
        "bastion-page-on.yml",
        "bastion-recording.yml",
        "bastion-slo-alerts.yml",
    ]
    assert [p.name for p in RULE_TESTS] == ["page-on.test.yml", "slo-alerts.test.yml"]


def test_promtool_check_rules_passes() -> None:
    """Every rule parses, its PromQL included; no duplicate rules (promtool's default lint)."""
    done = run("promtool", "check", "rules", *RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULES)


def test_promtool_test_rules_passes() -> None:
    """The alerts fire when and only when the synthetic streams in tests/ say they should."""
    done = run("promtool", "test", "rules", *RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_a_wrong_expectation_makes_promtool_test_rules_fail(tmp_path: Path) -> None:
    """The unit tests can fail: expecting the kill-switch page before its `for` is caught."""
    copy = tmp_path / "prometheus"
    shutil.copytree(DEPLOY / "prometheus", copy)
    test_file = copy / "tests" / "page-on.test.yml"
    firing = "eval_time: 6m\n        alertname: BastionKillSwitchActive"
    text = test_file.read_text()
    assert text.count(firing) == 1
    test_file.write_text(text.replace(firing, firing.replace("6m", "5m")))
    done = run("promtool", "test", "rules", test_file)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "FAILED" in output
    assert "alertname: BastionKillSwitchActive, time: 5m" in output


def test_bad_promql_makes_promtool_check_rules_fail(tmp_path: Path) -> None:
    """The check can fail: an unclosed parenthesis in a rule is reported."""
    broken = tmp_path / "broken.yml"
    source = (DEPLOY / "prometheus" / "bastion-page-on.yml").read_text()
    broken.write_text(source.replace("max by (job, instance) (", "max by (job, instance) ((", 1))
    done = run("promtool", "check", "rules", broken)
    assert done.returncode != 0
    assert "unclosed left parenthesis" in done.stdout + done.stderr


def _exported() -> set[str]:
    """Every sample name Bastion's registry exposes."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def test_the_rules_read_only_metrics_bastion_exports() -> None:
    """A renamed or dropped metric breaks this, not silently the alerts in production."""
    used = {
        name
        for path in RULES
        for name in re.findall(r"(?<![:\w])bastion_\w+(?![:\w])", path.read_text())
    }
    assert used, "the pattern found no metric"
    assert used - _exported() == set()
