"""The log viewer widget and screen, driven by Pilot (no Ray: the feed is a plain generator)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from raytui.tui import keys
from raytui.tui.screens.log_screen import LogScreen
from raytui.tui.widgets.log_view import LogView, SaveLogScreen
from tests.support.screen_host import ScreenHost
from tests.support.tui_fakes import screen_text
from tests.support.waiting import until

SIZE = (80, 24)


class ViewApp(App[None]):
    def __init__(self, source: str = "job raysubmit_1", max_lines: int = 50_000) -> None:
        super().__init__()
        self.source = source
        self.max_lines = max_lines

    def compose(self) -> ComposeResult:
        yield LogView(self.source, max_lines=self.max_lines)

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)


async def fed(pilot: Pilot[Any], view: LogView, total: int) -> None:
    await until(pilot, lambda: view.ring.end + view.pending >= total, 10, f"{total} lines in")


def visible_rows(app: App[Any]) -> list[str]:
    """The screen's rows, without the two columns a vertical scrollbar may take."""
    return [row[: SIZE[0] - 2].rstrip() for row in screen_text(app).splitlines()]


async def test_hostile_content_is_shown_literally() -> None:
    app = ViewApp(source="[bold]job[/] \x1b[2J name")
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        for chunk in (
            b"first\n",
            b"\x1b[2J\x1b[H\x1b[10;40Hmoved? [bold]markup[/] [red]x[/red]\n",
            b"title\x1b]0;EVIL TITLE\x07 kept\n",
            b"bad \xff\xfe bytes\n",
            b"dl 10%\rdl 55%\rdl 100%\n",
            b"bell\x07 back\x08k\n",
            b"x" * 1_000_000 + b"\n",
            b"last\n",
        ):
            view.append(chunk)
        await fed(pilot, view, 8)
        view.action_top()
        await pilot.pause()
        rows = visible_rows(app)
        assert rows[0] == "first"
        assert rows[1] == "moved? [bold]markup[/] [red]x[/red]"
        assert rows[2] == "title kept"
        assert rows[3] == "bad \ufffd\ufffd bytes"
        assert rows[4] == "dl 100%"
        assert rows[5] == "bell back"
        assert rows[6].startswith("xxxxxxxx")
        assert "EVIL" not in screen_text(app)
        status = rows[-1]
        assert status.startswith("[bold]job[/] \\u001b[2J name")  # shown as typed, escaped
        # The 1 MB line: pieces with a continuation marker; the last line still arrived.
        assert view.ring.line(view.ring.end - 1).plain == "last"
        pieces = [ln for ln in view.ring.lines() if ln.plain.startswith("xxx")]
        assert sum(len(p.plain) for p in pieces) == 1_000_000
        first_piece = view.ring.first + 6
        assert view.ring.line(first_piece).continued
        assert view.lines_view._strip(first_piece).text.endswith("↩")  # the marker, shown
        view.action_toggle_wrap()  # 1 MB wrapped at 78 columns: still renders
        await pilot.pause()
        assert visible_rows(app)[6] == "x" * 78


async def test_ansi_colour_is_a_style_on_the_segment() -> None:
    app = ViewApp()
    async with app.run_test(size=SIZE) as pilot:
        app.view.append("plain \x1b[31mred\x1b[0m \x1b[1;38;5;33mblue\x1b[0m\n")
        await fed(pilot, app.view, 1)
        strip = app.view.lines_view.render_line(0)
        segments: list[Segment] = list(strip)
        by_text = {s.text: s.style for s in segments if s.text.strip()}
        red = by_text["red"]
        assert red is not None and red.color is not None and red.color.name == "color(1)"
        blue = by_text["blue"]
        assert blue is not None and blue.bold and blue.color is not None
        assert blue.color.number == 33
        assert visible_rows(app)[0] == "plain red blue"


