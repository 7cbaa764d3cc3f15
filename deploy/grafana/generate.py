"""Generate Bastion's Grafana dashboard, deploy/grafana/bastion.json, with grafana-foundation-sdk.

    python deploy/grafana/generate.py           # (re)write bastion.json beside this file
    python deploy/grafana/generate.py --check   # exit 1 when bastion.json is not what this writes

The dashboard is built with Grafana's own typed builders (the ``grafana-foundation-sdk``
package, a dev dependency) rather than written as JSON by hand, so a panel is a few lines of
Python and the JSON is always well formed. ``bastion.json`` is committed, for users who import
it or provision it (deploy/compose.yaml does); ``tests/integration/test_grafana_dashboard.py``
checks that it equals a fresh generation, that every query names a metric Bastion exports or a
recording rule in deploy/prometheus/, and mirrors grafana/dashboard-linter's rules (a
``datasource`` variable, every panel and target on it, a title and a description, a unit,
``$__rate_interval`` in every rate, a ``job`` matcher in every selector, PromQL that promtool
accepts).

Every selector carries ``job=~"$job"``: one dashboard serves every Bastion that Prometheus
scrapes, and the recording rules aggregate by ``job`` too. Queries are written with
:func:`m` so the matcher is never forgotten.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as d
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "bastion.json"
UID = "bastion-overview"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job=~"$job"'
RATE = "$__rate_interval"

STEP_SLO = 1 - 0.995
"""The step-completion objective's error budget (deploy/prometheus/bastion-recording.yml)."""
LATENCY_SLO = 1 - 0.99
"""The step-latency objective's error budget (99 % of steps within 5 s)."""


def m(metric: str, *matchers: str) -> str:
    """``metric{job=~"$job", matchers...}``: a selector that follows the ``job`` variable."""
    return f"{metric}{{{', '.join((JOB, *matchers))}}}"


def rate(metric: str, *matchers: str) -> str:
    return f"rate({m(metric, *matchers)}[{RATE}])"


def quantile(q: float, histogram: str, by: Sequence[str] = (), *matchers: str) -> str:
    """The ``q`` quantile of ``histogram`` (its base name), per ``by`` labels."""
    labels = ", ".join(("le", *by))
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(histogram + '_bucket', *matchers)}))"


def query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    )


