"""The replay audit's report: per run, steps, matches and each drift with a readable diff.

:class:`ReplayReport` is what ``bastion replay`` writes as ``replay-report.md``, prints as JSON
and turns into its exit code. Everything in it that came from a trace (run ids, rationales,
error messages) is untrusted, since an LLM wrote some of it: :func:`markdown_escape` makes such
text one inert line of Markdown, and a diff goes in a fence no line of it can close.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "EXIT_DRIFT",
    "EXIT_ERROR",
    "EXIT_OK",
    "LLMMode",
    "ReplayReport",
    "RunReplay",
    "StepDrift",
    "markdown_escape",
]

EXIT_OK = 0
EXIT_ERROR = 1
"""A trace could not be read or replayed, or there was nothing to replay: the audit is
incomplete, whatever else it found."""
EXIT_DRIFT = 3
"""Every trace was replayed and at least one step decided differently."""

LLMMode = Literal["recorded", "live"]
"""Where a replay's LLM answers come from: the trace, or the configured model."""
_TEXT_CHARS = 300


@dataclass(frozen=True, slots=True)
class StepDrift:
    """One step that decided differently: what differs, and a unified diff of the outcomes."""

    step: int
    line: int
    drifts: tuple[str, ...]
    diff: tuple[str, ...]
    recorded_rationale: str
    replayed_rationale: str


@dataclass(slots=True)
class RunReplay:
    """One run's replay: counts, the drifted steps, and the error that stopped it, if any."""

    run_id: str
    path: Path
    recorded_agent: str = "unknown"
    replayed_agent: str = ""
    steps: int = 0
    replayed: int = 0
    matches: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    drifts: list[StepDrift] = field(default_factory=list)
    settings_changed: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(slots=True)
class ReplayReport:
    """Every run's replay and how to exit: 0 no drift, 1 incomplete, 3 drift."""

    llm: LLMMode
    runs: list[RunReplay] = field(default_factory=list)
    elapsed_s: float = 0.0
    candidate: str | None = None
    note: str | None = None
    """Why nothing was replayed (no trace on the day asked), when nothing was."""

    @property
    def steps_replayed(self) -> int:
        return sum(r.replayed for r in self.runs)

    @property
    def drifted_steps(self) -> int:
        return sum(len(r.drifts) for r in self.runs)

    @property
    def exit_code(self) -> int:
        if not self.runs or any(r.error is not None for r in self.runs):
            return EXIT_ERROR
        return EXIT_DRIFT if self.drifted_steps else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        """The report as data, for ``--json`` and scripts."""
        return {
            "llm": self.llm,
            "candidate": self.candidate,
            "exit_code": self.exit_code,
            "steps_replayed": self.steps_replayed,
            "drifted_steps": self.drifted_steps,
            "elapsed_s": round(self.elapsed_s, 3),
            "note": self.note,
            "runs": [
                {
                    "run_id": r.run_id,
                    "path": str(r.path),
                    "recorded_agent": r.recorded_agent,
                    "replayed_agent": r.replayed_agent,
                    "steps": r.steps,
                    "replayed": r.replayed,
                    "matches": r.matches,
                    "skipped": dict(r.skipped),
                    "settings_changed": r.settings_changed,
                    "error": r.error,
                    "drifts": [
                        {"step": d.step, "line": d.line, "drifts": list(d.drifts)} for d in r.drifts
                    ],
                }
                for r in self.runs
            ],
        }

    def to_markdown(self) -> str:
        """``replay-report.md``: per run, steps, matches and each drift with its diff.

        Everything that came from a trace (run ids, rationales, error messages) is escaped, so
        a rationale an LLM wrote cannot add headings, links or HTML to the report.
        """
        verdict = {EXIT_OK: "no drift", EXIT_DRIFT: "DRIFT", EXIT_ERROR: "INCOMPLETE"}
        out = [
            "# Replay report",
            "",
            f"- result: **{verdict[self.exit_code]}** (exit {self.exit_code})",
            f"- answers: {'recorded in the trace' if self.llm == 'recorded' else 'live model'}",
            "- agent and risk limits: the current code and settings",
            f"- steps replayed: {self.steps_replayed}, drifted: {self.drifted_steps}, "
            f"in {self.elapsed_s:.2f} s",
        ]
        if self.candidate:
            out.append(f"- candidate agent version: {markdown_escape(self.candidate)}")
        if self.note:
            out.append(f"- {markdown_escape(self.note)}")
        for run in self.runs:
            out += ["", *_run_markdown(run)]
        return "\n".join(out) + "\n"


def _run_markdown(run: RunReplay) -> list[str]:
    lines = [
        f"## Run {markdown_escape(run.run_id)}",
        "",
        f"- trace: {markdown_escape(str(run.path))}",
        f"- recorded by: {markdown_escape(run.recorded_agent)}; replayed with: "
        f"{markdown_escape(run.replayed_agent)}",
        f"- steps: {run.steps}, replayed: {run.replayed}, matches: {run.matches}, "
        f"drifts: {len(run.drifts)}",
    ]
    if run.skipped:
        parts = ", ".join(f"{why}: {n}" for why, n in sorted(run.skipped.items()))
        lines.append(f"- skipped: {parts}")
    if run.settings_changed:
        lines.append("- settings that differ from the recorded run:")
        lines.extend(f"  - {markdown_escape(s)}" for s in run.settings_changed)
    if run.error is not None:
        lines.append(f"- **error**: {markdown_escape(run.error)}")
    for drift in run.drifts:
        lines += ["", f"### Step {drift.step} (trace line {drift.line})", ""]
        lines.extend(f"- {markdown_escape(d)}" for d in drift.drifts)
        if drift.diff:
            lines += ["", *_fenced("diff", drift.diff), ""]
        else:  # the intents and verdicts were the same; what drifted is listed above
            lines += ["", "Intents and verdicts as recorded.", ""]
        lines.append(f"- recorded rationale: {markdown_escape(drift.recorded_rationale)}")
        lines.append(f"- replayed rationale: {markdown_escape(drift.replayed_rationale)}")
    return lines


def _fenced(info: str, body: Sequence[str]) -> list[str]:
    """A code block no line of ``body`` can close: its fence is longer than any backtick run."""
    text = [_plain(line) for line in body]
    fence = "`" * max(3, *(_backticks(line) + 1 for line in text))
    return [f"{fence}{info}", *text, fence]


def _backticks(line: str) -> int:
    best = run = 0
    for ch in line:
        run = run + 1 if ch == "`" else 0
        best = max(best, run)
    return best


_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>|~&")
"""What Markdown or HTML could obey inline; every label the report puts before text ends a list
item's start, so line-start markers (``#``, ``-``, ``1.``) cannot take effect."""


def markdown_escape(text: object, *, limit: int = _TEXT_CHARS) -> str:
    """Untrusted text as one inert line of Markdown: controls shown as escapes, markup escaped.

    Invisible characters (controls, bidi overrides, zero-width spaces) become ``\\u202e``-style
    escapes so a reader sees them; Markdown and HTML punctuation is backslash-escaped so it is
    shown, not obeyed; the text is cut at ``limit`` characters.
    """
    plain = _plain(str(text))
    if len(plain) > limit:
        plain = plain[: limit - 1] + "…"
    return "".join(f"\\{ch}" if ch in _MARKDOWN_SPECIAL else ch for ch in plain)


def _plain(text: str) -> str:
    return "".join(_visible(ch) for ch in text)


def _visible(ch: str) -> str:
    if ch.isprintable() and unicodedata.category(ch) != "Cf":
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
