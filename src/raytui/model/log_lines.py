"""Log text as the log viewer holds it: decoded, sanitized, split into lines, kept in a ring.

Pure data (no Textual, no Rich: the model layer's contract). Three parts:

- `LogDecoder` turns chunks (bytes or str, cut anywhere) into line entries: UTF-8 decoded
  incrementally with U+FFFD for invalid bytes, the partial last line held until its newline,
  every line sanitized like a terminal would show it (`sanitize`).
- `LogRing` keeps the last `limit` lines and counts the ones it dropped; lines have absolute
  numbers (0 = the first line ever fed) so a view and a search stay stable while the front drops.
- `search` finds a substring (case-insensitive) or a regex over the ring's plain text.

Lines are stored compact (`Entry`): a line without colour is its plain `str`, any other a plain
`tuple` `(plain, ansi, continued)`. Neither is tracked by Python's cyclic garbage collector (a
`str` never is; an exact tuple of atoms is untracked at its first collection), so a ring of
100,000 lines adds nothing to what every full collection walks; per-line objects (a dataclass,
even a `NamedTuple`) stayed tracked and made full collections stall a following view for
100-180 ms (bench/RESULTS-logs.md). `LogLine` (a `NamedTuple` of the same three fields) is
built only on demand, for the few rows on screen and for callers of `LogRing.lines()`.

What `sanitize` keeps and drops (the viewer shows text literally; nothing is ever parsed as
markup by this module or, downstream, by Textual):

- SGR colour/style sequences (`ESC [ params m`) are kept, and carried onto the next lines until
  a reset, as a terminal would (a colour opened on one line and closed three lines later).
- Every other escape is dropped whole: CSI (cursor moves, clear screen, modes), OSC (titles,
  hyperlinks; ended by BEL or ST, or by the end of the line), DCS/SOS/PM/APC strings, two-byte
  escapes (`ESC ( B`, `ESC 7`), a bare ESC, and their 8-bit C1 forms.
- Carriage return: only the text after the last `\\r` of a line is kept (a progress bar shows
  its final state); a trailing `\\r` of `\\r\\n` is a line ending. Backspace erases the
  character before it (so `_\\bX` overstrike shows `X`). Tabs become spaces (stops of 8).
  Other C0/C1 controls and DEL are dropped; bidirectional overrides, which would reorder
  what a line seems to say, are shown as visible `\\u202e`-style escapes.
- A line longer than `MAX_LINE_CHARS` is kept whole but stored as consecutive pieces of at most
  that many characters; every piece but the last is flagged `continued`, which the viewer shows
  as a marker at the end of the row and which `LogRing.text()` (save) joins back without a
  newline. This bounds the cost of rendering or searching one line, and memory at
  `limit * MAX_LINE_CHARS` characters in the worst case.
"""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, islice
from typing import NamedTuple, TypeAlias

__all__ = [
    "MAX_LINE_CHARS",
    "Entry",
    "LogDecoder",
    "LogLine",
    "LogRing",
    "Match",
    "SearchError",
    "as_line",
    "compile_query",
    "plain_of",
    "sanitize",
    "search",
]

MAX_LINE_CHARS = 8192
MAX_MATCHES = 200_000
_TAB = 8

# One escape or control "token" per match. Order matters: strings (OSC/DCS/...) before CSI
# before two-byte escapes; an unterminated string runs to the end of the line.
_ESCAPES = re.compile(
    r"""
    (?P<sgr>\x1b\[[0-9;:]*m)                                  # SGR: kept
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])                 # OSC, DCS, SOS, PM, APC
      (?:.*?(?:\x07|\x1b\\|\x9c)|.*\Z)                        #  ...to BEL / ST / end of line
    | (?:\x1b\[|\x9b)[0-?]*[\x20-/]*[@-~]?                    # other CSI (a cut one too)
    | \x1b[\x20-/]*[0-~]?                                     # two-byte escapes, bare ESC
    """,
    re.VERBOSE | re.DOTALL,
)
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_RESET = re.compile(r"\x1b\[(?:0*|0*(?:[;:]0*)*)m")
_DROP = re.compile("[\x00-\x07\x0b-\x1a\x1c-\x1f\x7f-\x9f]")  # not \t, \b (handled), ESC
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NEEDS_WORK = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BACKSPACE = re.compile("[^\x08]\x08")


class LogLine(NamedTuple):
    """One line: `plain` is what search and save see; `ansi` is the same text with its SGR
    sequences (None when it has none); `continued`: the next line is the rest of this one."""

    plain: str
    ansi: str | None = None
    continued: bool = False


