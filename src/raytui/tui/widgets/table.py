"""A keyboard-driven table that renders only the rows on screen.

Textual's DataTable measures every cell: at 8,192 rows its first paint took ~1.8 s here. This
table keeps the model objects as they came and formats a row only when it is drawn, so replacing
all rows costs one list copy and a redraw costs O(visible rows). Column widths are fixed or shared
from the widget's width, never measured from the data.

Drawn rows are cached by key. A subclass that says what a row's drawing depends on
(`row_version`) keeps a row's cached line across `set_rows` while that stays equal, so a new
snapshot re-draws only the visible rows that changed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, MutableSequence, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, TypeVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from raytui.tui import format as fmt
from raytui.tui import keys

T = TypeVar("T")


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int = 0  # 0: flexible, min_width plus a `flex` share of what is left
    justify: Literal["left", "right"] = "left"
    min_width: int = 4
    flex: int = 1
    max_width: int = 1000
    squeeze: int = 0  # narrowest it may get when the table is too narrow (0: its normal width)
    drop: int = 0  # still too narrow: hidden, lowest first (0: never hidden)


Formatter = Callable[[T, Sequence[int]], Sequence[Text | str]]
"""(item, column widths) -> one cell per column."""


class VirtualTable(ScrollView, Generic[T], can_focus=True):
    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        & > .vtable--header { text-style: bold; color: $text-muted; }
        & > .vtable--cursor { background: $surface-lighten-1; }
        &:focus > .vtable--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .vtable--empty { color: $text-muted; text-style: italic; }
    }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "vtable--header",
        "vtable--cursor",
        "vtable--empty",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        *keys.bindings("cursor_down", "cursor_up", "page_down", "page_up", "first", "last"),
        *keys.bindings("select"),
    ]

    class Highlighted(Message):
        def __init__(self, table: VirtualTable[object], key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VirtualTable[object]:
            return self.table

    class Selected(Message):
        def __init__(self, table: VirtualTable[object], key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> VirtualTable[object]:
            return self.table

    def __init__(
        self,
        columns: Sequence[Column],
        formatter: Formatter[T],
        *,
        empty_text: str = "nothing to show",
        selectable: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._columns = tuple(columns)
        self._format = formatter
        self._keys: Sequence[str] = ()
        self._items: Sequence[T] = ()
        self._cursor = 0
        self._cursor_key: str | None = None
        self._widths: list[int] = []
        self._widths_for = -1
        self._cache: dict[str, tuple[Hashable, bool, Strip]] = {}  # key -> (version, cursor, line)
        self._generation = 0  # bumps with set_rows: the version of rows without `row_version`
        self._hidden: frozenset[str] = frozenset()  # column keys not shown at all
        self.empty_text = empty_text
        self.selectable = selectable

    # -- data ---------------------------------------------------------------------------------

    def set_rows(self, keys: Sequence[str], items: Sequence[T]) -> None:
        """Replace all rows; the cursor stays on the same key when it is still there.

        Immutable or lazy sequences (e.g. rows made when read, `widgets/gpus.py`) are kept as
        they are, not copied: setting rows costs O(1) beyond what the caller built, and finding
        the cursor's key again is their `index`. Mutable ones are copied into tuples: a tuple of
        strings or gc-free model objects (model/cluster.py) is untracked by the next young
        collection, so the full ones never walk one entry per row (a list always is walked).
        """
        self._keys = tuple(keys) if isinstance(keys, MutableSequence) else keys
        self._items = tuple(items) if isinstance(items, MutableSequence) else items
        self._generation += 1
        old_key = self._cursor_key
        moved = self._cursor >= len(self._keys) or self._keys[self._cursor] != old_key
        if old_key is not None and moved:
            try:
                self._cursor = self._keys.index(old_key)
            except ValueError:
                self._cursor = min(self._cursor, max(0, len(self._keys) - 1))
        self._cursor = min(self._cursor, max(0, len(self._keys) - 1))
        self._keep_visible_cache()
        self.virtual_size = Size(1, len(self._keys) + 1)
        self._emit_if_moved()
        self.refresh()

    def row_version(self, item: T) -> Hashable | None:
        """What the drawing of `item` depends on, or None: redraw it after every `set_rows`.

        Override to keep unchanged rows' lines across updates (frozen model objects compare by
        value, so the item itself is often enough); include anything else the formatter reads.
        """
        return None

    def _keep_visible_cache(self) -> None:
        """After new rows: keep the cached lines of rows on screen only (O(visible rows))."""
        old, self._cache = self._cache, {}
        if not old:
            return
        top = int(self.scroll_y)
        for key in self._keys[top : top + self.scrollable_content_region.height + 1]:
            hit = old.get(key)
            if hit is not None:
                self._cache[key] = hit

    def set_hidden_columns(self, keys: Sequence[str]) -> None:
        """Hide these columns (by key) whatever the width, e.g. one that would be blank in
        every row; the others share the room."""
        hidden = frozenset(keys)
        if hidden != self._hidden:
            self._hidden = hidden
            self._widths_for = -1
            self._cache.clear()
            self.refresh()

    def set_empty_text(self, text: str) -> None:
        if text != self.empty_text:
            self.empty_text = text
            self.refresh()

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def cursor_key(self) -> str | None:
        return self._keys[self._cursor] if self._keys else None

    @property
    def cursor_item(self) -> T | None:
        return self._items[self._cursor] if self._items else None

    @property
    def cursor_row(self) -> int:
        return self._cursor

    def move_cursor_to_key(self, key: str) -> bool:
        try:
            self._set_cursor(self._keys.index(key))
        except ValueError:
            return False
        return True

    def row_text(self, key: str) -> str:
        """The plain text of a row as it would be drawn (for tests and screen readers)."""
        i = self._keys.index(key)
        return " ".join(fmt.cell(c).plain for c in self._cells(i))

    # -- cursor -------------------------------------------------------------------------------

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_down(self) -> None:
        self._set_cursor(self._cursor + 1)

    def action_cursor_up(self) -> None:
        self._set_cursor(self._cursor - 1)

    def action_page_down(self) -> None:
        self._set_cursor(self._cursor + self._page())

    def action_page_up(self) -> None:
        self._set_cursor(self._cursor - self._page())

    def action_first(self) -> None:
        self._set_cursor(0)

    def action_last(self) -> None:
        self._set_cursor(len(self._keys) - 1)

    def action_select(self) -> None:
        key = self.cursor_key
        if key is not None and self.selectable:
            self.post_message(self.Selected(self, key))  # type: ignore[arg-type]

    def _set_cursor(self, row: int) -> None:
        row = max(0, min(row, len(self._keys) - 1))
        if row == self._cursor and self._cursor_key == self.cursor_key:
            self._scroll_to_cursor()
            return
        self._cursor = row
        self._scroll_to_cursor()
        self._emit_if_moved()
        self.refresh()

    def _emit_if_moved(self) -> None:
        key = self.cursor_key
        if key != self._cursor_key:
            self._cursor_key = key
            self.post_message(self.Highlighted(self, key))  # type: ignore[arg-type]

    def _scroll_to_cursor(self) -> None:
        page = self._page()
        top = int(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + page:
            self.scroll_to(y=self._cursor - page + 1, animate=False, immediate=True)

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:
            return
        row = int(self.scroll_y) + event.y - 1
        if 0 <= row < len(self._keys):
            self._set_cursor(row)
            if event.chain >= 2:
                self.action_select()

    def on_focus(self) -> None:
        self._cache.clear()

    def on_blur(self) -> None:
        self._cache.clear()

    # -- drawing ------------------------------------------------------------------------------

    def _column_widths(self, width: int) -> list[int]:
        """Cells per column for `width`; 0 for a hidden column.

        Too narrow for every column at its normal width: columns with a `squeeze` width give up
        a cell each in turn, then columns with a `drop` rank are hidden, lowest rank first.
        """
        if width == self._widths_for:
            return self._widths
        widths = [0 if c.key in self._hidden else c.width or c.min_width for c in self._columns]

        def over() -> int:
            shown = [w for w in widths if w]
            return sum(shown) + len(shown) - 1 - width

        while over() > 0:
            give = [i for i, c in enumerate(self._columns) if c.squeeze and widths[i] > c.squeeze]
            if not give:
                break
            for i in give:
                if over() <= 0:
                    break
                widths[i] -= 1
        for i in sorted(
            (i for i, c in enumerate(self._columns) if c.drop and widths[i]),
            key=lambda i: self._columns[i].drop,
        ):
            if over() <= 0:
                break
            widths[i] = 0
        gaps = sum(1 for w in widths if w) - 1
        spare = width - gaps - sum(widths)
        # Hand out the spare cells by weight, in rounds, respecting max widths.
        while spare > 0:
            open_ = [
                i
                for i, c in enumerate(self._columns)
                if not c.width and widths[i] and widths[i] < c.max_width
            ]
            weight = sum(self._columns[i].flex for i in open_)
            if not weight:
                break
            given = 0
            for i in open_:
                c = self._columns[i]
                add = min(c.max_width - widths[i], max(1, spare * c.flex // weight), spare - given)
                widths[i] += add
                given += add
                if given >= spare:
                    break
            spare -= given
            if not given:
                break
        self._widths, self._widths_for = widths, width
        self._cache.clear()
        return widths

    def _cells(self, i: int) -> Sequence[Text | str]:
        return self._format(self._items[i], self._column_widths(self._content_width()))

    def _content_width(self) -> int:
        return self.scrollable_content_region.width

    def _line(self, cells: Sequence[Text | str], widths: Sequence[int], base: Style) -> Text:
        line = Text(no_wrap=True, end="", style=base)
        first = True
        for col, cell, w in zip(self._columns, cells, widths, strict=False):
            if not w:
                continue
            if not first:
                line.append(" ")
            first = False
            t = fmt.cell(cell).copy()  # one line, escaped: outside text cannot break the row
            t.no_wrap = True
            t.truncate(w, overflow="ellipsis")
            t.align(col.justify, w)
            line.append_text(t)
        return line

    def render_line(self, y: int) -> Strip:
        width = self._content_width()
        base = self.rich_style
        widths = self._column_widths(width)
        if y == 0:
            header = self.get_component_rich_style("vtable--header")
            labels = [c.label for c in self._columns]
            return self._strip(self._line(labels, widths, base + header), width, base)
        row = int(self.scroll_y) + y - 1
        if not self._keys:
            if y == 1:
                empty = self.get_component_rich_style("vtable--empty")
                return self._strip(Text(" " + self.empty_text, style=base + empty), width, base)
            return Strip.blank(width, base)
        if row >= len(self._keys):
            return Strip.blank(width, base)
        key = self._keys[row]
        version = self.row_version(self._items[row])
        if version is None:
            version = ("rows", self._generation)
        cursor = row == self._cursor
        cached = self._cache.get(key)
        if (
            cached is not None
            and cached[1] == cursor
            and cached[2].cell_length == width
            and cached[0] == version
        ):
            return cached[2]
        style = base
        if cursor:
            style = base + self.get_component_rich_style("vtable--cursor")
        strip = self._strip(self._line(self._cells(row), widths, style), width, style)
        if len(self._cache) > 512:
            self._cache.clear()
        self._cache[key] = (version, cursor, strip)
        return strip

    def _strip(self, text: Text, width: int, style: Style) -> Strip:
        segments = list(text.render(self.app.console))
        return Strip(segments).adjust_cell_length(width, style)

    def on_resize(self) -> None:
        self._cache.clear()
        self._scroll_to_cursor()
