"""``bastion approvals``: questions waiting for a person; list, approve or reject them.

Every command goes through the :class:`~bastion.guard.approvals.Approvals` service, the one the
console's API uses, so expiry, the conditional decide and its refusals are the same here. A
decision is recorded as the operating-system user running the command (``getpass``); there is
no option to name someone else. An approved order is not sent by this command: the run that
asked reviews it again against the caps at its next step and sends it only if it still passes.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bastion.cli.context import ConfigOption, JsonOption, exit_on_error, load, out, print_json
from bastion.cli.terminal import safe
from bastion.clock import WallClock
from bastion.config import ensure_data_dir

if TYPE_CHECKING:
    from bastion.guard.approvals import Approvals

__all__ = ["approvals_app"]

T = TypeVar("T")

approvals_app = typer.Typer(
    help="Questions waiting for a person (LLM escalations, orders needing approval, the "
    "operator agent's proposed actions); list, approve or reject them.",
    invoke_without_command=True,
)


def _with_approvals(
    config: Path | None, action: Callable[[Approvals], Coroutine[Any, Any, T]]
) -> T:
    from bastion.build import build_approvals  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.store import Store  # noqa: PLC0415  lazy: see cli/app.py

    settings = load(config)
    with exit_on_error():
        ensure_data_dir(settings)
        with Store.open(settings.resolved_store_url) as store:
            return asyncio.run(action(build_approvals(settings, store, WallClock())))


@approvals_app.callback()
def approvals_list(
    ctx: typer.Context,
    config: ConfigOption = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Every entry, decided ones too, newest first.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the pending entries (with --all, the decided ones too)."""
    if ctx.invoked_subcommand is not None:
        return
    records = _with_approvals(
        config, lambda a: a.recent(limit=100) if show_all else a.pending(limit=100)
    )
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        out.print("No approvals pending." if not show_all else "No approvals recorded.")
        return
    title = "approvals" if show_all else "pending approvals"
    out.print(f"{len(records)} {title}, newest first:")
    for r in records:
        run = f", run {r.run_id}" if r.run_id else ""
        out.print(
            f"[bold]{r.id}[/]  {safe(r.kind)}  {r.status.value}  asked "
            f"{r.created_at:%Y-%m-%d %H:%M:%S} UTC by {safe(r.agent)}{safe(run)}",
            highlight=False,
        )
        out.print(f"    {safe(r.reason, limit=2000)}", highlight=False, soft_wrap=True)
        if r.kind == "order":
            out.print(f"    {safe(_order_line(r.subject), limit=500)}", highlight=False)
        if r.pending and r.expires_at is not None:
            out.print(f"    expires {r.expires_at:%Y-%m-%d %H:%M:%S} UTC", highlight=False)


def _order_line(subject: dict[str, Any]) -> str:
    """``sell 0.5 BTC-27DEC26-120000-C limit @ 0.0125 (reduce-only)``: what would be sent."""
    price = subject.get("price")
    at = f" @ {price}" if price is not None else ""
    reduce = " (reduce-only)" if subject.get("reduce_only") else ""
    return (
        f"{subject.get('direction')} {subject.get('amount')} {subject.get('instrument')} "
        f"{subject.get('order_type')}{at}{reduce}"
    )


def _decide(config: Path | None, approval_id: str, *, approve: bool, note: str | None) -> None:
    record = _with_approvals(
        config, lambda a: a.decide(approval_id, approve, who=getpass.getuser(), note=note)
    )
    out.print(
        f"Approval {record.id} {record.status.value} by {safe(record.decided_by or '?')}.",
        highlight=False,
    )
    if record.kind == "order" and approve:
        out.print(
            "The run that asked reviews the order again against its caps at its next step and "
            "sends it only if it still passes.",
            highlight=False,
        )


@approvals_app.command("approve")
def approvals_approve(
    approval_id: Annotated[str, typer.Argument(help="The entry's id (bastion approvals).")],
    note: Annotated[str | None, typer.Option("--note", help="Why, for the record.")] = None,
    config: ConfigOption = None,
) -> None:
    """Approve a pending entry."""
    _decide(config, approval_id, approve=True, note=note)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: Annotated[str, typer.Argument(help="The entry's id (bastion approvals).")],
    note: Annotated[str | None, typer.Option("--note", help="Why, for the record.")] = None,
    config: ConfigOption = None,
) -> None:
    """Reject a pending entry."""
    _decide(config, approval_id, approve=False, note=note)