def instant(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return query(expr, legend, ref).instant()


def mapped(*texts: tuple[str, str]) -> list[dm.ValueMapping]:
    """Values 0, 1, 2… shown as text in a colour: a gauge that stands for a state."""
    options = {
        str(i): dm.ValueMappingResult(text=text, color=color, index=i)
        for i, (text, color) in enumerate(texts)
    }
    return [dm.ValueMap(options=options)]


def legend() -> cb.VizLegendOptions:
    return (
        cb.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def series(
    title: str, description: str, unit: str, *targets: prometheus.Dataquery, w: int = 8
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(8)
        .legend(legend())
        .tooltip(
            cb.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def timeline(
    title: str,
    description: str,
    target: prometheus.Dataquery,
    mappings: list[dm.ValueMapping],
    w: int = 8,
) -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("none")
        .mappings(mappings)
        .span(w)
        .height(8)
        .legend(legend())
        .with_target(target)
    )


def single(
    title: str, description: str, unit: str, target: prometheus.Dataquery, w: int = 4
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(4)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(target)
    )


def trading_row(b: d.Dashboard) -> d.Dashboard:
    state = instant("max by (state) (" + m("bastion_trading_state") + ")", "{{state}}")
    return (
        b.with_row(d.Row("Trading"))
        .with_panel(
            single(
                "Kill switch",
                "1 while the kill switch is active: nothing new is sent. `bastion status` says "
                "why and who tripped it.",
                "none",
                instant(f"max({m('bastion_kill_switch_active')})", "kill switch"),
            ).mappings(mapped(("off", "green"), ("ACTIVE", "red")))
        )
        .with_panel(
            single(
                "Trading state",
                "The state each Bastion trades in: active, reducing (reduce-only orders) or "
                "halted (cancels only).",
                "none",
                instant(
                    f"max by (state) ({m('bastion_trading_state')}) == 1",
                    "{{state}}",
                ),
            ).text_mode(common.BigValueTextMode.NAME)
        )
        .with_panel(
            timeline(
                "Trading state over time",
                "1 while in the state (bastion_trading_state).",
                state.range(),
                mapped(("", "transparent"), ("in state", "orange")),
                w=16,
            )
        )
        .with_panel(
            series(
                "Equity",
                "Account equity in coin, as the exchange marks it at every observation.",
                "none",
                query(f"max by (currency) ({m('bastion_account_equity')})", "{{currency}}"),
            )
        )
        .with_panel(
            series(
                "Daily P&L",
                "Equity change since the UTC day's first observation, in coin.",
                "none",
                query(f"sum by (currency) ({m('bastion_account_daily_pnl')})", "{{currency}}"),
            )
        )
        .with_panel(
            series(
                "Position drift",
                "Largest gap between the exchange's positions and the book our own fills "
                "explain, in coin. Past the dust for two observations, it halts.",
                "none",
                query(f"max({m('bastion_position_drift_coin')})", "drift"),
            )
        )
        .with_panel(
            series(
                "Orders by outcome",
                "Order intents per second by what the send made of them.",
                "ops",
                query(f"sum by (outcome) ({rate('bastion_orders_total')})", "{{outcome}}"),
                w=12,
            )
        )
        .with_panel(
            series(
                "Halts by reason",
                "Halts tripped in each interval, by reason.",
                "short",
                query(
                    f"sum by (reason) (increase({m('bastion_halts_total')}[{RATE}]))",
                    "{{reason}}",
                ),
                w=12,
            )
        )
    )


def loop_row(b: d.Dashboard) -> d.Dashboard:
    return (
        b.with_row(d.Row("Steps and latency"))
        .with_panel(
            series(
                "Steps by outcome",
                "Loop steps per second: ok, halted, timeout, failed.",
                "ops",
                query(f"sum by (outcome) ({rate('bastion_steps_total')})", "{{outcome}}"),
            )
        )
        .with_panel(
            series(
                "Step latency",
                "P50, P95 and P99 of a step's wall time; the latency SLO wants P99 within 5 s.",
                "s",
                query(quantile(0.5, "bastion_step_duration_seconds"), "p50", "A"),
                query(quantile(0.95, "bastion_step_duration_seconds"), "p95", "B"),
                query(quantile(0.99, "bastion_step_duration_seconds"), "p99", "C"),
            )
        )
        .with_panel(
            series(
                "Step P95 by outcome",
                "How long steps of each outcome take: a timeout sits at the step timeout.",
                "s",
                query(quantile(0.95, "bastion_step_duration_seconds", ["outcome"]), "{{outcome}}"),
            )
        )
    )


def slo_row(b: d.Dashboard) -> d.Dashboard:
    def burn(sli: str, budget: float, window: str, ref: str) -> prometheus.Dataquery:
        return query(f"{m(f'job:{sli}:ratio_rate{window}')} / {budget:g}", window, ref)

    return (
        b.with_row(d.Row("SLO burn rates"))
        .with_panel(
            series(
                "Step errors: burn rate",
                "Failed or timed-out steps over the error budget (99.5 % objective). 14.4 in 1 h "
                "and 5 m pages; 1 over 3 d opens a ticket.",
                "none",
                *(
                    burn("bastion_step_errors", STEP_SLO, w, ref)
                    for w, ref in zip(("5m", "1h", "6h", "3d"), "ABCD", strict=True)
                ),
            )
        )
        .with_panel(
            series(
                "Slow steps: burn rate",
                "Steps over 5 s over the latency budget (99 % within 5 s).",
                "none",
                *(
                    burn("bastion_step_slow", LATENCY_SLO, w, ref)
                    for w, ref in zip(("5m", "1h", "6h", "3d"), "ABCD", strict=True)
                ),
            )
        )
        .with_panel(
            series(
                "Error budget left (30 d)",
                "1 while untouched, 0 when the 30-day budget is spent.",
                "percentunit",
                query(m("job:bastion_step_errors:budget_remaining_ratio30d"), "completion", "A"),
                query(m("job:bastion_step_slow:budget_remaining_ratio30d"), "latency", "B"),
            )
        )
    )


def research_row(b: d.Dashboard) -> d.Dashboard:
    passed = rate("bastion_quality_gates_total", 'result="pass"')
    gates = f"sum by (gate) ({passed}) / sum by (gate) ({rate('bastion_quality_gates_total')})"
    return (
        b.with_row(d.Row("Research cycles"))
        .with_panel(
            series(
                "Cycles by outcome",
                "Research cycles finished per second: completed, failed, cancelled.",
                "ops",
                query(f"sum by (outcome) ({rate('bastion_cycles_total')})", "{{outcome}}"),
                w=6,
            )
        )
        .with_panel(
            series(
                "Cycle P95 by outcome",
                "How long a research cycle takes, by how it ended.",
                "s",
                query(quantile(0.95, "bastion_cycle_duration_seconds", ["outcome"]), "{{outcome}}"),
                w=6,
            )
        )
        .with_panel(
            series(
                "Phase durations",
                "P95 of each phase of a cycle: design, train, backtest, assess.",
                "s",
                query(quantile(0.95, "bastion_phase_duration_seconds", ["phase"]), "{{phase}}"),
                w=6,
            )
        )
        .with_panel(
            series(
                "Gate pass rate",
                "Share of quality-gate evaluations that passed, by gate.",
                "percentunit",
                query(gates, "{{gate}}"),
                w=6,
            )
        )
    )


def llm_row(b: d.Dashboard) -> d.Dashboard:
    return (
        b.with_row(d.Row("Tokens, cost and tools"))
        .with_panel(
            series(
                "LLM tokens",
                "Tokens billed per second, by model and type (input, output).",
                "short",
                query(
                    f"sum by (model, type) ({rate('bastion_llm_tokens_total')})",
                    "{{model}} {{type}}",
                ),
            )
        )
        .with_panel(
            series(
                "LLM cost",
                "USD spent on LLM answers in each interval, by model.",
                "currencyUSD",
                query(
                    f"sum by (model) (increase({m('bastion_llm_cost_usd_total')}[{RATE}]))",
                    "{{model}}",
                ),
            )
        )
        .with_panel(
            series(
                "LLM request P95",
                "Wall time of answered LLM requests, by model (GenAI buckets).",
                "s",
                query(
                    quantile(0.95, "bastion_llm_request_duration_seconds", ["model"]), "{{model}}"
                ),
            )
        )
        .with_panel(
            series(
                "Cost per run",
                "The current run's LLM cost so far, and the median of finished runs (the cost "
                "SLO's threshold is $0.15).",
                "currencyUSD",
                query(f"max({m('bastion_run_cost_usd')})", "current run", "A"),
                query(quantile(0.5, "bastion_cost_per_run_usd"), "median finished run", "B"),
                w=6,
            )
        )
        .with_panel(
            series(
                "Budget remaining",
                "LLM budget left by scope and unit; absent for unlimited scopes.",
                "short",
                query(
                    f"min by (scope, unit) ({m('bastion_budget_remaining')})",
                    "{{scope}} {{unit}}",
                ),
                w=6,
            )
        )
        .with_panel(
            series(
                "Tool calls",
                "Tool calls per second by declared tool and outcome, and refusals by reason.",
                "ops",
                query(
                    f"sum by (tool, outcome) ({rate('bastion_tool_calls_total')})",
                    "{{tool}} {{outcome}}",
                    "A",
                ),
                query(
                    f"sum by (reason) ({rate('bastion_tool_refusals_total')})",
                    "refused {{reason}}",
                    "B",
                ),
                w=6,
            )
        )
        .with_panel(
            series(
                "Tool calls per run",
                "Tool calls the current run made so far; over 30 pages.",
                "short",
                query(f"max({m('bastion_run_tool_calls')})", "current run"),
                w=6,
            )
        )
    )


def dependencies_row(b: d.Dashboard) -> d.Dashboard:
    return (
        b.with_row(d.Row("Breakers, health and dependencies"))
        .with_panel(
            timeline(
                "Breakers",
                "Circuit breaker per dependency: closed, half-open (probing), open.",
                query(f"max by (dependency) ({m('bastion_breaker_state')})", "{{dependency}}"),
                mapped(("closed", "green"), ("half-open", "yellow"), ("open", "red")),
                w=12,
            )
        )
        .with_panel(
            timeline(
                "Health",
                "The latest result of each configured health check.",
                query(f"max by (check) ({m('bastion_health_status')})", "{{check}}"),
                mapped(("OK", "green"), ("WARN", "yellow"), ("FAIL", "red")),
                w=12,
            )
        )
        .with_panel(
            series(
                "Dependency P95",
                "Duration of calls through resilience.call, by dependency.",
                "s",
                query(
                    quantile(0.95, "bastion_external_call_duration_seconds", ["dependency"]),
                    "{{dependency}}",
                ),
                w=12,
            )
        )
        .with_panel(
            series(
                "Dependency errors",
                "Calls that failed for good per second, by dependency and code; retries "
                "beside them.",
                "ops",
                query(
                    f"sum by (dependency, code) ({rate('bastion_dependency_errors_total')})",
                    "{{dependency}} {{code}}",
                    "A",
                ),
                query(
                    f"sum by (dependency) ({rate('bastion_call_retries_total')})",
                    "{{dependency}} retries",
                    "B",
                ),
                w=12,
            )
        )
    )


def build() -> d.Dashboard:
    """The dashboard: variables first, then one row per question a person asks."""
    job = (
        d.QueryVariable("job")
        .label("Job")
        .description("The Prometheus job(s) Bastion is scraped under.")
        .datasource(DATASOURCE)
        .query("label_values(bastion_steps_total, job)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    b = (
        d.Dashboard("Bastion")
        .uid(UID)
        .description("A Bastion trading runtime: trading state, steps, SLOs, cost, dependencies.")
        .tags(["bastion"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("utc")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(d.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(job)
    )
    for row in (trading_row, loop_row, slo_row, research_row, llm_row, dependencies_row):
        b = row(b)
    return b


def render() -> str:
    """The dashboard as committed: the SDK's model, ids numbered, keys sorted, one newline."""
    model = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    for number, panel in enumerate(model["panels"], start=1):
        panel["id"] = number
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when bastion.json is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
