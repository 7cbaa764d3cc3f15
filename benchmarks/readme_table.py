"""The README's performance table, rendered from a results file that ``run_all.py`` wrote.

Prints the markdown table; with ``--write`` it replaces what stands between ``<!-- bench:start
-->`` and ``<!-- bench:end -->`` in README.md instead. Benchmarks it knows get a row each in
their own words; one it does not know yet still gets a row, with every figure it reports whose
name holds ``ratio``, so a new script shows up before anyone writes its formatter. Standard
library only: ``tests/unit/test_bench_table.py`` imports it to keep README.md in step with
``docs/bench.json``.

Usage: ``.venv/bin/python benchmarks/readme_table.py [RESULTS] [--write]`` (RESULTS defaults to
docs/bench.json)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "bench.json"
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
HEADER = (
    "| benchmark | measured: median (min–max) | baseline, same run, interleaved | "
    "ratio: median (min–max) | settings, notes |\n"
    "| --- | --- | --- | --- | --- |"
)

Row = tuple[str, str, str, str, str]


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def spread(value: Any, unit: str = "") -> str:
    """``1,234 /s (1,100–1,300)`` from a ``{"min", "median", "max"}`` figure, or a plain one."""
    if isinstance(value, Mapping):
        median, low, high = (_number(value[k]) for k in ("median", "min", "max"))
        return f"{median}{unit} ({low}–{high})"
    if isinstance(value, int | float):
        return f"{_number(value)}{unit}"
    return "–"


def _settings(values: Mapping[str, Any], *names: str) -> str:
    return ", ".join(f"{name}={values[name]}" for name in names if name in values)


def _budget(result: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for backend in ("sqlite", "postgresql"):
        section = result.get(backend, {})
        if "runs" not in section:
            reason = section.get("skipped") or section.get("error") or "not run"
            rows.append((f"budget admissions, {backend}", "–", "–", "–", f"not measured: {reason}"))
            continue
        for run in section["runs"]:
            store = run["settings"]
            names = ("journal_mode", "synchronous", "fsync", "synchronous_commit")
            notes = [_settings(store, *names), f"overspend {run['overspend_tokens']} tokens"]
            if "direct_updates_per_second" in run:
                notes.append(
                    "the UPDATE in a blocking loop, no thread hop: "
                    f"{spread(run['direct_updates_per_second'], ' /s')}, "
                    f"ratio {spread(run['ratio_vs_direct'])}"
                )
            if run.get("share_max_over_min"):
                notes.append(f"process share max/min {spread(run['share_max_over_min'])}")
            rows.append(
                (
                    f"budget admissions (reserve + commit), {run['config']}",
                    spread(run["admissions_per_second"], " /s"),
                    "plain conditional UPDATE in its own transaction: "
                    + spread(run["baseline_updates_per_second"], " /s"),
                    spread(run["ratio"]),
                    "; ".join(notes),
                )
            )
    return rows


def _loop_tick(result: Mapping[str, Any]) -> list[Row]:
    ticks = result["loop_tick_in_process"]
    orders = result["paper_orders_loopback_http"]
    return [
        (
            "guarded loop ticks, no-op agent, in-process paper exchange",
            spread(ticks["ticks_per_second"], " /s"),
            "bare `public/get_time` over the same transport: "
            + spread(ticks["baseline_get_time_per_second"], " /s"),
            spread(ticks["tick_cost_in_requests"]) + " requests per tick",
            f"{ticks['exchange_requests_per_tick']} exchange requests per tick; "
            + _settings(ticks["settings"], "journal_mode", "synchronous"),
        ),
        (
            "paper-exchange orders over loopback HTTP, sequential, resting",
            spread(orders["orders_per_second"], " /s"),
            "`public/get_time` over the same connection: "
            + spread(orders["baseline_get_time_per_second"], " /s"),
            spread(orders["order_cost_in_requests"]) + " requests per order",
            str(orders["settings"].get("transport", "")),
        ),
    ]


def _call_overhead(result: Mapping[str, Any]) -> list[Row]:
    return [
        (
            "`resilience.call` overhead around a no-op coroutine",
            spread(result["bastion_overhead_ns"], " ns"),
            "pybreaker + tenacity: " + spread(result["pybreaker_tenacity_overhead_ns"], " ns"),
            spread(result["overhead_ratio_vs_pybreaker_tenacity"]),
            f"bare call {spread(result['bare_ns_per_call'], ' ns')}; "
            f"{result['settings']['calls_per_round']:,} calls per round",
        )
    ]


def _llm_chain(result: Mapping[str, Any]) -> list[Row]:
    return [
        (
            "LLM fallback chain around one call (price, reserve, call, commit, trace)",
            spread(result["guarded_chain_ms_per_call"], " ms"),
            "bare SDK adapter, same fake server: "
            + spread(result["bare_adapter_ms_per_call"], " ms"),
            spread(result["ratio"]),
            f"adds {spread(result['added_ms_per_call'], ' ms')} per call; "
            + _settings(result["settings"], "journal_mode", "synchronous"),
        )
    ]


def _time_to_first_order(result: Mapping[str, Any]) -> list[Row]:
    return [
        (
            "`bastion run` to its first paper order",
            spread(result["seconds_to_first_order"], " s"),
            "`python -c 'import bastion.cli'`: " + spread(result["baseline_import_seconds"], " s"),
            spread(result["first_order_in_import_times"]),
            f"console URL at {spread(result['seconds_to_console_url'], ' s')}",
        )
    ]


def _cli_start(result: Mapping[str, Any]) -> list[Row]:
    return [
        (
            f"`bastion {command}` wall time",
            spread(result[f"{command}_ms"], " ms"),
            "`python -c 'import typer'`: " + spread(result["baseline_import_typer_ms"], " ms"),
            spread(result[f"{command}_ratio_per_round"]),
            f"goal ≤ {result['settings']['goal_ratio']}; "
            + _settings(result["settings"], "journal_mode", "synchronous"),
        )
        for command in ("kill", "resume")
    ]


def _paper_margin(result: Mapping[str, Any]) -> list[Row]:
    def microseconds(figure: Mapping[str, float]) -> str:
        return spread({k: figure[f"{k}_us"] for k in ("min", "median", "max")}, " µs")

    settings = result["settings"]
    return [
        (
            "paper-exchange place + cancel with a loaded book",
            microseconds(result["place_cancel_loaded"]),
            "the same with an empty book: " + microseconds(result["place_cancel_empty"]),
            spread(result["ratio_loaded_vs_empty"]),
            f"{settings['resting_orders']:,} resting orders over "
            f"{settings['options_with_orders']} options",
        )
    ]


def _replay(result: Mapping[str, Any]) -> list[Row]:
    replay = result["replay_rule_based"]
    settings = replay["settings"]
    return [
        (
            "`bastion replay` steps per second, rule-based seller, recorded answers",
            spread(replay["steps_replayed_per_second"], " /s"),
            "bare `decide()` on the same observations: "
            + spread(replay["baseline_bare_decide_per_second"], " /s"),
            spread(replay["replay_cost_in_bare_decides_ratio"]) + " decides per replayed step",
            f"goal ≥ {replay['goal_steps_per_second']:,} /s; trace already read: "
            + spread(replay["steps_replayed_per_second_trace_already_read"], " /s")
            + f"; {settings['trace_bytes_per_step']:,} trace bytes per step",
        )
    ]


def _halt_latency(result: Mapping[str, Any]) -> list[Row]:
    settings = result["settings"]
    flag, cli = result["file_flag_ms"], result["cli_ms"]
    context = (
        f"{settings['trials']} trials; loop interval {settings['loop_interval_seconds']:g} s on "
        f"`bastion exchange serve`; goal p99 ≤ 100 ms"
    )
    baseline = "the client's own `private/cancel_all`: " + spread(
        result["baseline_cancel_all_ms"], " ms"
    )
    return [
        (
            "kill switch: `touch` the flag → resting orders gone at the exchange",
            spread(flag, " ms") + f", p99 {_number(flag['p99'])} ms",
            baseline,
            _number(result["file_flag_ratio"]),
            context,
        ),
        (
            "kill switch: `bastion kill` → resting orders gone at the exchange",
            spread(cli, " ms") + f", p99 {_number(cli['p99'])} ms",
            baseline,
            _number(result["cli_ratio"]),
            "includes the interpreter's start",
        ),
        *_fleet_row(result, baseline, settings),
    ]


def _fleet_row(result: Mapping[str, Any], baseline: str, settings: Mapping[str, Any]) -> list[Row]:
    fleet = result.get("fleet_flag_ms")
    if not isinstance(fleet, Mapping):
        return []
    return [
        (
            "kill switch: the fleet halt in the store → resting orders gone at the exchange",
            spread(fleet, " ms") + f", p99 {_number(fleet['p99'])} ms",
            baseline,
            _number(result["fleet_flag_ratio"]),
            f"the run polls the store every {settings['halt_poll_seconds']:g} s",
        )
    ]


KNOWN: dict[str, Callable[[Mapping[str, Any]], list[Row]]] = {
    "budget": _budget,
    "loop_tick": _loop_tick,
    "call_overhead": _call_overhead,
    "llm_chain": _llm_chain,
    "time_to_first_order": _time_to_first_order,
    "cli_start": _cli_start,
    "paper_margin": _paper_margin,
    "replay": _replay,
    "halt_latency": _halt_latency,
}


def _ratios(value: Any, path: str = "") -> list[str]:
    """Every figure under ``value`` whose key holds "ratio", as ``key: median (min–max)``."""
    if not isinstance(value, Mapping) or {"min", "median", "max"} <= value.keys():
        return []
    found = []
    for key, item in value.items():
        if key == "settings":  # inputs such as a goal, not figures
            continue
        name = f"{path}{key}"
        is_figure = isinstance(item, int | float) and not isinstance(item, bool)
        if "ratio" in key and (is_figure or isinstance(item, Mapping)):
            found.append(f"{name}: {spread(item)}")
        else:
            found.extend(_ratios(item, f"{name}."))
    return found


def _generic(name: str, result: Any) -> list[Row]:
    ratios = "; ".join(_ratios(result)) or "no ratio reported"
    return [(f"`{name}`", "see the results file", "–", ratios, "no formatter yet")]


def _formatted(name: str, result: Any) -> list[Row]:
    formatter = KNOWN.get(name)
    if formatter is not None:
        try:
            return formatter(result)
        except (KeyError, TypeError):  # its output changed shape: still show it, generically
            pass
    return _generic(name, result)


def rows(results: Mapping[str, Any]) -> list[Row]:
    """The table's rows: known benchmarks first, in a fixed order, then the rest by name."""
    benchmarks = results.get("benchmarks", {})
    found: list[Row] = []
    for name in [*KNOWN, *sorted(set(benchmarks) - set(KNOWN))]:
        if name in benchmarks:
            found.extend(_formatted(name, benchmarks[name]))
    for name, reason in sorted(results.get("failed", {}).items()):
        found.append((f"`{name}`", "–", "–", "–", f"failed: {reason}"))
    return found


