"""The vLLM engines (`v`, or `:engines`): every engine actor holding a model on the cluster's
GPUs, and `d` to stop one and free its GPUs (after asking). The twin of `raytui engines`.

Reading and stopping go through the prompt service in thread workers (`ThreadWork`); results
and failures come back to a method on the event loop. A read-only console (`--readonly`) lists
but does not stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Static

from raytui.backends.service import PromptService
from raytui.errors import describe
from raytui.model.prompts import EngineInfo
from raytui.tui import format as fmt
from raytui.tui import keys
from raytui.tui.screens.confirm import ConfirmScreen
from raytui.tui.thread_work import ThreadWork
from raytui.tui.widgets.footer import KeysFooter

READONLY = "read-only console: engines cannot be stopped (started with --readonly)"


class EnginesScreen(ThreadWork, Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("back", "refresh", "engine_stop")

    DEFAULT_CSS = """
    #engines-title { height: 1; padding: 0 1; background: $panel; }
    #engines-table { height: 1fr; }
    #engines-empty { padding: 1 2; color: $text-muted; }
    """

    def __init__(
        self,
        service: PromptService | None,
        *,
        readonly: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(id="engines")
        self.service = service
        self.readonly = readonly
        self.now = now
        self.engines: list[EngineInfo] = []
        self.error: str | None = None
        self.loads = 0  # answered reads (tests wait on it)

    def compose(self) -> ComposeResult:
        yield Static(id="engines-title", markup=False)
        table: DataTable[str | Text] = DataTable(
            id="engines-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static(id="engines-empty", markup=False)
        yield KeysFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label in (
            "model", "state", "node", "GPUs", "TP", "in flight", "up", "engine (Ray actor)"
        ):  # fmt: skip
            table.add_column(label, key=label)
        table.focus()
        self.reload()

    # -- reading and stopping (thread workers) ------------------------------------------------

    def reload(self) -> None:
        service = self.service
        if service is None:
            self.error = "no cluster connection"
            self._show()
            return
        self.in_thread(
            service.engines, self._loaded, name="read", group="engines-read", exclusive=True
        )

    def _loaded(self, engines: list[EngineInfo] | None, error: BaseException | None) -> None:
        self.loads += 1
        self.engines = engines or []
        self.error = None if error is None else describe(error)
        self._show()

    def action_refresh(self) -> None:
        self.reload()

    def action_back(self) -> None:
        self.app.pop_screen()

    @property
    def current(self) -> EngineInfo | None:
        row = self.query_one(DataTable).cursor_row
        return self.engines[row] if 0 <= row < len(self.engines) else None

    def action_stop_engine(self) -> None:
        engine = self.current
        if engine is None or self.service is None:
            self.app.bell()
            return
        if self.readonly:
            self.notify(READONLY, severity="warning")
            return
        question = Text.assemble(
            "Stop engine ",
            (engine.name, "bold"),
            "?\n",
            (f"{engine.model or 'model unknown'} · {len(engine.gpu_ids)} GPU(s)", "dim"),
            f"\n\nIts model is unloaded and its GPUs freed; {engine.in_flight} request(s)"
            " streaming from it now end. The next prompt to this model loads it again.",
        )
        confirm = ConfirmScreen("Stop engine", question, "stop", "keep", id="confirm-stop")
        self.app.push_screen(confirm, lambda yes: self._stop(engine.name) if yes else None)

    def _stop(self, name: str) -> None:
        service = self.service
        assert service is not None

        def stopped(_: object, error: BaseException | None) -> None:
            if error is not None:
                self.notify(describe(error), title=f"Cannot stop {name}", severity="error")
            else:
                self.notify(f"stopped {name}")
            self.reload()

        self.in_thread(
            partial(service.stop_engines, [name]), stopped, name="stop", group="engines-stop"
        )

    # -- drawing ------------------------------------------------------------------------------

    def _show(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        now = self.now()
        for e in self.engines:
            state = e.status
            if state == "starting":
                starting = Text("starting…", style="dim")
                table.add_row(starting, "", "", "", "", "", "", fmt.cell(e.name), key=e.name)
                continue
            if state == "ready":
                shown: str | Text = "ready"
                up = fmt.span(now - e.started_at) if e.started_at else "-"
            elif state == "loading":
                shown = Text("loading…", style="dim")
                up = fmt.span(now - e.loading_since) if e.loading_since else "-"
            else:  # failed / dead: the reason, in red; the next prompt replaces it
                why = f"{state}: {e.error}" if e.error else state
                shown = fmt.cell(Text(why, style="red"))
                up = "-"
            table.add_row(
                fmt.cell(e.model or "-"),
                shown,
                fmt.cell(f"{e.hostname or '?'} {(e.node_id or '')[:8]}"),
                fmt.cell(",".join(e.gpu_ids) or "-"),
                str(e.tensor_parallel_size or "-"),
                str(e.in_flight),
                up,
                fmt.cell(e.name),
                key=e.name,
            )
        if self.engines:
            table.move_cursor(row=min(max(row, 0), len(self.engines) - 1))
        title = f"vLLM engines [{len(self.engines)}] · d stop · r refresh · esc back"
        if self.readonly:
            title += " · read-only"
        self.query_one("#engines-title", Static).update(title)
        empty = self.query_one("#engines-empty", Static)
        if self.error:
            empty.update(Text(f"cannot list the engines: {self.error}", style="red"))
        elif not self.engines:
            empty.update(
                "no vLLM engine is running. A prompt with the vllm backend starts one (loading"
                " a model takes minutes); it keeps the model on its GPUs until stopped here or"
                " with `raytui engines stop`."
            )
        empty.display = bool(self.error) or not self.engines
        table.display = bool(self.engines)
