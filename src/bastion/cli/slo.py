"""``bastion slo``: the SLOs, their 30-day error budgets, burn rates and firing alerts.

While a run holds the data directory's lock its console answers (``GET /api/slo``): that is
the run's own evaluation, with the alerts it keeps firing, page-on ones included. Otherwise
the store's task records are read here; ``firing`` then lists the SLO burn alerts and the
error-rate page that hold at this moment (the per-run and halt pages belong to a run).
``--json`` prints the API's shape either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from bastion.cli.context import (
    ConfigOption,
    JsonOption,
    exit_on_error,
    live_console,
    load,
    out,
    print_json,
)
from bastion.cli.terminal import safe
from bastion.clock import WallClock
from bastion.config import ensure_data_dir

if TYPE_CHECKING:
    from bastion.config import Settings

__all__ = ["slo"]

_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def slo(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show the SLOs: objective, SLI, error budget left, burn rates and firing alerts."""
    settings = load(config)
    data = _live(settings)
    source = "the running console"
    if data is None:
        data = _from_store(settings)
        source = "the store"
    if as_json:
        print_json(data)
        return
    _render(data, source)


def _from_store(settings: Settings) -> dict[str, Any]:
    from bastion.build import build_slo_reader  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.store import Store  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.telemetry.monitor import SloSnapshot  # noqa: PLC0415  lazy: see cli/app.py

    now = WallClock().now()
    with exit_on_error():
        ensure_data_dir(settings)
        with Store.open(settings.resolved_store_url) as store:
            reader = build_slo_reader(settings, store)
            snapshot = SloSnapshot(
                now, reader.period_days, reader.statuses(now), reader.figures(now, None, 0.0)
            )
    return snapshot.to_dict(snapshot.alerts(reader.page_on))


def _live(settings: Settings) -> dict[str, Any] | None:
    """The running console's report, or None when no run serves one."""
    console = live_console(settings)
    if console is None:
        return None
    from bastion.api.client import fetch_slo  # noqa: PLC0415  lazy: see cli/app.py

    return fetch_slo(console.host, console.port, console.token)


def _rate(value: object) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.2f}x"


def _bound(item: dict[str, Any]) -> str:
    threshold, unit = item.get("threshold"), item.get("unit")
    if not isinstance(threshold, (int, float)):
        return "-"
    return f"${threshold:g}" if unit == "usd" else f"{threshold:g} {safe(unit or '')}".strip()


def _render(data: dict[str, Any], source: str) -> None:
    """Two narrow tables (budgets, then burn rates) that fit an 80-column terminal."""
    slos = data.get("slos", [])
    budgets = Table(
        title=f"SLOs over {safe(data.get('period_days'))} days, from {source}",
        title_justify="left",
        caption=f"evaluated at {safe(data.get('evaluated_at'))}",
        caption_justify="left",
    )
    budgets.add_column("SLO", no_wrap=True)
    for column in ("target", "SLI", "good/total", "budget"):
        budgets.add_column(column, justify="right", no_wrap=True)
    budgets.add_column("alert", no_wrap=True)
    for item in slos:
        sli, budget = item.get("sli"), item.get("error_budget_remaining")
        firing = sorted({str(a["severity"]) for a in item.get("alerts", []) if a.get("firing")})
        bound = _bound(item)
        budgets.add_row(
            safe(item.get("name")) + ("" if bound == "-" else f" ≤ {bound}"),
            f"{item.get('objective', 0):.1%}",
            "-" if sli is None else f"{sli:.2%}",
            f"{item.get('good', 0):,}/{item.get('total', 0):,}",
            "-" if budget is None else f"{budget:.0%}",
            " ".join(f"[bold red]{safe(s)}[/]" for s in firing) or "-",
        )
    out.print(budgets)
    rates = Table(title="Burn rates (1x spends the budget in the period)", title_justify="left")
    rates.add_column("SLO")
    for window in _WINDOWS:
        rates.add_column(window, justify="right")
    for item in slos:
        burn = item.get("burn_rates", {})
        rates.add_row(safe(item.get("name")), *(_rate(burn.get(w)) for w in _WINDOWS))
    out.print(rates)
    firing = data.get("firing", [])
    if not firing:
        out.print("No alert firing.", highlight=False)
        return
    out.print(f"Firing ({len(firing)}):", style="bold red", highlight=False)
    for alert in firing:
        out.print(
            f"  {safe(alert.get('severity'))}  {safe(alert.get('alertname'))}: "
            f"{safe(alert.get('summary'))} (since {safe(alert.get('since'))})",
            highlight=False,
        )
