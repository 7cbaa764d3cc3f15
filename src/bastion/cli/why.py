"""``bastion why LABEL``: why an order was sent, read from its run's trace.

The same story as the console's "why" view (:mod:`bastion.ops.order_why`): the decision
(the agent's, or the loop's flatten), the LLM answers of that step, the risk verdict, who
approved it when a person did, and what became of the order. Exit 1 when the label's run has
no trace or its trace no such order; 2 for a label that is not ``<run_id>-<step>-<k>``.
Everything printed from the trace passes :func:`~bastion.cli.terminal.safe`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.context import ConfigOption, JsonOption, err, exit_on_error, load, out, print_json
from bastion.cli.terminal import safe

__all__ = ["why"]

_TEXT_CHARS = 600


def why(
    label: Annotated[str, typer.Argument(help="The order's label, <run_id>-<step>-<k>.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show why an order was sent: its decision, the LLM answer and the risk verdict."""
    from bastion.errors import BastionError, ErrorCode  # noqa: PLC0415  lazy: see cli/app.py
    from bastion.ops.order_why import explain_order  # noqa: PLC0415

    settings = load(config)
    with exit_on_error():  # not found (or an unreadable trace): the message, exit 1
        try:
            story = explain_order(settings.traces_dir, label).to_dict()
        except BastionError as exc:
            if exc.code is not ErrorCode.BAD_REQUEST:
                raise
            err.print(safe(exc.message), style="bold red", highlight=False)
            raise typer.Exit(2) from None
    if as_json:
        print_json(story)
        return
    _render(story)


def _render(story: dict[str, Any]) -> None:
    out.print(
        f"[bold]Order {safe(story['label'])}[/]: run {safe(story['run_id'])}, step "
        f"{story['step']}, agent {safe(story['agent'])} ({safe(story['trace'])})",
        highlight=False,
    )
    decision = story["decision"]
    if decision is None:
        out.print("Decision: not in the trace", highlight=False)
    else:
        intent = decision.get("intent") or {}
        out.print(
            f"[bold]Decision[/] (step {decision['step']}, source {safe(decision['source'])}): "
            f"{_intent(intent)}; rationale: {safe(decision.get('rationale') or '-', limit=300)}",
            highlight=False,
        )
        if intent.get("reason"):
            out.print(f"  intent reason: {safe(intent['reason'], limit=300)}", highlight=False)
    if not story["answers"]:
        flatten = decision is not None and decision.get("source") == "flatten"
        why = "a flatten asks no model" if flatten else "no LLM call was recorded in that step"
        out.print(f"[bold]LLM answer[/]: none ({why})", highlight=False)
    for answer in story["answers"]:
        out.print(
            f"[bold]LLM answer[/] ({safe(answer.get('model', '?'))}, {safe(answer.get('tier', ''))}"
            f", phase {safe(answer.get('phase') or '-')}): "
            f"{safe(answer.get('text') or '', limit=_TEXT_CHARS)}",
            highlight=False,
        )
    verdict = story["verdict"]
    cap = f" ({safe(verdict['cap'])})" if verdict.get("cap") else ""
    out.print(
        f"[bold]Risk verdict[/]: {safe(verdict.get('status'))}{cap}"
        f"{': ' + safe(verdict['reason']) if verdict.get('reason') else ''}",
        highlight=False,
    )
    approval = story["approval"]
    if approval is not None:
        out.print(
            f"[bold]Approved by[/] {safe(approval.get('decided_by') or '?')} "
            f"(asked at step {approval.get('asked_at_step')}, approval "
            f"{safe(approval['approval_id'])})",
            highlight=False,
        )
    for line in story["orders"]:
        state = line.get("order_state") or line.get("reason") or ""
        out.print(
            f"  {safe(line.get('ts', ''))} {safe(line['kind'])} step {line.get('step')} "
            f"{safe(state)} {safe(line.get('order_id') or '')}",
            highlight=False,
        )


def _intent(intent: dict[str, Any]) -> str:
    price = intent.get("price")
    at = f" @ {price}" if price is not None else ""
    return safe(
        f"{intent.get('direction')} {intent.get('amount')} {intent.get('instrument')} "
        f"{intent.get('order_type')}{at}"
    )
