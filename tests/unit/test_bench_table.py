"""README's performance table is what benchmarks/readme_table.py renders from docs/bench.json."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _readme_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "readme_table", ROOT / "benchmarks" / "readme_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_rendered_from_the_committed_results() -> None:
    """README.md holds exactly the table the script renders from docs/bench.json."""
    table = _readme_table()
    expected = table.render(table.load(ROOT / "docs" / "bench.json"))
    assert table.readme_block((ROOT / "README.md").read_text()) == expected, (
        "README.md's performance table is stale: run "
        "`.venv/bin/python benchmarks/readme_table.py --write`"
    )


def test_an_unknown_or_failed_benchmark_still_gets_a_row() -> None:
    """A script without a formatter shows its ratios; a failed one shows why it failed."""
    table = _readme_table()
    results = {
        "benchmarks": {"newcomer": {"start": {"ratio": {"min": 1.5, "median": 2.0, "max": 2.5}}}},
        "failed": {"broken": "exit status 1"},
    }
    rendered = table.render(results)
    assert "| `newcomer` | see the results file | – | start.ratio: 2.00 (1.50–2.50) |" in rendered
    assert "| `broken` | – | – | – | failed: exit status 1 |" in rendered


def test_a_known_benchmark_whose_output_changed_shape_falls_back_to_the_generic_row() -> None:
    """A formatter that no longer finds its keys does not break the table."""
    table = _readme_table()
    rendered = table.render({"benchmarks": {"paper_margin": {"speed_ratio": 1.25}}})
    assert "| `paper_margin` | see the results file | – | speed_ratio: 1.25 |" in rendered


def test_every_benchmark_script_is_run_by_the_runner() -> None:
    """run_all picks up each benchmarks/*.py except helpers, itself and the table script."""
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec is not None
    assert spec.loader is not None
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    names = {path.stem for path in run_all.discover()}
    assert {"budget", "loop_tick", "call_overhead"} <= names
    assert not {n for n in names if n.startswith("_")} | ({"run_all", "readme_table"} & names)
