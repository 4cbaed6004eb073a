"""The log viewer's data: decoding, sanitizing, the bounded ring and search (no Textual)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from raytui import config
from raytui.errors import UsageError
from raytui.model.log_lines import (
    MAX_LINE_CHARS,
    LogDecoder,
    LogLine,
    LogRing,
    SearchError,
    as_line,
    compile_query,
    sanitize,
    search,
)


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ("a\x1b[2Jb\x1b[10;5Hc\x1b[?25l\x1b[Kd", "abcd"),  # clear, move, mode, erase
        ("x\x1b]0;evil title\x07y", "xy"),  # OSC title ended by BEL
        ("x\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\y", "xlinky"),  # hyperlink, ST
        ("x\x1bPq#0;2;0;0;0\x1b\\y", "xy"),  # DCS (sixel)
        ("x\x1b]0;never ends", "x"),  # unterminated OSC runs to the end of the line
        ("a\x1b(Bb\x1b7c\x1b", "abc"),  # charset, save cursor, bare ESC at the end
        ("c1 \x9b2Jcsi \x9d0;t\x9cok", "c1 csi ok"),  # 8-bit C1 forms
        ("prog 10%\rprog 50%\rprog 100%", "prog 100%"),  # progress bar: last state
        ("crlf line\r", "crlf line"),
        ("bel\x07 del\x7f nul\x00", "bel del nul"),
        ("ab\x08c _\x08X", "ac X"),  # backspace erases, overstrike shows the second
        ("\tx\ty", "        x       y"),
        ("[bold]not markup[/] [red]x[/red]", "[bold]not markup[/] [red]x[/red]"),
        ("rtl \u202eevil", "rtl \\u202eevil"),
    ],
)
def test_sanitize_drops_terminal_controls_and_keeps_text(raw: str, plain: str) -> None:
    got_plain, ansi = sanitize(raw)
    assert got_plain == plain
    assert ansi is None


def test_sgr_is_kept_and_carried_to_next_lines_until_reset() -> None:
    dec = LogDecoder()
    lines = [
        as_line(e)
        for e in dec.feed("\x1b[31mred\x1b[0m plain\n\x1b[1;32mopen\nstill\n\x1b[0mdone\nafter\n")
    ]
    assert [line.plain for line in lines] == ["red plain", "open", "still", "done", "after"]
    assert lines[0].ansi == "\x1b[31mred\x1b[0m plain"
    assert lines[2].ansi == "\x1b[1;32mstill"  # colour opened on the line before
    assert lines[3].ansi == "\x1b[1;32m\x1b[0mdone"
    assert lines[4].ansi is None


def test_decoder_holds_partial_lines_and_cut_characters() -> None:
    dec = LogDecoder()
    euro = "€".encode()
    assert dec.feed(b"par") == []
    assert dec.feed(b"tial " + euro[:1]) == []
    lines = dec.feed(euro[1:] + b" end\nnext")
    assert lines == ["partial € end"]
    assert dec.flush() == ["next"]
    assert dec.flush() == []


def test_invalid_utf8_is_replaced_not_lost() -> None:
    dec = LogDecoder()
    lines = dec.feed(b"bad \xff\xfe bytes \xc3( ok\n")
    assert lines == ["bad \ufffd\ufffd bytes \ufffd( ok"]


def test_a_1mb_line_is_split_into_marked_pieces_and_saved_whole() -> None:
    big = "".join(chr(ord("a") + i % 26) for i in range(1_000_003))
    dec = LogDecoder()
    lines = dec.feed(big + "\nafter\n")
    pieces = [as_line(e) for e in lines[:-1]]
    assert len(pieces) == -(-len(big) // MAX_LINE_CHARS)
    assert all(len(p.plain) <= MAX_LINE_CHARS for p in pieces)
    assert [p.continued for p in pieces] == [True] * (len(pieces) - 1) + [False]
    ring = LogRing(10_000)
    ring.extend(lines)
    assert ring.text() == big + "\nafter\n"


def test_ring_is_bounded_numbers_lines_and_counts_drops() -> None:
    ring = LogRing(3)
    assert ring.extend([LogLine(str(i)) for i in range(5)]) == 2
    assert (len(ring), ring.dropped, ring.first, ring.end) == (3, 2, 2, 5)
    assert ring.line(2).plain == "2"
    with pytest.raises(IndexError):
        ring.line(1)
    assert [line.plain for line in ring.lines(3)] == ["3", "4"]
    assert ring.text() == "2\n3\n4\n"
    ring.skip(10)  # ten lines lost on the way in push out all held
    assert (len(ring), ring.dropped, ring.end) == (0, 15, 15)


def test_search_substring_is_case_insensitive_and_regex_optional() -> None:
    lines = [LogLine("Error one"), LogLine("fine"), LogLine("an error and ERROR")]
    hits = search(lines, 100, compile_query("error"))
    assert [(m.line, m.start, m.end) for m in hits] == [(100, 0, 5), (102, 3, 8), (102, 13, 18)]
    assert [m.line for m in search(lines, 0, compile_query("e.r"))] == []  # literal dot
    assert [m.line for m in search(lines, 0, compile_query("^f", regex=True))] == [1]
    assert search(lines, 0, compile_query("[a-z]*", regex=True))  # empty matches skipped
    with pytest.raises(SearchError, match="bad regex"):
        compile_query("(", regex=True)


def test_logs_max_lines_in_config_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[logs]\nmax_lines = 1234\n")
    assert config.load(path).log_max_lines == 1234
    assert config.load(tmp_path / "missing.toml").log_max_lines == 50_000
    for bad, words in (('"many"', "whole number"), ("10", "from 100"), ("1.5", "whole number")):
        path.write_text(f"[logs]\nmax_lines = {bad}\n")
        with pytest.raises(UsageError, match=words) as info:
            config.load(path)
        assert "logs.max_lines" in str(info.value) and "\n" not in str(info.value)


def test_stored_lines_are_not_tracked_by_the_garbage_collector() -> None:
    """A full collection walks every tracked object: a ring of 100,000 per-line objects made it
    stall a following view for 100-180 ms. Stored lines (plain, coloured, continued pieces)
    must be objects the collector does not track."""
    dec = LogDecoder()
    ring = LogRing(1_000)
    ring.extend(dec.feed("plain\n\x1b[31mred\x1b[0m\n" + "x" * (MAX_LINE_CHARS + 5) + "\n"))
    gc.collect()  # an exact tuple of atoms is untracked by its first collection
    entries = list(ring.entries())
    assert len(entries) == 4
    assert not any(gc.is_tracked(e) for e in entries)
    assert [line.plain for line in ring.lines()][:2] == ["plain", "red"]
    assert ring.line(ring.first + 2).continued and not ring.line(ring.end - 1).continued