async def test_100k_lines_open_search_and_follow() -> None:
    app = ViewApp(max_lines=100_000)
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        view.append(
            "".join(f"line {i} {'needle' if i % 1000 == 7 else ''}\n" for i in range(100_000))
        )
        await fed(pilot, view, 100_000)
        assert visible_rows(app)[-2].startswith("line 99999")  # following: the end shows
        await pilot.press("slash", *"NEEDLE", "enter")
        await until(pilot, lambda: view.match_count == 100, 5, "100 matches")
        # The view was at the end, so the first match at/after the top wraps to the first one.
        status = visible_rows(app)[-1]
        assert "match 1 of 100" in status, status
        assert "scrolled" in status
        await pilot.press("n", "n")
        assert view.match_position == 3
        assert "line 2007 needle" in screen_text(app)
        await pilot.press("N", "N", "N")
        assert view.match_position == 100  # previous from the first wraps to the last
        assert "line 99007 needle" in screen_text(app)
        # Follow resumes with End and new lines show.
        await pilot.press("end")
        view.append("line 100000 new\n")
        await fed(pilot, view, 100_001)
        await until(pilot, lambda: "line 100000 new" in screen_text(app), 5, "the new line")
        assert len(view.ring) == 100_000 and view.ring.dropped == 1
        # The match on the dropped first line is gone from the count.
        assert view.match_count == 100  # line 7 is still held; only line 0 dropped


async def test_ring_keeps_the_configured_number_of_lines() -> None:
    app = ViewApp(max_lines=1_000)
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        for i in range(5_000):
            view.append(f"line {i}\n")
        await fed(pilot, view, 5_000)
        assert len(view.ring) == 1_000
        assert view.ring.dropped == 4_000
        assert view.ring.line(view.ring.first).plain == "line 4000"
        # The status counts catch up within a status interval (rebuilt a few times a second).
        await until(pilot, lambda: "4,000 dropped" in visible_rows(app)[-1], 5, "the count")


async def test_rows_stay_rendered_when_the_full_ring_drops_lines() -> None:
    """Once the ring is full every batch drops lines off the front; rows already rendered are
    kept (keyed by absolute line number) instead of the whole view being rebuilt each batch."""
    app = ViewApp(max_lines=100)
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        view.append("".join(f"line {i}\n" for i in range(100)))
        await fed(pilot, view, 100)
        await pilot.press("home")  # look at the oldest lines, which stay held below
        number = view.ring.first + 50
        strip = view.lines_view._strip(number)
        view.append("".join(f"more {i}\n" for i in range(10)))
        await fed(pilot, view, 110)
        assert view.ring.dropped == 10
        assert view.lines_view._cache.get(number) is strip
        assert view.lines_view._strip(number).text == "line 50"


async def test_follow_stops_when_scrolled_up_and_resumes_with_end() -> None:
    app = ViewApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        view.append("".join(f"line {i}\n" for i in range(200)))
        await fed(pilot, view, 200)
        assert view.following
        await pilot.press("pageup")
        assert not view.following
        top_before = visible_rows(app)[0]
        view.append("".join(f"more {i}\n" for i in range(50)))
        await fed(pilot, view, 250)
        await pilot.pause()
        assert visible_rows(app)[0] == top_before  # the view stays where the user put it
        assert "scrolled" in visible_rows(app)[-1]
        await pilot.press("end")
        assert view.following
        view.append("newest\n")
        await fed(pilot, view, 251)
        await until(pilot, lambda: "newest" in screen_text(app), 5, "newest at the bottom")
        assert "FOLLOW" in visible_rows(app)[-1]


async def test_pause_buffers_new_lines_until_resumed() -> None:
    app = ViewApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        view.append("before\n")
        await fed(pilot, view, 1)
        await pilot.press("p")
        view.append("".join(f"held {i}\n" for i in range(30)))
        await fed(pilot, view, 31)
        await until(pilot, lambda: "30 new lines" in visible_rows(app)[-1], 5, "the count")
        assert "held" not in screen_text(app)
        assert len(view.ring) == 1
        await pilot.press("p")
        await until(pilot, lambda: "held 29" in screen_text(app), 5, "the held lines")
        assert len(view.ring) == 31 and view.following


async def test_wrap_toggles() -> None:
    app = ViewApp()
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        view.append("A" * 100 + "TAIL-OF-LINE\nnext\n")
        await fed(pilot, view, 2)
        assert "TAIL-OF-LINE" not in screen_text(app)
        await pilot.press("w")
        assert "wrap" in visible_rows(app)[-1]
        rows = visible_rows(app)
        assert "TAIL-OF-LINE" in screen_text(app)
        assert rows[2] == "next"
        await pilot.press("w")
        assert "TAIL-OF-LINE" not in screen_text(app)
        assert visible_rows(app)[1] == "next"