def render(results: Mapping[str, Any], source: str = "docs/bench.json") -> str:
    """The markdown block that stands between the README's markers (markers excluded)."""
    lines = [
        f"Measured {results.get('generated_at', '?')} at commit "
        f"`{results.get('git_commit', '?')}`"
        + (" with uncommitted changes" if results.get("git_modified") else "")
        + f", Python {results.get('python', '?')}, {results.get('cpus', '?')} CPUs; "
        f"rendered by `benchmarks/readme_table.py` from `{source}`.",
        "",
        HEADER,
    ]
    for row in rows(results):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def load(path: Path = RESULTS) -> dict[str, Any]:
    """A results file as ``run_all.py`` wrote it."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def readme_block(text: str) -> str:
    """What stands between the markers in ``text``, without the newlines next to them."""
    start = text.index(START) + len(START)
    return text[start : text.index(END, start)].strip("\n") + "\n"


def write(block: str, readme: Path = README) -> None:
    """Replace the README's block with ``block``."""
    text = readme.read_text()
    start = text.index(START) + len(START)
    end = text.index(END, start)
    readme.write_text(text[:start] + "\n" + block + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=RESULTS)
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = parser.parse_args()
    source = args.results.resolve()
    name = str(source.relative_to(ROOT)) if source.is_relative_to(ROOT) else str(source)
    block = render(load(args.results), name)
    if args.write:
        write(block)
    else:
        sys.stdout.write(block)


if __name__ == "__main__":
    main()
