"""Making text from outside (Ray, model servers, peers, users, files) safe to show.

Two rules, each applied in one place:

- `escape_controls`: the command line writes everything through `EscapingWriter` (installed by
  `cli.main` on stdout and stderr), which turns terminal control characters into `\\uXXXX`:
  C0 controls other than tab and newline, DEL, C1 controls (`\\x9b` is a CSI on many
  terminals) and the bidirectional overrides that reorder what a line seems to say. The escape
  is the JSON escape of the same character, so `--json` output stays valid and exact.
- `one_line`: a table cell (TUI or CLI) shows text on one line: line breaks become `⏎`, tabs a
  space, and controls are escaped as above.
"""

from __future__ import annotations

import io
import re
from typing import TextIO

__all__ = ["EscapingWriter", "escape_controls", "one_line"]

# C0 except \t and \n, DEL, C1, bidi embeddings/overrides/isolates, line/paragraph separators.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_controls(text: str) -> str:
    """`text` with every terminal control character written as `\\uXXXX` (tab and \\n kept)."""
    return _CONTROLS.sub(_escape, text)


def one_line(text: str) -> str:
    """`text` for one table cell or message line: breaks as `⏎`, tabs as a space, escaped."""
    flat = _BREAKS.sub("⏎", text).replace("\t", " ")
    return _CONTROLS.sub(_escape, flat)


class EscapingWriter(io.TextIOBase):
    """A text stream that writes to `target` with `escape_controls` applied."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(escape_controls(text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", None) or "utf-8"
