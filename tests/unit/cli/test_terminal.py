"""safe(): untrusted text reaches the terminal visible and inert, never as commands or markup."""

from __future__ import annotations

import pytest
from rich.console import Console

from bastion.cli.terminal import ELLIPSIS, safe
from bastion.errors import UsageError

BIDI = [
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
]


def _printed(text: str) -> str:
    """What a Rich console writes for ``text`` inside markup, as the CLI prints it."""
    console = Console(record=True, width=400, color_system="truecolor", force_terminal=True)
    console.print(f"[bold red]HALTED[/]: {text} (by ops)", highlight=False)
    return console.export_text(styles=False)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        (
            "\x1b]8;;http://evil\x07click\x1b]8;;\x07",
            "\\x1b]8;;http://evil\\x07click\\x1b]8;;\\x07",
        ),
        ("\x9b31m", "\\x9b31m"),
        ("a\x08b\x7fc\x00", "a\\x08b\\x7fc\\x00"),
        ("over\rwrite", "over\\rwrite"),
        ("two\nlines\tand a tab", "two\\nlines\\tand a tab"),
        ("\u2028para\u2029", "\\u2028para\\u2029"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("private \ue000 \U000f0000", "private \\ue000 \\U000f0000"),
    ],
)
def test_controls_and_invisible_characters_are_shown_as_escapes(raw: str, shown: str) -> None:
    """C0, C1, DEL, CR, newlines, tabs, separators and private use become visible escapes."""
    assert safe(raw) == shown


@pytest.mark.parametrize("mark", BIDI)
def test_every_bidi_control_is_shown_as_its_escape(mark: str) -> None:
    """Embeddings, overrides, isolates and the LRM/RLM/ALM marks cannot reorder the line."""
    assert safe(f"ok{mark}desrever") == f"ok\\u{ord(mark):04x}desrever"


@pytest.mark.parametrize(
    "text",
    [
        "operator",
        "drill over — back to normal",
        "Zürich café, naïve, Ελληνικά, 日本語, العربية",
        "emoji 🚀🔥 and a family 👩‍👩‍👧 and a flag 🇫🇷 and ❤️",
        "spaces  and punctuation: (a), {b}, <c>, 50% = ok!",
        "",
    ],
)
def test_plain_text_accents_and_emoji_pass_unchanged(text: str) -> None:
    """Ordinary text of any script, emoji sequences included, is not touched."""
    assert safe(text) == text


@pytest.mark.parametrize("markup", ["[bold red]", "[/]", "[link=http://evil]x[/link]", "\\[bold]"])
def test_rich_markup_prints_literally(markup: str) -> None:
    """Markup in untrusted text is printed as written, and cannot close the CLI's own tags."""
    assert f"HALTED: {markup} (by ops)" in _printed(safe(markup))


def test_a_trailing_backslash_cannot_swallow_the_cli_s_closing_tag() -> None:
    """Text ending in a backslash still lets the markup after it close (Rich's own rule)."""
    console = Console(record=True, width=400)
    path = "C:\\dir\\"
    console.print(f"[red]{safe(path)}[/] done", highlight=False)
    assert console.export_text(styles=False) == "C:\\dir\\ done\n"


def test_nothing_raw_reaches_the_terminal() -> None:
    """Through a real terminal console: no ESC or bidi character, the visible form instead."""
    console = Console(record=True, width=400, force_terminal=True, color_system="truecolor")
    hostile = "\x1b[2J\u202e[bold]x\x1b]8;;http://evil\x07"
    console.print(f"[bold red]HALTED[/]: {safe(hostile)}", highlight=False)
    written = console.export_text(styles=False)
    assert "\x1b" not in written
    assert "\u202e" not in written
    assert "\\x1b[2J\\u202e[bold]x\\x1b]8;;http://evil\\x07" in written


@pytest.mark.parametrize(
    ("text", "limit", "shown"),
    [
        ("abcdef", 6, "abcdef"),
        ("abcdefg", 6, f"abcde{ELLIPSIS}"),
        ("ab\x1bcdef", 6, f"ab{ELLIPSIS}"),
        ("ab\x1bcdef", 7, f"ab\\x1b{ELLIPSIS}"),
        ("[bold]xyz", 7, f"\\[bold]{ELLIPSIS}"),
        ("x", 1, "x"),
        ("xy", 1, ELLIPSIS),
    ],
)
def test_a_limit_caps_the_visible_length_without_splitting_an_escape(
    text: str, limit: int, shown: str
) -> None:
    """At most ``limit`` visible characters, the ellipsis included; escapes are cut whole."""
    assert safe(text, limit=limit) == shown


def test_a_limit_below_one_is_a_usage_error() -> None:
    """No text fits in zero characters: asking for it is a bug at the call site."""
    with pytest.raises(UsageError, match="limit"):
        safe("x", limit=0)


@pytest.mark.parametrize(("value", "shown"), [(5, "5"), (None, "None"), (["[b]"], "['\\[b]']")])
def test_a_value_that_is_not_text_is_shown_as_its_text(value: object, shown: str) -> None:
    """Untrusted data of the wrong type (a flag file's "when": 5) prints instead of crashing."""
    assert safe(value) == shown


def test_the_raw_text_is_not_modified() -> None:
    """safe() renders; the caller's value (what the store keeps) is untouched."""
    reason = "\x1b[2J"
    safe(reason)
    assert reason == "\x1b[2J"
