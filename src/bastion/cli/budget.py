"""``bastion budget``: today's LLM token and USD spend against the budgets, by model;
``bastion budget prune``: delete budget ledger rows past ``BASTION_BUDGET_LEDGER_RETENTION_DAYS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bastion.cli.context import (
    ConfigOption,
    JsonOption,
    err,
    exit_on_error,
    load,
    out,
    print_json,
)
from bastion.clock import WallClock
from bastion.config import ensure_data_dir

if TYPE_CHECKING:
    from bastion.guard.budget import BudgetUsage

__all__ = ["budget", "budget_app", "prune", "used_today_line"]

budget_app = typer.Typer(
    help="Today's LLM token and USD spend against the budgets, by model; prune the ledger.",
    invoke_without_command=True,
)


@budget_app.callback()
def budget(ctx: typer.Context, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Today's LLM token and USD spend against the budgets, by model."""
    if ctx.invoked_subcommand is not None:
        return
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


@budget_app.command("prune")
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count the rows that would go; delete nothing.")
    ] = False,
    days: Annotated[
        int | None,
        typer.Option("--days", help="Keep this many days this time (default: the setting).", min=1),
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete budget ledger rows older than BASTION_BUDGET_LEDGER_RETENTION_DAYS.

    The running totals (today's and this month's spend, by model) are kept: only the audit
    rows go. A run does this at start and about daily; this is the same, on demand.
    """
    from bastion.build import build_ledger_retention  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.store import Store  # noqa: PLC0415  lazy: see cli/app.py

    settings = load(config, budget_ledger_retention_days=days)
    now = WallClock().now()
    with exit_on_error():
        ensure_data_dir(settings)
        with Store.open(settings.resolved_store_url) as store:
            retention = build_ledger_retention(settings, store)
            if retention is None:
                err.print(
                    "Nothing to prune: budget_ledger_retention_days "
                    "(BASTION_BUDGET_LEDGER_RETENTION_DAYS) is empty, so the ledger is kept "
                    "forever. Fix: set it, or pass --days N.",
                    style="bold red",
                    highlight=False,
                )
                raise typer.Exit(2)
            count = retention.expired(now) if dry_run else retention.prune(now)
            cutoff = retention.cutoff(now)
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "rows": count,
                "retention_days": retention.days,
                "cutoff": cutoff.isoformat(),
            }
        )
        return
    rows = f"{count:,} budget ledger row(s) older than {cutoff:%Y-%m-%d %H:%M:%S} UTC"
    kept = f"(retention {retention.days} days)"
    if dry_run:
        out.print(f"Would delete {rows} {kept}; nothing deleted.", highlight=False)
    else:
        out.print(f"Deleted {rows} {kept}; running totals unchanged.", highlight=False)


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