# A stored line: the plain text alone (no colour, not continued), or (plain, ansi, continued).
# A `LogLine` is an Entry too (a tuple of the same shape), only a tracked one.
Entry: TypeAlias = str | tuple[str, str | None, bool]


def as_line(entry: Entry) -> LogLine:
    if type(entry) is str:
        return LogLine(entry)
    return entry if type(entry) is LogLine else LogLine(*entry)


def plain_of(entry: Entry) -> str:
    return entry if type(entry) is str else entry[0]


@dataclass(frozen=True, slots=True)
class Match:
    """A search hit: absolute line number and the character span within its plain text."""

    line: int
    start: int
    end: int


class SearchError(ValueError):
    """A regex that does not compile (the message is one line, for the status bar)."""


def _bidi_escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def _backspaces(text: str) -> str:
    while "\x08" in text:
        new = _BACKSPACE.sub("", text)
        if new == text:
            return new.replace("\x08", "")
        text = new
    return text


def _expand_tabs(parts: list[tuple[bool, str]]) -> list[tuple[bool, str]]:
    """Tabs to spaces across (is_sgr, text) parts, the column counted over text parts only."""
    col = 0
    out: list[tuple[bool, str]] = []
    for is_sgr, text in parts:
        if is_sgr or "\t" not in text:
            if not is_sgr:
                col += len(text)
            out.append((is_sgr, text))
            continue
        pieces = []
        for ch in text:
            if ch == "\t":
                n = _TAB - col % _TAB
                pieces.append(" " * n)
                col += n
            else:
                pieces.append(ch)
                col += 1
        out.append((False, "".join(pieces)))
    return out


def sanitize(line: str) -> tuple[str, str | None]:
    """(plain, ansi) for one line without its newline; `ansi` is None when no SGR remains."""
    if not _NEEDS_WORK.search(line):
        return line, None
    if "\x1b[" in line:  # the common coloured line: SGR only, nothing else to clean
        stripped = _SGR.sub("", line)
        if not _NEEDS_WORK.search(stripped):
            return stripped, line
    if "\r" in line:
        line = line.rstrip("\r").rsplit("\r", 1)[-1]
    parts: list[tuple[bool, str]] = []
    pos = 0
    for m in _ESCAPES.finditer(line):
        if m.start() > pos:
            parts.append((False, line[pos : m.start()]))
        if m.group("sgr") is not None:
            parts.append((True, m.group()))
        pos = m.end()
    if pos < len(line):
        parts.append((False, line[pos:]))
    cleaned: list[tuple[bool, str]] = []
    for is_sgr, text in parts:
        if not is_sgr:
            text = _BIDI.sub(_bidi_escape, _DROP.sub("", _backspaces(text)))
        cleaned.append((is_sgr, text))
    cleaned = _expand_tabs(cleaned)
    plain = "".join(text for is_sgr, text in cleaned if not is_sgr)
    if not any(is_sgr for is_sgr, _ in cleaned):
        return plain, None
    return plain, "".join(text for _, text in cleaned)


