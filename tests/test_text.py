"""raytui.text: the one place outside text is made safe for a terminal and for a table cell."""

from __future__ import annotations

import io
import json

import pytest

from raytui.text import EscapingWriter, escape_controls, one_line


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain é 漢字\ttab\n", "plain é 漢字\ttab\n"),
        ("\x1b[2J", "\\u001b[2J"),
        ("bell\x07", "bell\\u0007"),
        ("csi\x9b31m", "csi\\u009b31m"),
        ("over\rwrite", "over\\u000dwrite"),
        ("\u202eevil", "\\u202eevil"),
        ("del\x7f", "del\\u007f"),
    ],
)
def test_escape_controls(raw: str, shown: str) -> None:
    assert escape_controls(raw) == shown


def test_one_line_folds_breaks_and_escapes() -> None:
    text = 'python -c "\nimport time\r\ntime.sleep(1)\x1b[31m"\tx\u2028y'
    flat = one_line(text)
    assert "\n" not in flat and "\r" not in flat and "\x1b" not in flat
    assert flat == 'python -c "⏎import time⏎time.sleep(1)\\u001b[31m" x⏎y'


def test_escaping_writer_keeps_json_exact() -> None:
    """--json output goes through the same writer: the escapes are JSON's own."""
    doc = {"name": "\x1b[2J\u009b\u202e\x7f", "n": 1}
    sink = io.StringIO()
    EscapingWriter(sink).write(json.dumps(doc, ensure_ascii=False))
    assert "\x1b" not in sink.getvalue() and "\x9b" not in sink.getvalue()
    assert json.loads(sink.getvalue()) == doc
