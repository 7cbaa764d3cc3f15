"""Untrusted text made safe to print on an operator's terminal.

Halt and resume reasons (``bastion kill --reason``, ``POST /api/kill``, a kill-switch file edited
by hand), approval reasons, LLM rationales and exchange error messages come from people and
programs Bastion does not control, and ``bastion run`` and ``bastion status`` print them. Raw,
such text can drive the terminal: ``ESC [2J`` clears the screen, ``ESC ] 8`` plants a hyperlink,
``CR`` overwrites the line in front of it, and a bidi override (``U+202E``) makes ``HALTED``
read as something else. Printed through Rich, ``[bold red]`` or ``[link=...]`` in it would be
obeyed as markup too.

:func:`safe` is the one place that neutralises it: every character that is not visible text
is shown as its Python escape (``\\x1b``, ``\\n``, ``\\u202e``) so the operator sees that it is
there, and Rich markup is escaped so it prints literally. It renders only; the store and the
trace keep the raw value, which is the evidence.
"""

from __future__ import annotations

import unicodedata

from rich.markup import escape

from bastion.errors import UsageError

__all__ = ["ELLIPSIS", "safe"]

ELLIPSIS = "…"
"""Ends text that :func:`safe` cut at its ``limit``."""

# Invisible, but part of text rather than commands to the terminal: the joiners that hold emoji
# sequences (👩‍💻) and Indic or Persian words together.
_KEPT_FORMAT = frozenset("\u200c\u200d")
_ESCAPED_SPACE = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def safe(text: object, *, limit: int | None = None) -> str:
    """``text`` ready to interpolate into one line of Rich output, whatever it contains.

    Anything that is not a string is shown as its ``str()``: untrusted data is not always the
    type it claims (a hand-edited flag file with ``"when": 5``), and printing it must not crash.

    * C0 and C1 controls (ESC, BEL, backspace, CR, DEL, CSI...) and newlines and tabs become
      visible escapes: ``\\x1b``, ``\\x07``, ``\\r``, ``\\n``, ``\\t``; a one-line context stays
      one line;
    * format characters (category Cf: the bidi embeddings, overrides and isolates
      U+202A-U+202E and U+2066-U+2069, the marks U+200E, U+200F and U+061C, zero-width spaces)
      and other invisible code points (separators other than the space, private use,
      unassigned, surrogates) become ``\\u202e``-style escapes; only the zero-width joiner and
      non-joiner are kept, as emoji and scripts need them;
    * with ``limit``, at most ``limit`` visible characters are kept, the last being
      :data:`ELLIPSIS` when text was cut; an escape counts as its length and is never split;
    * Rich markup (``[bold]``, ``[link=...]``) is escaped last, so it prints literally.

    Letters of any script, accents and emoji pass unchanged.
    """
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be at least 1, got {limit}")
    pieces = [_visible(ch) for ch in (text if isinstance(text, str) else str(text))]
    if limit is not None and sum(map(len, pieces)) > limit:
        kept: list[str] = []
        room = limit - len(ELLIPSIS)
        for piece in pieces:
            if len(piece) > room:
                break
            kept.append(piece)
            room -= len(piece)
        pieces = [*kept, ELLIPSIS]
    return escape("".join(pieces))


def _visible(ch: str) -> str:
    """``ch`` itself when it is visible text, else its escape."""
    if ch in _ESCAPED_SPACE:
        return _ESCAPED_SPACE[ch]
    if ch in _KEPT_FORMAT or (ch.isprintable() and unicodedata.category(ch) != "Cf"):
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
