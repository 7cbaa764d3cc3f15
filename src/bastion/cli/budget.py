"""``bastion budget``: today's LLM token and USD spend against the budgets, by model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from bastion.cli.context import ConfigOption, JsonOption, exit_on_error, load, out, print_json
from bastion.clock import WallClock
from bastion.config import ensure_data_dir

if TYPE_CHECKING:
    from bastion.guard.budget import BudgetUsage

__all__ = ["budget", "used_today_line"]


def budget(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Today's LLM token and USD spend against the budgets, by model."""
    from bastion.build import build_agent, build_budget  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.store import Store  # noqa: PLC0415  lazy: see cli/app.py

    settings = load(config)
    with exit_on_error():
        ensure_data_dir(settings)
        with Store.open(settings.resolved_store_url) as store:
            usage = build_budget(
                settings, store, WallClock(), build_agent(settings).name
            ).usage_today()
    if as_json:
        print_json(usage.to_dict())
        return
    _render(usage)


def used_today_line(budget: dict[str, Any]) -> str:
    """`Used today: 12,345 tokens (2.5%)` with a bar, or without a limit just the count."""
    used = int(budget["tokens_used_today"])
    limit = budget.get("daily_budget")
    if not limit:
        return f"Used today: {used:,} tokens (no daily limit)"
    share = used / limit
    filled = min(20, round(share * 20))
    bar = "█" * filled + "░" * (20 - filled)
    return f"Used today: {used:,} tokens ({share:.1%}) {bar} of {limit:,}"


def _render(usage: BudgetUsage) -> None:
    out.print(f"Agent {usage.agent} (budgets are per agent; BASTION_AGENT picks it)")
    out.print(used_today_line(usage.to_dict()), highlight=False)
    usd_limit = usage.daily_usd_budget
    usd = f"${usage.usd_used_today:,.2f}" + (f" of ${usd_limit:,.2f}" if usd_limit else "")
    out.print(f"USD today: {usd}; invocations: {usage.invocations_today}")
    out.print(
        f"Budget available: {'yes' if usage.budget_available else 'NO'}; "
        f"resets {usage.reset_date} 00:00 UTC"
    )
    if usage.by_model:
        table = Table(title="By model")
        for column in ("model", "invocations", "tokens", "usd"):
            table.add_column(column)
        for model, row in sorted(usage.by_model.items()):
            table.add_row(model, str(row.invocations), f"{row.tokens:,}", f"{row.usd:.4f}")
        out.print(table)
