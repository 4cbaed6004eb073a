"""The one log viewer: follow, pause, search, jump, wrap, save; bounded memory.

`LogView` is fed with `append(chunk)` from any thread (a worker reading a log stream): the chunk
is decoded and sanitized in the caller's thread (`model.log_lines`; a big chunk in slices, so
the first lines show while the rest decodes), the lines go to an inbox, and at most one wake-up
message is in flight, so the UI drains whatever arrived since its last turn in one go however
fast the producer writes, and at most `DRAINS_PER_S` times a second (one draw per drain, not
one per chunk; `BULK_DRAINS_PER_S` while a bulk load pours in, which leaves the GIL to the
decoding thread). The status line is rebuilt at once on a change of mode, and at most
`STATUS_PER_S` times a second for changing counts. The lines live in a `LogRing` whose size comes
from the config (`[logs] max_lines`); the view renders only the visible rows (Textual's Line
API: `ScrollView.render_line`, as Textual's own `Log` does), so 100,000 lines cost no more to
show than 100.

Text is never parsed as markup: rows are built as `rich.text.Text` from the sanitized line (SGR
colours decoded by Rich's `AnsiDecoder`, everything else already dropped by the model), and the
status line is assembled from `Text` parts. Follow: new lines scroll the view to the end until
the user scrolls up; End/`G`/`f` resumes (scrolling back to the bottom by hand resumes too).
Pause keeps the view still and buffers new lines (bounded like the ring) until resumed. Wrap
breaks rows at the cell width (character wrap; log lines are not prose).
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import platformdirs
from rich.ansi import AnsiDecoder
from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.message import Message
from textual.screen import ModalScreen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import Input, Static

from raytui import locations
from raytui.model.log_lines import (
    Entry,
    LogDecoder,
    LogRing,
    Match,
    SearchError,
    compile_query,
    search,
)
from raytui.text import one_line
from raytui.tui import keys
from raytui.tui.screens.confirm import DIALOG_CSS, ConfirmScreen

__all__ = ["LogView", "SaveLogScreen"]

CONTINUED = "↩"  # end of a piece of a line longer than MAX_LINE_CHARS (display only)
_MATCH = Style(color="black", bgcolor="yellow")
_CURRENT = Style(color="black", bgcolor="bright_green", bold=True)
_MARKER = Style(dim=True)
REGEX_PREFIX = "re:"
DRAINS_PER_S = 30  # inbox drains (ring updates and redraws) per second, at most
BULK_LINES = 10_000  # a drain this big is a bulk load (a whole log fetched): ...
BULK_DRAINS_PER_S = 8  # ...the next drains come less often, so the decoding thread finishes
STATUS_PER_S = 4  # status-line rebuilds per second for changing counts, at most
FEED_SLICE = 64 * 1024  # a bigger chunk is decoded and delivered in slices of this size


class _Lines(ScrollView, can_focus=True, inherit_bindings=False):
    """The rows. All state lives in the owning `LogView`; this only maps rows to lines."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(
        "log_up", "log_down", "log_page_up", "log_page_down", "log_left", "log_right"
    )
    DEFAULT_CSS = """
    _Lines { background: $surface; color: $text; overflow: auto auto; height: 1fr; }
    _Lines:focus { background-tint: $foreground 5%; }
    """

    def __init__(self, owner: LogView) -> None:
        super().__init__(id="log-lines")
        self.owner = owner
        self.ring = owner.ring
        self.wrap = False
        self._width = 0  # widest line seen (cells), for the horizontal scroll
        # Rendered lines by absolute number (never invalidated by lines falling off the front).
        # A few screens' worth: each Strip is a dozen objects the garbage collector walks.
        self._cache: LRUCache[int, Strip] = LRUCache(256)
        self._style = Style()  # this widget's rich_style, taken once per frame (render_lines)
        # Wrap mode: _cum[k] = rows before absolute line _cum_base + k.
        self._cum: list[int] = [0]
        self._cum_base = 0
        self._wrap_width = 0
        self._quiet = False  # scroll changes made by the widget, not the user

    # -- rows ---------------------------------------------------------------------------------

    @staticmethod
    def _line_cells(entry: Entry) -> int:
        if type(entry) is str:
            return cell_len(entry)
        return cell_len(entry[0]) + (1 if entry[2] else 0)

    def _wrap_cols(self) -> int:
        return max(1, self.scrollable_content_region.width)

    def _rebuild_wrap(self) -> None:
        width = self._wrap_cols()
        self._wrap_width = width
        self._cum_base = self.ring.first
        cum = [0]
        total = 0
        for entry in self.ring.entries():
            total += max(1, math.ceil(self._line_cells(entry) / width))
            cum.append(total)
        self._cum = cum

    def _row_of(self, number: int) -> int:
        """The first row of absolute line `number` in the current mode."""
        if not self.wrap:
            return number - self.ring.first
        return self._cum[number - self._cum_base] - self._cum[self.ring.first - self._cum_base]

    def _rows(self) -> int:
        if not self.wrap:
            return len(self.ring)
        return (
            self._cum[self.ring.end - self._cum_base] - self._cum[self.ring.first - self._cum_base]
        )

    def _locate(self, row: int) -> tuple[int, int]:
        """(absolute line, piece within it) shown at `row`."""
        if not self.wrap:
            return self.ring.first + row, 0
        top = self._cum[self.ring.first - self._cum_base]
        k = bisect_right(self._cum, top + row) - 1
        return self._cum_base + k, top + row - self._cum[k]

    def added(self, lines: list[Entry], gone: int) -> None:
        """Lines were appended to the ring (and `gone` fell off its front). O(len(lines)):
        cached strips stay valid (keyed by absolute line number)."""
        widest = max(map(self._line_cells, lines), default=0)
        self._width = max(self._width, widest)
        rows_gone = gone
        if self.wrap:
            width = self._wrap_width
            cum = self._cum
            total = cum[-1]
            # Lines fed and dropped in the same batch never got a row: zero height.
            skipped = max(0, len(lines) - len(self.ring))
            cum.extend([total] * skipped)
            for line in lines[skipped:]:
                total += max(1, math.ceil(self._line_cells(line) / width))
                cum.append(total)
            base = self._cum_base
            rows_gone = cum[self.ring.first - base] - cum[max(base, self.ring.first - gone) - base]
            if self.ring.first - base > max(len(self.ring), 4096):
                del cum[: self.ring.first - base]
                self._cum_base = self.ring.first
        self._sync_size(rows_gone)

    def reset(self) -> None:
        """The ring was emptied or renumbered: forget rows and cached strips."""
        self._cache.clear()
        self._width = 0
        if self.wrap:
            self._rebuild_wrap()
        self._sync_size()

    def _sync_size(self, rows_gone: int = 0) -> None:
        width = 0 if self.wrap else self._width
        height = self._rows()
        self._set_virtual_size(Size(width, height))
        if self.owner.following:
            self._quiet = True
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)
            self._quiet = False
        elif rows_gone:
            self._quiet = True
            self.scroll_to(
                y=max(0, self.scroll_y - rows_gone), animate=False, immediate=True, force=True
            )
            self._quiet = False
        self.refresh()

    def _set_virtual_size(self, size: Size) -> None:
        """Grow or shrink the scrollable area. Assigning `virtual_size` lays out the whole
        screen (a layout reactive): while the ring fills, that was every drain. This widget's
        own size never depends on it, so only the scrollbars are updated, as Textual does when
        a layout pass finds the size changed (a scrollbar that appears or goes still lays out:
        `show_vertical_scrollbar` and `show_horizontal_scrollbar` are layout reactives)."""
        if size != self.virtual_size:
            self.set_reactive(_Lines.virtual_size, size)
            self._scroll_update(size)

    def set_wrap(self, wrap: bool) -> None:
        first_line, _ = self._locate(round(self.scroll_y))
        self.wrap = wrap
        if wrap:
            self._rebuild_wrap()
        self._cache.clear()
        self.virtual_size = Size(0 if wrap else self._width, self._rows())
        self._quiet = True
        if self.owner.following:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)
        elif first_line >= self.ring.first:
            self.scroll_to(
                x=0, y=self._row_of(first_line), animate=False, immediate=True, force=True
            )
        self._quiet = False
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self.wrap and self._wrap_cols() != self._wrap_width:
            self.set_wrap(True)

    def show_line(self, number: int, column: int = 0) -> None:
        """Scroll so that line `number` is in view (a third from the top), column visible."""
        row = self._row_of(number)
        height = self.scrollable_content_region.height
        x = None
        if not self.wrap:
            width = self.scrollable_content_region.width
            x = 0 if column < width - 1 else max(0, column - width // 3)
        else:
            row += column // max(1, self._wrap_width)
        top = self.scroll_y
        if not top <= row < top + height:
            self._quiet = True
            self.scroll_to(
                x=x, y=max(0, row - height // 3), animate=False, immediate=True, force=True
            )
            self._quiet = False
        elif x is not None and x != self.scroll_x:
            self.scroll_to(x=x, animate=False, immediate=True, force=True)
        self.refresh()

    def invalidate(self) -> None:
        self._cache.clear()
        self.refresh()

    # -- rendering ----------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        self._style = self.rich_style  # walks the ancestors: once per frame, not once per row
        return super().render_lines(crop)

    def _strip(self, number: int) -> Strip:
        strip = self._cache.get(number)
        if strip is not None:
            return strip
        line = self.ring.line(number)
        if line.ansi is None:
            text = Text(line.plain, end="", no_wrap=True)
        else:
            text = AnsiDecoder().decode_line(line.ansi)
            text.no_wrap = True
            text.end = ""
        for match, current in self.owner.matches_on(number):
            text.stylize(_CURRENT if current else _MATCH, match.start, match.end)
        if line.continued:
            text.append(CONTINUED, _MARKER)
        text.stylize_before(self._style)
        strip = Strip(text.render(self.app.console), text.cell_len)
        self._cache[number] = strip
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        style = self._style
        row = scroll_y + y
        if row >= self._rows():
            return Strip.blank(width, style)
        number, piece = self._locate(row)
        if number < self.ring.first or number >= self.ring.end:
            return Strip.blank(width, style)
        strip = self._strip(number)
        if self.wrap:
            start = piece * self._wrap_width
            return strip.crop_extend(start, start + width, style).apply_offsets(start, row)
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_offsets(scroll_x, row)

    # -- user scrolling -----------------------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._quiet:
            return
        if new_value < old_value and self.owner.following:
            self.owner.set_following(False)
        elif (
            new_value > old_value
            and new_value >= self.max_scroll_y
            and not (self.owner.following or self.owner.paused)
        ):
            self.owner.set_following(True)

    def action_scroll_up(self) -> None:
        self.scroll_up(animate=False)

    def action_scroll_down(self) -> None:
        self.scroll_down(animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    def action_scroll_left(self) -> None:
        self.scroll_left(animate=False)

    def action_scroll_right(self) -> None:
        self.scroll_right(animate=False)


class LogView(Vertical):
    """A log: rows, a search input (shown by `/`) and a status line."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(
        "log_follow",
        "log_pause",
        "log_search",
        "log_next",
        "log_prev",
        "log_top",
        "log_end",
        "log_wrap",
        "log_save",
    )
    DEFAULT_CSS = """
    LogView { height: 1fr; }
    LogView > #log-search { display: none; height: 3; }
    LogView.searching > #log-search { display: block; }
    LogView > #log-status { height: 1; width: 1fr; background: $panel; color: $text-muted; }
    """

    class Arrived(Message):
        """Lines are waiting in the inbox (posted from the feeding thread, one at a time)."""

    class Ended(Message):
        def __init__(self, error: str | None) -> None:
            super().__init__()
            self.error = error

    def __init__(self, source: str, *, max_lines: int = 50_000, id: str | None = None) -> None:
        super().__init__(id=id)
        self.source = one_line(source)  # a name from Ray: controls shown escaped, one line
        self.ring = LogRing(max_lines)
        self.following = True
        self.paused = False
        self.state = ""  # "ended" / a one-line error once the feed is over
        self._decoder = LogDecoder()
        self._feed_lock = threading.Lock()
        self._inbox: deque[Entry] = deque(maxlen=max_lines)
        self._inbox_lock = threading.Lock()
        self._inbox_over = 0
        self._woken = False
        self._drain_at = 0.0  # the earliest time for the next drain
        self._last_status = 0.0
        self._status_timer: Timer | None = None
        self._pending: deque[Entry] = deque(maxlen=max_lines)
        self._pending_over = 0
        self.received = 0  # lines decoded so far (ring + pending + inbox + dropped)
        # search
        self._pattern: re.Pattern[str] | None = None
        self.search_query = ""
        self._matches: list[Match] = []
        self._match_lines: list[int] = []
        self._lo = 0  # first match whose line is still in the ring
        self._current: int | None = None  # index into _matches
        self.search_error = ""
        self.lines_view = _Lines(self)

    def compose(self) -> ComposeResult:
        yield self.lines_view
        yield Input(
            placeholder=f"search (case-insensitive; {REGEX_PREFIX} for a regex)", id="log-search"
        )
        yield Static("", id="log-status", markup=False)

    def on_mount(self) -> None:
        self.lines_view.focus()
        self._status()

    def on_resize(self, event: events.Resize) -> None:
        self._status()

    # -- feeding (any thread) -----------------------------------------------------------------

    def append(self, chunk: bytes | str) -> None:
        """Feed a chunk of log output, cut anywhere. Safe from any thread. A big chunk (a whole
        log fetched at once) is decoded and delivered in slices, so its first lines are on
        screen while the rest is decoded (a slice may cut a character or a line: the decoder
        holds the rest)."""
        with self._feed_lock:
            for lo in range(0, len(chunk), FEED_SLICE):
                self._deliver(self._decoder.feed(chunk[lo : lo + FEED_SLICE]))

    def finish(self, error: str | None = None) -> None:
        """The feed is over: show the held partial line, and `error` (one line) if it failed."""
        with self._feed_lock:
            lines = self._decoder.flush()
        self._deliver(lines)
        self.post_message(self.Ended(error))

    def _deliver(self, lines: list[Entry]) -> None:
        if not lines:
            return
        with self._inbox_lock:
            room = self._inbox.maxlen or 0
            self._inbox_over += max(0, len(self._inbox) + len(lines) - room)
            self._inbox.extend(lines)
            self.received += len(lines)
            wake = not self._woken
            self._woken = True
        if wake:
            self.post_message(self.Arrived())

    def on_log_view_arrived(self, message: Arrived) -> None:
        message.stop()
        wait = self._drain_at - time.monotonic()
        if wait > 0:  # drained a moment ago: once more when the interval is up (still woken,
            self.set_timer(wait, self._drain)  # so no other message is posted meanwhile)
        else:
            self._drain()

    def _drain(self) -> None:
        with self._inbox_lock:
            batch = list(self._inbox)
            self._inbox.clear()
            over = self._inbox_over
            self._inbox_over = 0
            self._woken = False
        rate = BULK_DRAINS_PER_S if len(batch) + over >= BULK_LINES else DRAINS_PER_S
        self._drain_at = time.monotonic() + 1 / rate
        if self.paused:
            self._pending_over += over + max(0, len(self._pending) + len(batch) - self.ring.limit)
            self._pending.extend(batch)
        else:
            self._add(batch, over)
        self._status(counts_only=True)

    def on_log_view_ended(self, message: Ended) -> None:
        message.stop()
        self.state = f"error: {message.error}" if message.error else "ended"
        self._status()

    def _add(self, batch: list[Entry], skipped: int = 0) -> None:
        """Append `batch` to the ring; `skipped` lines came before it but were lost on the way
        (more than the ring holds arrived at once), so the whole ring is replaced."""
        if skipped:
            self.ring.skip(skipped)
            self.lines_view.reset()
        if not batch:
            return
        old_end = self.ring.end
        gone = self.ring.extend(batch)
        if self._pattern is not None:
            fresh = search(
                self.ring.lines(max(old_end, self.ring.first)),
                max(old_end, self.ring.first),
                self._pattern,
            )
            self._matches.extend(fresh)
            self._match_lines.extend(m.line for m in fresh)
            self._trim_matches()
        self.lines_view.added(batch, gone)

    def _trim_matches(self) -> None:
        self._lo = bisect_left(self._match_lines, self.ring.first)
        if self._current is not None and self._current < self._lo:
            self._current = None
        if self._lo > 4096 and self._lo > len(self._matches) // 2:
            del self._matches[: self._lo]
            del self._match_lines[: self._lo]
            if self._current is not None:
                self._current -= self._lo
            self._lo = 0

    # -- state --------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def match_count(self) -> int:
        return len(self._matches) - self._lo

    @property
    def match_position(self) -> int | None:
        """k of "k of N" (1-based), None when no match is current."""
        return None if self._current is None else self._current - self._lo + 1

    def set_following(self, on: bool) -> None:
        if on != self.following:
            self.following = on
            self._status()

    def matches_on(self, number: int) -> Iterable[tuple[Match, bool]]:
        lo = max(self._lo, bisect_left(self._match_lines, number))
        hi = bisect_right(self._match_lines, number, lo)
        return ((self._matches[i], i == self._current) for i in range(lo, hi))

    def _status(self, counts_only: bool = False) -> None:
        """Rebuild the status line; `counts_only` (new lines arrived): at most `STATUS_PER_S`
        times a second, the last change shown when the interval is up."""
        if counts_only:
            if self._status_timer is not None:
                return
            wait = self._last_status + 1 / STATUS_PER_S - time.monotonic()
            if wait > 0:
                self._status_timer = self.set_timer(wait, self._status)
                return
        if self._status_timer is not None:
            self._status_timer.stop()
            self._status_timer = None
        self._last_status = time.monotonic()
        try:
            status = self.query_one("#log-status", Static)
        except Exception:
            return
        mode = (
            ("PAUSED", "bold yellow")
            if self.paused
            else ("FOLLOW", "bold green")
            if self.following
            else ("scrolled", "bold")
        )
        parts: list[tuple[str, str] | str] = [mode]
        if self.paused:
            over = f" +{self._pending_over:,} dropped" if self._pending_over else ""
            parts.append(f" {len(self._pending):,} new lines{over}")
        if self.search_error:
            parts.append((f"  {self.search_error}", "red"))
        elif self._pattern is not None:
            k = self.match_position
            parts.append(f"  match {k or '-'} of {self.match_count:,}")
        parts.append(f"  {len(self.ring):,} lines")
        if self.ring.dropped:
            parts.append(f"  {self.ring.dropped:,} dropped")
        if self.lines_view.wrap:
            parts.append("  wrap")
        if self.state:
            parts.append((f"  {self.state}", "red" if self.state != "ended" else "dim"))
        rest = Text.assemble(*parts)
        room = max(8, status.size.width or 80) - rest.cell_len - 2
        name = Text(self.source, style="bold", no_wrap=True, overflow="ellipsis")
        name.truncate(max(3, room), overflow="ellipsis")
        # One row of fixed size: no layout pass (a full screen layout per update otherwise).
        status.update(
            Text.assemble(name, "  ", rest, no_wrap=True, overflow="ellipsis"), layout=False
        )

    # -- actions ------------------------------------------------------------------------------

    def action_follow(self) -> None:
        if self.following and not self.paused:
            self.set_following(False)
            return
        self.action_end()

    def action_end(self) -> None:
        if self.paused:
            self.action_pause()
        self.following = True
        lines = self.lines_view
        lines._quiet = True
        lines.scroll_to(x=0, y=lines.max_scroll_y, animate=False, immediate=True, force=True)
        lines._quiet = False
        self._status()

    def action_top(self) -> None:
        self.following = False
        lines = self.lines_view
        lines._quiet = True
        lines.scroll_to(x=0, y=0, animate=False, immediate=True, force=True)
        lines._quiet = False
        self._status()

    def action_pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.following = False
        else:
            self.paused = False
            batch = list(self._pending)
            self._pending.clear()
            over, self._pending_over = self._pending_over, 0
            self.following = True
            self._add(batch, over)
            self.lines_view._sync_size()
        self._status()

    def action_toggle_wrap(self) -> None:
        self.lines_view.set_wrap(not self.lines_view.wrap)
        self._status()

    def action_search(self) -> None:
        self.add_class("searching")
        box = self.query_one("#log-search", Input)
        box.value = self.search_query
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "log-search":
            return
        event.stop()
        self.remove_class("searching")
        self.lines_view.focus()
        self.run_search(event.value)

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape" and self.has_class("searching"):
            event.stop()
            self.remove_class("searching")
            self.lines_view.focus()

    def run_search(self, query: str) -> None:
        """Search the ring for `query` (`re:` prefix: a regex); jump to the first match at or
        below the top of the view (or the first one)."""
        self.search_error = ""
        self.search_query = query
        self._matches, self._match_lines, self._lo, self._current = [], [], 0, None
        self._pattern = None
        if query:
            try:
                if query.startswith(REGEX_PREFIX):
                    self._pattern = compile_query(query[len(REGEX_PREFIX) :], regex=True)
                else:
                    self._pattern = compile_query(query)
            except SearchError as exc:
                self.search_error = str(exc).splitlines()[0]
        if self._pattern is not None:
            self._matches = search(self.ring.lines(), self.ring.first, self._pattern)
            self._match_lines = [m.line for m in self._matches]
            if self._matches:
                top, _ = self.lines_view._locate(round(self.lines_view.scroll_y))
                i = bisect_left(self._match_lines, top)
                self._go(i if i < len(self._matches) else 0)
        self.lines_view.invalidate()
        self._status()

    def _go(self, index: int) -> None:
        self._current = index
        match = self._matches[index]
        self.following = False
        self.lines_view.invalidate()
        self.lines_view.show_line(match.line, match.start)
        self._status()

    def action_next_match(self) -> None:
        self._step(+1)

    def action_previous_match(self) -> None:
        self._step(-1)

    def _step(self, direction: int) -> None:
        self._trim_matches()
        n = self.match_count
        if not n:
            if self._pattern is None:
                self.action_search()
            return
        if self._current is None:
            top, _ = self.lines_view._locate(round(self.lines_view.scroll_y))
            i = bisect_left(self._match_lines, top, self._lo)
            k = i - self._lo if direction > 0 else i - self._lo - 1
        else:
            k = self._current - self._lo + direction
        self._go(self._lo + k % n)

    def action_save(self) -> None:
        text = self.ring.text()
        count = len(self.ring)

        def saved(path: Path | None) -> None:
            if path is not None:
                self.notify(f"saved {count:,} lines to {path}", title="log", markup=False)

        self.app.push_screen(SaveLogScreen(default_save_path(self.source), text), saved)


def default_save_path(source: str, now: float | None = None) -> Path:
    """`<downloads or cwd>/<source>-YYYYmmdd-HHMMSS.log`, the source reduced to safe chars."""
    downloads = Path(platformdirs.user_downloads_dir())
    folder = downloads if downloads.is_dir() else Path.cwd()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", source).strip("-.")[:60] or "log"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return folder / f"{slug}-{stamp}.log"


def write_log(path: Path, text: str, *, overwrite: bool) -> None:
    """Write `text` to `path` (0600; refuses an existing file unless `overwrite`)."""
    flags = os.O_WRONLY | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = locations.open_private(path, flags)
    with open(fd, "w", encoding="utf-8", newline="") as out:
        out.write(text)


class SaveLogScreen(ModalScreen[Path | None]):
    """Asks for a path; an existing file is overwritten only after a yes; errors one line."""

    DEFAULT_CSS = f"""
    SaveLogScreen {{ {DIALOG_CSS} }}
    SaveLogScreen #save-error {{ color: $error; height: auto; }}
    """
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back")

    def __init__(self, default: Path, text: str) -> None:
        super().__init__(id="save-log")
        self.default = default
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Save log"
            box.border_subtitle = "⏎ save  esc cancel"
            yield Input(str(self.default), id="save-path")
            yield Static("", id="save-error", markup=False)

    def action_back(self) -> None:
        self.dismiss(None)

    def _error(self, message: str) -> None:
        self.query_one("#save-error", Static).update(message)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        raw = event.value.strip()
        if not raw:
            self._error("type a file path")
            return
        path = Path(raw).expanduser()
        if path.is_dir():
            self._error(f"{path} is a directory: name a file in it")
            return
        if path.exists():

            def answered(yes: bool | None) -> None:
                if yes:
                    self._write(path, True)

            question = Text.assemble(f"{path}", " exists. Overwrite it?")
            self.app.push_screen(
                ConfirmScreen("Overwrite?", question, "overwrite", "keep", id="save-overwrite"),
                answered,
            )
            return
        self._write(path, False)

    @work(thread=True, exclusive=True, group="save-log")
    def _write(self, path: Path, overwrite: bool) -> None:
        try:
            write_log(path, self.text, overwrite=overwrite)
        except FileExistsError:
            self.app.call_from_thread(self._error, f"{path} exists now; save again to be asked")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self.app.call_from_thread(self._error, f"cannot write {path}: {reason}")
        else:
            self.app.call_from_thread(self.dismiss, path)
