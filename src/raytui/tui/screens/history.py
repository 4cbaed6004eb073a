"""Past prompt runs (`h`, or `:history`): browse, search, read, copy, re-send.

The list (newest first) shows when, state, model, where it ran, time to first token, tokens/s and
the prompt. `/` searches prompts and answers; `enter` opens the full prompt and answer; `y`
copies the answer; `e` opens the composer filled with the run's prompt and parameters. Every
read of the history database runs in a thread worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Static

from raytui.backends.history import HistoryStore
from raytui.errors import describe
from raytui.model.prompts import PromptRequest, RunRecord, RunState
from raytui.tui import format as fmt
from raytui.tui import keys
from raytui.tui.thread_work import ThreadWork
from raytui.tui.widgets.footer import KeysFooter

LIMIT = 500

STATE_STYLE = {
    RunState.DONE: "green",
    RunState.FAILED: "red",
    RunState.CANCELLED: "yellow",
    RunState.INTERRUPTED: "magenta",
    RunState.STREAMING: "cyan",
    RunState.LOADING: "cyan",
    RunState.WAITING: "yellow",
}


def request_of(record: RunRecord) -> PromptRequest:
    """The request that would run `record` again."""
    p = record.params
    num_gpus = p.get("num_gpus")
    return PromptRequest(
        prompt=record.prompt,
        backend=record.backend,
        model=record.model,
        system=p.get("system"),
        temperature=p.get("temperature"),
        max_tokens=p.get("max_tokens"),
        num_gpus=float(num_gpus) if num_gpus is not None else 1.0,
        node=p.get("node"),
        endpoint=p.get("endpoint"),
    )


def where(record: RunRecord) -> str:
    if record.node_id is None:
        return "-"
    host = record.hostname or record.node_ip or ""
    return f"{host} {record.node_id[:8]}".strip()


def when(created_at: float, now: float) -> str:
    """Local time of day for runs of the last 24 hours, else the date too."""
    stamp = time.localtime(created_at)
    if 0 <= now - created_at < 86_400:
        return time.strftime("%H:%M:%S", stamp)
    return time.strftime("%Y-%m-%d %H:%M", stamp)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class RunDetailScreen(ModalScreen[None]):
    """One run: prompt, parameters, where it ran, timings, the full answer (or error)."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back", "copy_answer", "history_resend")

    DEFAULT_CSS = """
    RunDetailScreen { align: center middle; }
    RunDetailScreen > VerticalScroll {
        width: 90%; height: 90%; border: round $accent; background: $surface; padding: 0 1;
    }
    RunDetailScreen .label { color: $text-muted; text-style: bold; margin-top: 1; }
    RunDetailScreen .error { color: $error; }
    """

    def __init__(self, record: RunRecord) -> None:
        super().__init__(id="run-detail")
        self.record = record

    def compose(self) -> ComposeResult:
        r = self.record
        params = ", ".join(f"{k} {v}" for k, v in r.params.items() if v is not None)
        facts = (
            f"{r.state} · {r.backend} {r.model} · {where(r)} {r.node_ip or ''}"
            f" · GPU {','.join(r.gpu_ids) or '-'} · ttft {_num(r.ttft_s, '.2f')}s"
            f" · {_num(r.tokens_per_s, '.1f')} tok/s"
        )
        with VerticalScroll() as scroll:
            scroll.border_title = f"run {r.run_id[:8]}"
            scroll.border_subtitle = "y copy answer · e re-send · esc close"
            yield Static(Text(facts), classes="facts")
            if params:
                yield Static(Text(params, style="dim"))
            yield Static("prompt", classes="label")
            yield Static(Text(r.prompt), classes="prompt")
            yield Static("answer", classes="label")
            yield Static(Text(r.text or "(no text)"), classes="answer")
            if r.error:
                yield Static(Text(r.error), classes="error")

    def action_back(self) -> None:
        self.dismiss()

    def action_copy_answer(self) -> None:
        self.app.copy_to_clipboard(self.record.text)
        self.notify(f"copied {len(self.record.text)} characters")

    def action_resend(self) -> None:
        record = self.record
        self.dismiss()
        _resend(self, record)


def _resend(screen: Screen[None], record: RunRecord) -> None:
    opener = getattr(screen.app, "open_composer", None)
    if opener is not None:
        opener(request_of(record))