class LogDecoder:
    """Chunks in, complete sanitized lines out (as `Entry`s). Not thread-safe: one feeder at a
    time."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial: list[str] = []
        self._carry = ""  # SGR sequences in effect since the last reset

    def feed(self, chunk: bytes | str) -> list[Entry]:
        text = self._utf8.decode(chunk) if isinstance(chunk, bytes) else chunk
        if not text:
            return []
        pieces = text.split("\n")
        if len(pieces) == 1:
            self._partial.append(text)
            return []
        first = "".join(self._partial) + pieces[0] if self._partial else pieces[0]
        self._partial = [pieces[-1]] if pieces[-1] else []
        out: list[Entry] = []
        for raw in (first, *islice(pieces, 1, len(pieces) - 1)):
            self._line(raw, out)
        return out

    def flush(self) -> list[Entry]:
        """The held partial line (and any bytes of a cut character) as a last line."""
        rest = self._utf8.decode(b"", final=True)
        raw = "".join(self._partial) + rest
        self._partial = []
        out: list[Entry] = []
        if raw:
            self._line(raw, out)
        return out

    def _line(self, raw: str, out: list[Entry]) -> None:
        plain, ansi = sanitize(raw)
        if self._carry and ansi is None:
            ansi = self._carry + plain
        elif self._carry and ansi is not None:
            ansi = self._carry + ansi
        if ansi is not None:
            self._carry = self._next_carry(ansi)
        if len(plain) <= MAX_LINE_CHARS:
            out.append(plain if ansi is None else (plain, ansi, False))
            return
        # Too long for one row of work: pieces of the plain text (its SGR styling is dropped
        # beyond the cut, a price paid only by lines of over 8,192 characters).
        last = (len(plain) - 1) // MAX_LINE_CHARS
        for i in range(last + 1):
            piece = plain[i * MAX_LINE_CHARS : (i + 1) * MAX_LINE_CHARS]
            out.append((piece, None, True) if i < last else piece)

    @staticmethod
    def _next_carry(ansi: str) -> str:
        last = ansi.rfind("\x1b[")
        if _RESET.match(ansi, last):  # ends reset (the usual case): nothing carries over
            return ""
        codes = _SGR.findall(ansi)
        for i in range(len(codes) - 1, -1, -1):
            if _RESET.fullmatch(codes[i]):
                codes = codes[i + 1 :]
                break
        return "".join(codes[-16:])


class LogRing:
    """The last `limit` lines. Absolute line numbers: `first` is the number of the oldest line
    held (= `dropped`), `end` the number the next line will get."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a log ring holds at least one line")
        self.limit = limit
        self._lines: deque[Entry] = deque(maxlen=limit)
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._lines)

    @property
    def first(self) -> int:
        return self.dropped

    @property
    def end(self) -> int:
        return self.dropped + len(self._lines)

    def extend(self, lines: Iterable[Entry]) -> int:
        """Append lines (entries or `LogLine`s); returns how many old lines fell off the front.
        O(len(lines)): the deque drops from the front by itself."""
        held = len(self._lines)
        batch = lines if isinstance(lines, list | tuple) else list(lines)
        self._lines.extend(batch)
        gone = held + len(batch) - len(self._lines)
        self.dropped += gone
        return gone

    def entry(self, number: int) -> Entry:
        """The stored entry of absolute line `number` (IndexError when dropped or not yet fed)."""
        i = number - self.dropped
        if i < 0 or i >= len(self._lines):
            raise IndexError(number)
        return self._lines[i]

    def line(self, number: int) -> LogLine:
        """The line with absolute number `number` (IndexError when dropped or not yet fed)."""
        return as_line(self.entry(number))

    def entries(self, start: int | None = None, stop: int | None = None) -> Iterator[Entry]:
        lo = max(0, (start if start is not None else self.first) - self.dropped)
        hi = min(len(self._lines), (stop if stop is not None else self.end) - self.dropped)
        return islice(self._lines, lo, max(lo, hi))

    def lines(self, start: int | None = None, stop: int | None = None) -> Iterator[LogLine]:
        return map(as_line, self.entries(start, stop))

    def text(self) -> str:
        """The ring as a file: each line and "\\n", continued pieces joined back."""
        return "".join(
            e + "\n" if type(e) is str else e[0] if e[2] else e[0] + "\n" for e in self._lines
        )

    def clear(self) -> None:
        self.dropped = self.end
        self._lines.clear()

    def skip(self, count: int) -> None:
        """`count` more lines than the ring holds arrived and were lost on the way in: they
        push out every line held and keep their numbers (counted as dropped)."""
        self.clear()
        self.dropped += count


def compile_query(query: str, *, regex: bool = False) -> re.Pattern[str]:
    """Case-insensitive: a literal substring, or a regex (SearchError when it does not compile)."""
    if not regex:
        return re.compile(re.escape(query), re.IGNORECASE)
    try:
        return re.compile(query, re.IGNORECASE | re.MULTILINE)  # ^ and $ per line
    except re.error as exc:
        raise SearchError(f"bad regex: {exc}") from None


def search(
    lines: Iterable[Entry], first: int, pattern: re.Pattern[str], limit: int = MAX_MATCHES
) -> list[Match]:
    """Every non-empty match of `pattern` in `lines` (entries or `LogLine`s, numbered from
    `first`), in order, at most `limit`. One regex pass over the joined text, so 100,000 lines
    cost one C-speed scan."""
    plains = [e if type(e) is str else e[0] for e in lines]
    if not plains:
        return []
    joined = "\n".join(plains)
    starts = [0, *accumulate(len(p) + 1 for p in plains)]
    out: list[Match] = []
    for m in pattern.finditer(joined):
        if m.end() == m.start():
            continue
        i = bisect_right(starts, m.start()) - 1
        base = starts[i]
        end = min(m.end() - base, len(plains[i]))  # a regex match across "\n" ends the line
        out.append(Match(first + i, m.start() - base, end))
        if len(out) >= limit:
            break
    return out
