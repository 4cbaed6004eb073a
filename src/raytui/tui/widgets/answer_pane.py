"""One streaming answer: where it runs, its state, time to first token, tokens/s, the text.

The composer hands each run event to `AnswerPane.event()`, which only advances the pane's
`RunProgress` (the reducer of model/runs.py, which dispatch uses too; no widget work per token);
`flush()`, called by the composer's timer every ~50 ms, pushes whatever changed into the widgets
in place. Errors are shown in the pane under the text that arrived.

A run that failed because its model is missing on its node offers a pull (a line under the status:
"model X is not on node Y — press ctrl+o to pull it"); the composer runs it and feeds the pane
`pull_event()`s (progress with a bar, then done or the error), see `PullState`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from raytui.model.prompts import (
    Done,
    Event,
    Failed,
    FailureKind,
    PromptRequest,
    PullEvent,
    PullProgress,
    RunState,
    Started,
)
from raytui.model.runs import ProgressFields, RunProgress, advance
from raytui.tui import format as fmt
from raytui.tui import keys
from raytui.tui.widgets.common import literal, palette

Clock = Callable[[], float]

STATE_MARK = {
    RunState.WAITING: "◌",
    RunState.LOADING: "◐",
    RunState.STREAMING: "●",
    RunState.DONE: "✔",
    RunState.FAILED: "✘",
    RunState.CANCELLED: "■",
    RunState.INTERRUPTED: "↯",
}


PULL_BAR_WIDTH = 20


class PullState(StrEnum):
    OFFERED = "offered"  # the run failed: model missing on its node
    PULLING = "pulling"
    DONE = "done"
    FAILED = "failed"


def where_text(started: Started) -> str:
    host = started.hostname or started.node_ip
    gpus = ",".join(started.gpu_ids) if started.gpu_ids else "none"
    return f"{host} GPU {gpus} · {started.node_ip} · node {started.node_id[:8]}"


class AnswerPane(ProgressFields, Vertical):
    """The answer of one run (one prompt x one model)."""

    can_focus = True
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings("copy_answer")

    DEFAULT_CSS = """
    AnswerPane {
        border: round $primary 40%;
        border-title-color: $text;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        height: 1fr;
        min-height: 5;
    }
    AnswerPane:focus { border: round $accent; }
    AnswerPane > .pane-status { height: 1; padding: 0 1; background: $boost; }
    AnswerPane > .pane-pull { height: auto; padding: 0 1; color: $warning; }
    AnswerPane > .pane-pull.-pull-done { color: $success; }
    AnswerPane > .pane-pull.-pull-failed { color: $error; }
    AnswerPane > VerticalScroll { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    AnswerPane .pane-text { width: 1fr; }
    AnswerPane .pane-error { color: $error; margin-top: 1; }
    AnswerPane.-failed { border: round $error 70%; }
    AnswerPane.-done { border: round $success 50%; }
    """

    def __init__(
        self,
        number: int,
        request: PromptRequest,
        *,
        clock: Clock = time.monotonic,
        id: str | None = None,
        pull_key: str = "ctrl+o",
        run_key: str = "ctrl+s",
    ) -> None:
        super().__init__(id=id)
        self.pull_key = pull_key  # as shown in the pull offer
        self.run_key = run_key
        self.number = number
        self.request = request
        self.clock = clock
        self.progress = RunProgress(clock())  # the run as its events describe it (model/runs)
        self.history_error: str | None = None  # the run's text could not be saved in history
        self.note = "submitting…"
        self.cancelling = False
        # The pull offer for a missing model: on which node, and how the pull goes.
        self.pull_state: PullState | None = None
        self.pull_node: Started | None = None
        self.pull_status = ""
        self.pull_completed: int | None = None
        self.pull_total: int | None = None
        self.pull_error: str | None = None
        self.pull_updates = 0
        self.dirty = True
        self._shown_len = 0

    # -- data (no widget work) ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return not self.state.final

    def event(self, event: Event) -> None:
        before = self.progress
        self.progress = advance(before, event, self.clock())
        if (
            isinstance(event, Failed)
            and before.final is None
            and event.kind is FailureKind.MODEL_MISSING
            and self.started is not None
            and self.request.backend == "ollama"
        ):
            self.pull_node = self.started
            self.pull_state = PullState.OFFERED
        self.dirty = True

    # -- the pull offer -------------------------------------------------------------------------

    @property
    def pull_offered(self) -> bool:
        """A pull can be started from this pane (offered, or the last one failed)."""
        return self.pull_state in (PullState.OFFERED, PullState.FAILED)

    def pull_key_tuple(self) -> tuple[str, str, str | None] | None:
        """(model, node id, endpoint as the node saw it): panes sharing it share one pull."""
        if self.pull_node is None:
            return None
        endpoint = self.pull_node.endpoint or self.request.endpoint
        return (self.request.model, self.pull_node.node_id, endpoint)

    def pull_started(self) -> None:
        self.pull_state = PullState.PULLING
        self.pull_status = "starting the pull…"
        self.pull_completed = self.pull_total = None
        self.pull_error = None
        self.dirty = True

    def pull_event(self, event: PullEvent) -> None:
        if isinstance(event, PullProgress):
            self.pull_status = event.status
            if event.total:
                self.pull_completed, self.pull_total = event.completed or 0, event.total
            self.pull_updates += 1
        elif isinstance(event, Done):
            self.pull_state = PullState.DONE
        else:
            self.pull_state = PullState.FAILED
            self.pull_error = event.error
        self.dirty = True

    def _pull_where(self) -> str:
        node = self.pull_node
        if node is None:
            return "its node"
        host = node.hostname or node.node_ip
        return f"node {node.node_id[:8]} ({host})" if host else f"node {node.node_id[:8]}"

    def pull_percent(self) -> float | None:
        if not self.pull_total:
            return None
        return max(0.0, min(100.0, 100.0 * (self.pull_completed or 0) / self.pull_total))

    def pull_line(self) -> str:
        """The pull offer or progress as words (also what tests read); '' when none."""
        model, where = self.request.model, self._pull_where()
        state = self.pull_state
        if state is None:
            return ""
        if state is PullState.OFFERED:
            return f"model {model} is not on {where} — press {self.pull_key} to pull it"
        if state is PullState.DONE:
            return f"pulled {model} on {where} — {self.run_key} to run again"
        if state is PullState.FAILED:
            return (
                f"pull of {model} on {where} failed — {self.pull_key} to try again\n"
                f"{self.pull_error}"
            )
        line = f"pulling {model} on {where}: {self.pull_status}"
        pct = self.pull_percent()
        if pct is not None:
            filled = round(pct * PULL_BAR_WIDTH / 100)
            bar = fmt.BAR_FULL * filled + fmt.BAR_EMPTY * (PULL_BAR_WIDTH - filled)
            size = fmt.mem_bytes(self.pull_completed, self.pull_total)
            line += f" {bar} {pct:.0f}% {size}"
        return line

    def fail(self, error: str) -> None:
        """The run could not be started (not connected, bad node, ...)."""
        self.event(Failed(error, FailureKind.BAD_REQUEST))

    def history_failed(self, reason: str) -> None:
        """History could not record this run: say so under the answer, which stays shown."""
        if self.history_error is None:
            self.history_error = reason
            self.dirty = True

    def mark_cancelling(self) -> None:
        if self.running:
            self.cancelling = True
            self.dirty = True

    def status_line(self) -> str:
        """The state as words (also what tests read)."""
        run = self.progress
        state = run.state
        if state is RunState.WAITING:
            if self.cancelling:
                return "cancelling…"
            w = run.waiting
            if w is None:
                return self.note
            return (
                f"waiting for a GPU · {w.gpus_free:g}/{w.gpus_total:g} free"
                f" ({w.where}, needs {w.gpus_needed:g})"
            )
        where = where_text(self.started) if self.started else ""
        if state is RunState.LOADING and run.loading is not None and not self.cancelling:
            return run.loading.describe()
        if state is RunState.LOADING:
            word = "cancelling…" if self.cancelling else "loading"
        elif state is RunState.STREAMING:
            word = "cancelling…" if self.cancelling else "streaming"
        elif state is RunState.DONE:
            word = f"done ({run.done_reason})" if run.done_reason else "done"
        else:
            word = str(state)
        return f"{word} · {where}" if where else word

    def metrics_line(self) -> str:
        run = self.progress
        parts = []
        ttft = run.ttft_s()
        if ttft is not None:
            parts.append(f"ttft {ttft:.2f}s")
        rate = run.tokens_per_s()
        if rate is not None:
            parts.append(f"{rate:.1f} tok/s")
        if run.timings is not None and run.timings.eval_count is not None:
            parts.append(f"{run.timings.eval_count} tok")
        return " · ".join(parts)

    # -- widgets ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(classes="pane-status", markup=False)
        yield Static(classes="pane-pull", markup=False)
        with VerticalScroll():
            yield Static(classes="pane-text", markup=False)
            yield Static(classes="pane-error", markup=False)

    def on_mount(self) -> None:
        preview = " ".join(self.request.prompt.split())
        title = f"{self.number} · {self.request.model} · " + fmt.ellipsize(preview, 40)
        self.border_title = literal(title)
        self.query_one(".pane-error").display = False
        self.query_one(".pane-pull").display = False
        self.flush()

    def flush(self) -> None:
        """Push what changed since the last flush into the widgets."""
        if not self.dirty or not self.is_mounted:
            return
        self.dirty = False
        p = palette(self.app)
        mark = STATE_MARK[self.state]
        style = {
            RunState.DONE: p.ok,
            RunState.FAILED: p.bad,
            RunState.CANCELLED: p.mid,
            RunState.WAITING: p.mid,
        }.get(self.state, "")
        status = Text.assemble((f"{mark} ", style), (self.status_line(), style))
        self.query_one(".pane-status", Static).update(status)
        self.border_subtitle = self.metrics_line()
        if len(self.text) != self._shown_len:
            scroll = self.query_one(VerticalScroll)
            at_end = scroll.scroll_y >= scroll.max_scroll_y - 1
            self._shown_len = len(self.text)
            self.query_one(".pane-text", Static).update(Text(self.text))
            if at_end:
                scroll.scroll_end(animate=False, immediate=False)
        error = self.query_one(".pane-error", Static)
        lines = []
        if self.state is RunState.CANCELLED:
            lines.append("cancelled: the run was stopped and its GPU freed")
        elif self.error:
            lines.append(self.error)
        if self.history_error:
            lines.append(self.history_error)
        if lines:
            error.update(Text("\n".join(lines)))
            error.display = True
        pull = self.query_one(".pane-pull", Static)
        pull.display = self.pull_state is not None
        if self.pull_state is not None:
            pull.update(Text(self.pull_line()))
            pull.set_class(self.pull_state is PullState.DONE, "-pull-done")
            pull.set_class(self.pull_state is PullState.FAILED, "-pull-failed")
        self.set_class(self.state is RunState.FAILED, "-failed")
        self.set_class(self.state is RunState.DONE, "-done")

    @property
    def shown_pull(self) -> str:
        """The pull line as the pane displays it right now ('' when hidden)."""
        pull = self.query_one(".pane-pull", Static)
        return str(pull.content) if pull.display else ""

    @property
    def shown_text(self) -> str:
        """The answer as the pane displays it right now."""
        return str(self.query_one(".pane-text", Static).content)

    def action_copy_answer(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.app.notify(f"copied {len(self.text)} characters of answer {self.number}")
