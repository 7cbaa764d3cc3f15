"""Clean untrusted text before it reaches a language model.

Tool output and market text (instrument descriptions, news, error bodies, anything a peer or an
exchange wrote) are pasted into the LLM's prompt, so whoever wrote them can try to steer the
model: hide instructions in HTML or terminal escapes, or say "ignore previous instructions".
:func:`sanitize` removes the obvious forms. It is defence in depth, not the guard: an attacker
can always paraphrase, so the risk review still judges every intent the model proposes, however
clean its prompt was.

What :func:`sanitize` does, in order, repeated until the text stops changing:

1. strips ANSI escape sequences (CSI, OSC, DCS and two-byte escapes, 7- and 8-bit);
2. turns ``\\r\\n``, ``\\r`` and Unicode line separators into ``\\n``, and strips every other
   control (``Cc``), format (``Cf``: zero-width and bidi marks) and lone surrogate character,
   keeping ``\\n`` and ``\\t``;
3. strips ``<script>`` and ``<style>`` blocks and HTML comments with their content (an
   unterminated one runs to the end, as in a browser), then every tag, keeping block tags as a
   line break; then unescapes entities;
4. replaces instruction-override phrases ("ignore all previous instructions", "disregard the
   above", "you are now", "system prompt:", "new instructions:", chat-template markers such as
   ``<|im_start|>`` and ``[INST]``; case-insensitive, any whitespace between words) with
   ``[removed]``;
5. collapses runs of horizontal whitespace to one space (a lone tab is kept), trims lines and
   keeps at most one blank line.

Repeating makes the result a fixed point, so sanitising twice changes nothing: an entity that
unescapes to a tag is stripped on the next round. Text still changing after a few rounds is
adversarial (entities nested to any depth); every ``<``, ``>`` and ``&`` is then dropped, which
leaves nothing to unescape or strip. Finally the text is cut to ``max_chars``, marker included.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field

from bastion.errors import UsageError

__all__ = ["TRUNCATION_MARKER", "Sanitized", "sanitize"]

TRUNCATION_MARKER = "… [truncated]"
"""Ends text cut at ``max_chars``, after a space; marker and space count towards ``max_chars``."""

REMOVED = "[removed]"
_MAX_ROUNDS = 4

_ANSI = re.compile(
    r"""
      [\x1b]\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?    # OSC ... BEL or ST
    | [\x1b][PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?         # DCS, SOS, PM, APC ... ST
    | [\x1b]\[[0-?]*[\x20-/]*[@-~]                     # CSI
    | [\x9b][0-?]*[\x20-/]*[@-~]                       # 8-bit CSI
    | [\x9d][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?      # 8-bit OSC
    | [\x1b][\x20-/]*[0-~]                             # two-byte and nF escapes
    """,
    re.VERBOSE,
)
_NEWLINES = re.compile(r"\r\n?|[\x85\u2028\u2029]")
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


class _ControlTable(dict[int, int | None]):
    """A ``str.translate`` table dropping control and format characters, filled on first sight."""

    def __missing__(self, codepoint: int) -> int | None:
        keep = codepoint in (0x09, 0x0A) or (
            unicodedata.category(chr(codepoint)) not in _DROP_CATEGORIES
        )
        value = codepoint if keep else None
        self[codepoint] = value
        return value


_CONTROL = _ControlTable()

# Blocks whose content goes too: (opener, closer). An unterminated block runs to the end.
_BLOCKS = (
    (re.compile(r"<(script|style)\b[^<>]*>", re.IGNORECASE), "script"),
    (re.compile(r"<!--"), "html"),
)
_BLOCK_CLOSERS = {
    "script": re.compile(r"</script\s*>", re.IGNORECASE),
    "style": re.compile(r"</style\s*>", re.IGNORECASE),
    "<!--": re.compile(r"-->"),
}
_TAG = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*+)[^<>]*+>|<[!?][^<>]*+>")
_BREAK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "footer"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p"}
    | {"pre", "section", "table", "td", "th", "tr", "ul"}
)

_W = r"\s+"
_OVERRIDES = re.compile(
    "|".join(
        (
            rf"\bignore{_W}(?:(?:all|any){_W})?(?:(?:the|your|of{_W}the){_W})?"
            rf"(?:previous|prior|above|earlier|preceding|foregoing){_W}"
            rf"(?:instructions?|prompts?|directions|rules|messages?)\b",
            rf"\bignore{_W}all{_W}(?:instructions|rules)\b",
            rf"\b(?:disregard|forget){_W}(?:(?:all|any|everything){_W})?(?:(?:the|your){_W})?"
            rf"(?:above|previous|prior|earlier|preceding|foregoing)"
            rf"(?:{_W}(?:instructions?|prompts?|directions|rules|messages?|text))?\b",
            rf"\byou{_W}are{_W}now\b",
            r"\bsystem\s*prompt\s*:",
            rf"\bnew{_W}instructions\s*:",
            r"<\|[^<>|\s]{1,40}\|>",
            r"\[/?INST\]",
        )
    ),
    re.IGNORECASE,
)

_HSPACE = re.compile(r"[^\S\n]{2,}|[^\S\n\t ]")
_LINE_EDGES = re.compile(r"[^\S\n]*\n[^\S\n]*")
_BLANK_LINES = re.compile(r"\n{3,}")
_UNSAFE_MARKUP = str.maketrans("", "", "<>&")


@dataclass(frozen=True, slots=True)
class Sanitized:
    """Sanitised text, what kinds of content were removed, and whether it was cut.

    ``removed`` holds, in order of first sight and without repeats: ``"ansi"``, ``"control"``,
    ``"script"`` (script, style), ``"html"`` (tags, comments) and ``"override: <phrase>"`` for
    each instruction-override phrase, lower-cased with its whitespace collapsed.
    """

    text: str
    removed: list[str] = field(default_factory=list)
    truncated: bool = False


def sanitize(text: str, *, max_chars: int = 4000) -> Sanitized:
    """Clean ``text`` for an LLM prompt and cut it to ``max_chars`` (see the module docstring).

    Pure and idempotent: ``sanitize(sanitize(t).text).text == sanitize(t).text``.
    """
    if max_chars < len(TRUNCATION_MARKER):
        raise UsageError(f"max_chars must be >= {len(TRUNCATION_MARKER)}, got {max_chars}")
    removed: dict[str, None] = {}
    cleaned = _settle(text, removed)
    truncated = len(cleaned) > max_chars
    if truncated:
        cut = cleaned[: max(0, max_chars - len(TRUNCATION_MARKER) - 1)].rstrip()
        # Cutting can end the text mid-word ("you are nowhere" → "you are now"): settle again.
        cleaned = _settle(f"{cut} {TRUNCATION_MARKER}", removed)
    return Sanitized(cleaned, list(removed), truncated)


def _settle(text: str, removed: dict[str, None]) -> str:
    """Repeat one cleaning round until the text is a fixed point."""
    for _ in range(_MAX_ROUNDS):
        cleaned = _round(text, removed)
        if cleaned == text:
            return cleaned
        text = cleaned
    text = text.translate(_UNSAFE_MARKUP)
    while (cleaned := _round(text, removed)) != text:
        text = cleaned
    return cleaned


def _round(text: str, removed: dict[str, None]) -> str:
    text = _ANSI.sub(lambda m: _note(removed, "ansi"), text)
    text = _strip_controls(text, removed)
    text = _strip_blocks(text, removed)
    text = _TAG.sub(lambda m: _tag(m, removed), text)
    text = html.unescape(text)
    text = _strip_controls(text, removed)
    text = _OVERRIDES.sub(lambda m: _override(m, removed), text)
    return _collapse(text)


def _note(removed: dict[str, None], kind: str, replacement: str = "") -> str:
    removed[kind] = None
    return replacement


def _strip_controls(text: str, removed: dict[str, None]) -> str:
    text = _NEWLINES.sub("\n", text)
    stripped = text.translate(_CONTROL)
    if len(stripped) != len(text):
        removed["control"] = None
    return stripped


def _strip_blocks(text: str, removed: dict[str, None]) -> str:
    """Remove script, style and comment blocks in one linear scan per kind."""
    for opener, kind in _BLOCKS:
        parts: list[str] = []
        pos = 0
        while (start := opener.search(text, pos)) is not None:
            parts.append(text[pos : start.start()])
            removed[kind] = None
            closer = _BLOCK_CLOSERS[(start.group(1) if start.groups() else "<!--").lower()]
            end = closer.search(text, start.end())
            if end is None:
                pos = len(text)
                break
            pos = end.end()
        parts.append(text[pos:])
        text = "".join(parts)
    return text


def _tag(match: re.Match[str], removed: dict[str, None]) -> str:
    name = (match.group(1) or "").lower()
    return _note(removed, "html", "\n" if name in _BREAK_TAGS else "")


def _override(match: re.Match[str], removed: dict[str, None]) -> str:
    phrase = " ".join(match.group().split()).lower()
    return _note(removed, f"override: {phrase}", REMOVED)


def _collapse(text: str) -> str:
    text = _HSPACE.sub(" ", text)
    text = _LINE_EDGES.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()