async def test_save_writes_the_ring_and_never_overwrites_silently(tmp_path: Path) -> None:
    app = ViewApp(max_lines=100)
    async with app.run_test(size=SIZE) as pilot:
        view = app.view
        view.append("".join(f"\x1b[32mline\x1b[0m {i}\x1b[2K\n" for i in range(150)))
        await fed(pilot, view, 150)
        target = tmp_path / "out.log"
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SaveLogScreen), 5, "the save dialog")
        box = app.screen.query_one("#save-path")
        box.value = str(target)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: target.exists() and not isinstance(app.screen, SaveLogScreen))
        expected = "".join(f"line {i}\n" for i in range(50, 150))
        assert target.read_text(encoding="utf-8") == expected
        assert target.stat().st_mode & 0o777 == 0o600
        # Again to the same path: asked; "n" keeps the file, "y" overwrites it.
        target.write_text("precious\n")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SaveLogScreen), 5, "the save dialog")
        app.screen.query_one("#save-path").value = str(target)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.id == "save-overwrite", 5, "the question")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, SaveLogScreen), 5, "back in dialog")
        assert target.read_text() == "precious\n"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.id == "save-overwrite", 5, "the question")
        await pilot.press("y")
        await until(pilot, lambda: target.read_text() == expected, 5, "the overwrite")
        # A path that cannot be written: one line in the dialog, nothing lost.
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SaveLogScreen), 5, "the save dialog")
        bad = tmp_path / "no" / "such" / "dir.log"
        app.screen.query_one("#save-path").value = str(bad)  # type: ignore[attr-defined]
        await pilot.press("enter")
        error = app.screen.query_one("#save-error")
        await until(pilot, lambda: "cannot write" in str(error.render()), 5, "the error")
        assert "No such file" in str(error.render()) and "\n" not in str(error.render())
        assert isinstance(app.screen, SaveLogScreen)


async def test_log_screen_pumps_a_blocking_feed_and_stops_when_closed() -> None:
    gate = threading.Event()
    seen_stop: list[threading.Event] = []
    more = threading.Semaphore(0)

    def feed(stop: threading.Event) -> Iterator[bytes]:
        seen_stop.append(stop)
        yield b"hello "
        yield b"world\nsecond line\n"
        while not stop.is_set():  # a producer that waits for more output
            if more.acquire(timeout=0.05):
                yield b"more\n"
        gate.set()

    screen = LogScreen("worker 1234 [log]", feed, max_lines=100)
    app = ScreenHost(screen)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "second line" in screen_text(app), 5, "the feed")
        assert visible_rows(app)[0] == "hello world"
        more.release()
        await until(pilot, lambda: "more" in screen_text(app), 5, "a later chunk")
        await pilot.press("escape")
        await until(pilot, gate.is_set, 5, "the feed to see the close")
        assert seen_stop[0].is_set()


async def test_log_screen_shows_a_failing_feed_on_one_line() -> None:
    def feed(stop: threading.Event) -> Iterator[str]:
        yield "partial line without newline"
        raise ConnectionError("stream\nreset [by peer]")

    app = ScreenHost(LogScreen("actor x", feed))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "error:" in screen_text(app), 5, "the error")
        rows = visible_rows(app)
        assert rows[0] == "partial line without newline"
        assert "ConnectionError: stream⏎reset [by peer]" in rows[-1]


async def test_log_keys_have_ids_and_can_be_remapped() -> None:
    ids = {"log_follow", "log_pause", "log_search", "log_next", "log_prev", "log_top"}
    assert ids | {"log_end", "log_wrap", "log_save"} <= set(keys.BY_ID)
    keys.check_keymap({"log_wrap": "W"})
    app = ViewApp()
    async with app.run_test(size=SIZE) as pilot:
        app.set_keymap({"log_wrap": "W"})
        await pilot.press("w")
        assert not app.view.lines_view.wrap
        await pilot.press("W")
        assert app.view.lines_view.wrap