class HistoryScreen(ThreadWork, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(
        "back", "history_search", "history_open", "copy_answer", "history_resend"
    )

    DEFAULT_CSS = """
    #history-title { height: 1; padding: 0 1; background: $panel; }
    #history-table { height: 1fr; }
    #history-search { dock: bottom; margin-bottom: 1; height: 1; border: none; padding: 0 1;
        background: $boost; }
    #history-preview { height: 4; padding: 0 1; color: $text-muted; background: $boost; }
    """

    def __init__(self, store: HistoryStore | None, now: Callable[[], float] = time.time) -> None:
        super().__init__(id="history")
        self.store = store
        self.now = now
        self.needle = ""
        self.records: list[RunRecord] = []
        self.loads = 0  # answered reads (tests wait on it)
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="history-title", markup=False)
        table: DataTable[str | Text] = DataTable(
            id="history-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static(id="history-preview", markup=False)
        yield Input(placeholder="search prompts and answers", id="history-search")
        yield KeysFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key in (
            ("when", "when"),
            ("state", "state"),
            ("model", "model"),
            ("node", "node"),
            ("ttft", "ttft"),
            ("tok/s", "rate"),
            ("prompt", "prompt"),
        ):
            table.add_column(label, key=key)
        self.query_one("#history-search", Input).display = False
        table.focus()
        self.reload()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.reload()

    # -- reading (thread worker) ----------------------------------------------------------------

    def reload(self) -> None:
        if self.store is None:
            self.error = "no history store"
            self._show()
            return
        store, needle = self.store, self.needle

        def loaded(records: list[RunRecord] | None, error: BaseException | None) -> None:
            if needle != self.needle:
                return  # an older search
            self.loads += 1
            self.error = None if error is None else describe(error)
            self.records = records or []
            self._show()

        work = partial(store.list, limit=LIMIT, search=needle or None)
        self.in_thread(work, loaded, name="read", group="history-read")

    def _show(self) -> None:
        table = self.query_one(DataTable)
        keep = self.current
        table.clear()
        now = self.now()
        for r in self.records:
            preview = " ".join(r.prompt.split())
            table.add_row(
                when(r.created_at, now),
                Text(str(r.state), style=STATE_STYLE.get(r.state, "")),
                fmt.cell(f"{r.model} ({r.backend})"),
                fmt.cell(where(r)),
                _num(r.ttft_s, ".2f"),
                _num(r.tokens_per_s, ".1f"),
                fmt.cell(fmt.ellipsize(preview, 60)),
                key=r.run_id,
            )
        if keep is not None:
            ids = [r.run_id for r in self.records]
            if keep.run_id in ids:
                table.move_cursor(row=ids.index(keep.run_id))
        title = f"History [{len(self.records)}]"
        if self.needle:
            title += f" /{self.needle}"
        if self.error:
            title += f" · cannot read history: {self.error}"
        title += " · / search · ⏎ full text · y copy · e re-send · esc back"
        self.query_one("#history-title", Static).update(title)
        self._preview()

    @property
    def current(self) -> RunRecord | None:
        if not self.records:
            return None
        row = self.query_one(DataTable).cursor_row
        return self.records[row] if 0 <= row < len(self.records) else None

    def _preview(self) -> None:
        r = self.current
        text = Text()
        if r is not None:
            answer = " ".join(((r.error or "") if r.state is RunState.FAILED else r.text).split())
            text = Text.assemble(("» ", "bold"), " ".join(r.prompt.split())[:200], "\n", answer)
        self.query_one("#history-preview", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._preview()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_run()

    # -- actions ------------------------------------------------------------------------------

    def action_open_run(self) -> None:
        r = self.current
        if r is not None:
            self.app.push_screen(RunDetailScreen(r))

    def action_copy_answer(self) -> None:
        r = self.current
        if r is None:
            return
        self.app.copy_to_clipboard(r.text)
        self.notify(f"copied {len(r.text)} characters")

    def action_resend(self) -> None:
        r = self.current
        if r is not None:
            _resend(self, r)

    def action_search(self) -> None:
        box = self.query_one("#history-search", Input)
        box.display = True
        box.focus()

    def action_back(self) -> None:
        box = self.query_one("#history-search", Input)
        if box.display or self.needle:
            box.value = ""
            box.display = False
            self._set_needle("")
            self.query_one(DataTable).focus()
            return
        if self.app.screen is self and len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "history-search":
            self._set_needle(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "history-search":
            if not event.value.strip():
                event.input.display = False
            self.query_one(DataTable).focus()

    def _set_needle(self, needle: str) -> None:
        if needle != self.needle:
            self.needle = needle
            self.reload()
