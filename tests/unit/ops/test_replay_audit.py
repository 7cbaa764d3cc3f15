"""The replay audit's pure parts: the recorded LLM, the comparison and the report's escaping."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import BastionError, ErrorCode
from bastion.messages import Escalated, Message, prompt_digest
from bastion.ops.replay import (
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    Outcome,
    RecordedLLM,
    ReplayReport,
    RunReplay,
    StepDrift,
    UnrecordedCall,
    compare,
    markdown_escape,
)
from bastion.trace.replay import RecordedStep

ASKED = [Message("system", "rules"), Message("user", "market")]
INTENT = {
    "instrument": "BTC-X",
    "direction": "sell",
    "amount": 0.1,
    "price": 0.0035,
    "order_type": "limit",
    "reduce_only": False,
    "reason": "why",
}


def _llm(*answers: dict[str, object], failure: dict[str, object] | None = None) -> RecordedLLM:
    llm = RecordedLLM()
    llm.load(RecordedStep(step=4, answers=list(answers), failure=failure))
    return llm


async def test_recorded_answers_come_back_in_order_with_their_tier() -> None:
    """A model answer keeps its text and tier; an escalation comes back as Escalated."""
    llm = _llm(
        {"kind": "llm_call", "input_class": "q", "text": "hold", "tier": "cache"},
        {"kind": "llm_escalated", "input_class": "q", "approval_id": "9", "code": "auth"},
    )
    first = await llm.complete(ASKED, input_class="q")
    second = await llm.complete(ASKED, input_class="q")
    assert not isinstance(first, Escalated)
    assert (first.text, first.tier) == ("hold", "cache")
    assert isinstance(second, Escalated)
    assert (second.approval_id, second.code) == ("9", "auth")
    assert (llm.unused, llm.notes) == (0, [])


async def test_a_call_past_the_recorded_answers_or_of_another_class_fails_loudly() -> None:
    """No answer recorded, or one recorded for another question: UnrecordedCall, never a guess."""
    with pytest.raises(UnrecordedCall, match="step 4: the agent asked 'q' \\(call 1\\)"):
        await _llm().complete(ASKED, input_class="q")
    with pytest.raises(UnrecordedCall, match="asks 'q', but the run recorded an answer to 'r'"):
        await _llm({"kind": "llm_call", "input_class": "r"}).complete(ASKED, input_class="q")


async def test_a_step_that_failed_asking_fails_again_with_its_code() -> None:
    """A budget used up while asking is raised again, so the replayed step fails the same way."""
    llm = _llm(failure={"kind": "budget_exhausted", "message": "daily budget used"})
    with pytest.raises(BastionError) as raised:
        await llm.complete(ASKED, input_class="q")
    assert raised.value.code is ErrorCode.BUDGET_EXHAUSTED


async def test_a_different_prompt_is_noted_against_its_recorded_digest() -> None:
    """Same class, other messages: the answer is served and the difference kept as a drift."""
    llm = _llm({"kind": "llm_call", "input_class": "q", "prompt_sha256": prompt_digest(ASKED)})
    await llm.complete([Message("user", "another market")], input_class="q", phase="decide")
    assert llm.notes == [
        "call 1 (q, phase decide): the prompt differs from the recorded one, so its recorded "
        "answer was given to another question"
    ]


def test_compare_is_exact_on_orders_and_ignores_the_wording() -> None:
    """A price one tick off is a drift; a different reason or rationale is not."""
    recorded = Outcome(intents=(INTENT,), verdicts=({"status": "approved", "cap": None},))
    reworded = Outcome(
        intents=({**INTENT, "reason": "other words"},),
        verdicts=({"status": "approved", "cap": None},),
        rationale="other words",
    )
    assert compare(recorded, reworded) == []
    repriced = Outcome(intents=({**INTENT, "price": 0.004},), verdicts=recorded.verdicts)
    assert compare(recorded, repriced) == ["intent 1 price: recorded 0.0035, replayed 0.004"]
    unreviewed = Outcome(intents=(INTENT,), verdicts=None)  # halted between decide and review
    rejected = Outcome(intents=(INTENT,), verdicts=({"status": "rejected", "cap": "x"},))
    assert compare(unreviewed, rejected) == []
    assert compare(Outcome(failure="budget_exhausted"), Outcome(failure="agent")) == [
        "outcome: recorded budget_exhausted, replayed agent"
    ]


def test_untrusted_text_cannot_drive_the_report() -> None:
    """Links, HTML, bidi overrides and escapes from a rationale arrive inert."""
    text = markdown_escape("[win](http://x) <script>\u202e\x1b[2J\n# heading")
    # An escape's own backslash is escaped too, so the page shows \u202e, \x1b, \x0a.
    assert text == "\\[win\\](http://x) \\<script\\>\\\\u202e\\\\x1b\\[2J\\\\x0a# heading"
    assert markdown_escape("x" * 500, limit=10) == "x" * 9 + "…"


def test_a_diff_line_with_backticks_cannot_close_its_fence() -> None:
    """The fence around a diff is longer than any run of backticks inside it."""
    report = ReplayReport(llm="recorded")
    run = RunReplay(run_id="r", path=Path("r.ndjson"), steps=1, replayed=1)
    run.drifts.append(StepDrift(1, 2, ("d",), ("-a ```` b", "+c"), "x", "y"))
    report.runs.append(run)
    markdown = report.to_markdown()
    assert "`````diff\n-a ```` b\n+c\n`````" in markdown
    assert report.exit_code == EXIT_DRIFT


def test_exit_codes() -> None:
    """Nothing replayed or an unreadable trace is incomplete (1), whatever drifted."""
    assert ReplayReport(llm="recorded").exit_code == EXIT_ERROR
    ok = ReplayReport(llm="recorded", runs=[RunReplay("r", Path("r"))])
    assert ok.exit_code == EXIT_OK
    ok.runs.append(RunReplay("s", Path("s"), error="bad line"))
    assert ok.exit_code == EXIT_ERROR
