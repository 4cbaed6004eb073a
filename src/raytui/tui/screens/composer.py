"""The prompt composer (`c`, or `:prompt`): write prompts, send them to the cluster's GPUs, read the
answers streaming side by side.

Form: backend, model (comma-separated for several; suggestions from the node's model list,
fetched in a thread worker, `ctrl+l` reloads), target node or any, GPUs per run, temperature, max
tokens, system prompt, endpoint (blank: the node's default), and the prompt. With "one prompt per
line" each non-blank line is its own prompt (the seed's four themes). Every prompt x model opens
its own `AnswerPane` in a grid.

Keys: `ctrl+s` (or `ctrl+enter` where the terminal sends it) submits; `esc` cancels every running
stream (one press, no confirmation); with nothing running `esc` goes back. The editor is locked
while runs stream and unlocked when they end; its text is never cleared, so a failed or cancelled
prompt is still there to fix and re-send.

A run that fails because its model is missing on its node offers a pull in its pane; `ctrl+o`
pulls it on THAT node (`PromptService.pull`, an async iterator consumed in a worker; panes
sharing the model, node and endpoint share the pull), the pane shows the progress, then "pulled X
on node Y — ctrl+s to run again". `esc` stops a pull; a new submit waits until it has ended.

Streams are consumed with `async for` in async workers on the app's loop (never a blocking call);
panes collect events as plain data and a 50 ms timer flushes them into the widgets. The screen is
installed once by the app, so runs keep streaming while the user looks at other screens.

This module is the screen: the form, submit, cancel, the title and the wiring. Beside it:
`composer_runs.py` (each pane's run: start, stream, cancel), `model_pulls.py` (pulling a missing
model into the panes that need it) and `model_choices.py` (model and node suggestions, fetched in
thread workers). What a form asks for is checked by `model/prompts.prompt_requests`, as for
`raytui submit`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import ClassVar, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import Checkbox, Input, Label, Select, Static, TextArea

from raytui.backends.service import NodeChoice, PromptService
from raytui.errors import UsageError, describe
from raytui.model.prompts import BACKENDS, PromptRequest, RunState, prompt_requests, split_prompts
from raytui.tui import keys
from raytui.tui.screens.composer_runs import PaneRuns
from raytui.tui.screens.model_choices import (
    ANY_NODE,
    ModelsKey,
    looking_up,
    models_hint,
    node_options,
)
from raytui.tui.screens.model_pulls import PullKey, panes_to_pull, pull_into
from raytui.tui.thread_work import ThreadWork
from raytui.tui.widgets.answer_pane import AnswerPane, PullState
from raytui.tui.widgets.common import literal
from raytui.tui.widgets.footer import KeysFooter

FLUSH_S = 0.05
MAX_PANES = 16
_N = TypeVar("_N", int, float)
READONLY = "read-only console: prompts and model pulls are off (started with --readonly)"


def _form_number(name: str, text: str, kind: Callable[[str], _N]) -> _N | None:
    """A number typed in the form; None when blank."""
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"{name} {text!r} is not {what}") from None


def grid_columns(count: int, width: int) -> int:
    """Side-by-side panes: 2 for 2 or 4, up to 3 (4 on wide terminals) otherwise."""
    if count <= 1:
        return 1
    if count in (2, 4) or width < 100:
        return 2
    return min(count, 4 if width >= 160 else 3)


class ComposerScreen(ThreadWork, Screen[None]):
    """Compose, submit, watch, cancel. See the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(
        "prompt_submit", "prompt_cancel", "prompt_models", "prompt_pull"
    )

    DEFAULT_CSS = """
    ComposerScreen { layout: vertical; }
    #composer-title { height: 1; padding: 0 1; background: $panel; }
    #composer-form { height: auto; padding: 0 1; }
    #composer-form .form-row { height: 1; margin-bottom: 0; }
    #composer-form Label { margin-right: 1; color: $text-muted; }
    #composer-form Label.gap { margin: 0 1 0 2; }
    #composer-form Select { width: 14; }
    #composer-form #node { width: 30; }
    #composer-form #model { width: 1fr; }
    #composer-form #gpus { width: 6; }
    #composer-form #temperature { width: 9; }
    #composer-form #max-tokens { width: 9; }
    #composer-form #system { width: 1fr; }
    #composer-form #endpoint { width: 1fr; }
    #composer-form Checkbox { margin-left: 2; }
    #prompt { height: 5; border: none; background: $boost; }
    #prompt.-short { height: 3; }
    #prompt.-locked { opacity: 70%; }
    #models-hint { height: 1; color: $text-muted; }
    #answers { height: 1fr; grid-size: 1; grid-gutter: 0 1; grid-rows: 1fr; }
    #answers-empty { height: 1fr; padding: 1 2; color: $text-muted; }
    """

    class Submitted(Message):
        """Runs were submitted (one per pane)."""

        def __init__(self, requests: Sequence[PromptRequest]) -> None:
            super().__init__()
            self.requests = list(requests)

    class Finished(Message):
        """Every run of the last submit has ended."""

        def __init__(self, states: Sequence[RunState]) -> None:
            super().__init__()
            self.states = list(states)

    def __init__(
        self,
        service: PromptService | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        readonly: bool = False,
    ) -> None:
        super().__init__(id="composer")
        self.service = service
        self.readonly = readonly  # --readonly: prompts and pulls use the cluster, so they are off
        self.clock = clock
        self.panes: list[AnswerPane] = []
        self.pane_runs = PaneRuns(service) if service is not None else None
        self.models: list[str] = []
        self.submits = 0
        self._models_key: ModelsKey | None = None
        self._nodes_ok = False
        self._nodes_error: str | None = None  # the node list's last error, as shown
        self._node_choices: list[tuple[str, str]] = [("any node", ANY_NODE)]
        self._title_shown = ""
        self._pulls_running = 0

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="composer-title", markup=False)
        with Vertical(id="composer-form"):
            with Horizontal(classes="form-row"):
                yield Label("backend")
                yield Select(
                    [(b, b) for b in BACKENDS],
                    value="ollama",
                    allow_blank=False,
                    compact=True,
                    id="backend",
                )
                yield Label("model", classes="gap")
                yield Input(placeholder="name[, name…]", compact=True, id="model")
                yield Label("node", classes="gap")
                yield Select(
                    [("any node", ANY_NODE)],
                    value=ANY_NODE,
                    allow_blank=False,
                    compact=True,
                    id="node",
                )
            with Horizontal(classes="form-row"):
                yield Label("GPUs")
                yield Input("1", type="number", compact=True, id="gpus")
                yield Label("temp", classes="gap")
                yield Input(placeholder="default", type="number", compact=True, id="temperature")
                yield Label("max tokens", classes="gap")
                yield Input(placeholder="default", type="integer", compact=True, id="max-tokens")
                yield Checkbox("one prompt per line", compact=True, id="per-line")
            with Horizontal(classes="form-row"):
                yield Label("system")
                yield Input(placeholder="system prompt (optional)", compact=True, id="system")
                yield Label("endpoint", classes="gap")
                yield Input(placeholder="the node's default", compact=True, id="endpoint")
            yield TextArea(
                id="prompt",
                soft_wrap=True,
                compact=True,
                tab_behavior="focus",
                placeholder="Prompt… (ctrl+s sends; one per line with the checkbox on)",
            )
            yield Static(id="models-hint", markup=False)
        with Grid(id="answers"):
            yield Static(
                "Answers stream here, side by side when there are several prompts or models.\n"
                "ctrl+s send · esc cancel running streams (or go back) · "
                "y on a pane copies its answer · h history",
                id="answers-empty",
            )
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#prompt", TextArea).focus()
        self.set_interval(FLUSH_S, self.flush, name="composer-flush")
        self._show_title()
        self._refresh_choices()

    def on_screen_resume(self) -> None:
        self._refresh_choices()

    def on_resize(self) -> None:
        self.query_one("#prompt", TextArea).set_class(self.size.height < 30, "-short")

    # -- reading the form ---------------------------------------------------------------------

    @property
    def prompt_text(self) -> str:
        return self.query_one("#prompt", TextArea).text

    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value.strip()

    def _backend(self) -> str:
        value = self.query_one("#backend", Select).value
        return str(value) if isinstance(value, str) else "ollama"

    def _node(self) -> str | None:
        value = self.query_one("#node", Select).value
        return None if not isinstance(value, str) or value == ANY_NODE else value

    def build_requests(self) -> list[PromptRequest]:
        """The requests the form describes: every prompt x every model. Raises UsageError."""
        text = self.prompt_text
        if self.query_one("#per-line", Checkbox).value:
            prompts = split_prompts(text)
        else:
            prompts = [text] if text.strip() else []
        gpus = _form_number("GPUs per run", self._value("#gpus"), float)
        template = PromptRequest(
            prompt="",
            backend=self._backend(),
            model="",
            system=self._value("#system") or None,
            temperature=_form_number("temperature", self._value("#temperature"), float),
            max_tokens=_form_number("max tokens", self._value("#max-tokens"), int),
            num_gpus=1.0 if gpus is None else gpus,
            node=self._node(),
            endpoint=self._value("#endpoint") or None,
        )
        models = self._value("#model").split(",")
        return prompt_requests(prompts, models, template, max_runs=MAX_PANES)

    def prefill(self, request: PromptRequest) -> bool:
        """Fill the form from a past run (history's re-send). False while runs still stream."""
        if self.running:
            self.notify(
                f"{len(self.running)} run(s) still streaming: esc cancels them first",
                severity="warning",
            )
            return False
        backend = request.backend if request.backend in BACKENDS else "ollama"
        self.query_one("#backend", Select).value = backend
        self.query_one("#model", Input).value = request.model
        node = self.query_one("#node", Select)
        if request.node:
            options = [(label, value) for label, value in self._node_options()]
            if request.node not in {v for _, v in options}:
                options.append((request.node, request.node))
                node.set_options([(literal(label), value) for label, value in options])
            node.value = request.node
        else:
            node.value = ANY_NODE
        self.query_one("#gpus", Input).value = f"{request.num_gpus:g}"
        self.query_one("#temperature", Input).value = (
            "" if request.temperature is None else f"{request.temperature:g}"
        )
        self.query_one("#max-tokens", Input).value = (
            "" if request.max_tokens is None else str(request.max_tokens)
        )
        self.query_one("#system", Input).value = request.system or ""
        self.query_one("#endpoint", Input).value = request.endpoint or ""
        self.query_one("#per-line", Checkbox).value = False
        self.query_one("#prompt", TextArea).text = request.prompt
        self.query_one("#prompt", TextArea).focus()
        return True

    # -- submit, stream, cancel -----------------------------------------------------------------

    @property
    def running(self) -> list[AnswerPane]:
        return [p for p in self.panes if p.running]

    def action_submit(self) -> None:
        if self.pulling:
            self.notify(
                "a model pull is still running: wait for it, or esc to stop it",
                severity="warning",
            )
            return
        if self.running:
            self.notify(
                f"{len(self.running)} run(s) still streaming: wait, or esc to cancel them",
                severity="warning",
            )
            return
        if self.readonly:
            self.notify(READONLY, severity="warning")
            return
        if self.service is None:
            self.notify("no cluster connection to run prompts on", severity="error")
            return
        try:
            requests = self.build_requests()
        except UsageError as exc:
            self.notify(str(exc), title="Cannot send", severity="error")
            return
        self.submits += 1
        grid = self.query_one("#answers", Grid)
        grid.remove_children()
        if self.pane_runs is not None:
            self.pane_runs.clear()
        self.panes = [
            AnswerPane(
                i,
                r,
                clock=self.clock,
                id=f"answer-{self.submits}-{i}",
                pull_key=self._key_label("prompt_pull"),
                run_key=self._key_label("prompt_submit"),
            )
            for i, r in enumerate(requests, start=1)
        ]
        cols = grid_columns(len(self.panes), self.app.size.width)
        grid.styles.grid_size_columns = cols
        grid.styles.grid_size_rows = math.ceil(len(self.panes) / cols)
        grid.mount_all(self.panes)
        self._lock(True)
        for pane in self.panes:
            self.run_worker(
                self._consume(pane),
                name=f"prompt-{pane.number}",
                group="prompt-runs",
                exit_on_error=False,
            )
        self.post_message(self.Submitted(requests))
        self._show_title()

    async def _consume(self, pane: AnswerPane) -> None:
        assert self.pane_runs is not None
        await self.pane_runs.feed(pane)
        self._run_ended()

    def _run_ended(self) -> None:
        if not self.is_mounted or self.running:
            return
        self.flush()
        self._lock(False)
        states = [p.state for p in self.panes]
        failed = sum(s is RunState.FAILED for s in states)
        cancelled = sum(s is RunState.CANCELLED for s in states)
        if failed:
            self.notify(
                f"{failed} of {len(states)} run(s) failed: the error is in the pane; "
                "the prompt is still in the editor",
                severity="error",
            )
        elif cancelled:
            self.notify(f"cancelled {cancelled} run(s)", severity="warning")
        else:
            self.notify(f"{len(states)} answer(s) complete")
        if any(p.pull_offered for p in self.panes):
            self.refresh_bindings()  # show the pull key in the footer
        self.post_message(self.Finished(states))

    def action_cancel_or_back(self) -> None:
        running = self.running
        if not running and self.pulling:
            self.workers.cancel_group(self, "model-pulls")
            self.notify("stopping the model pull…")
            return
        if not running:
            if self.app.screen is self and len(self.app.screen_stack) > 1:
                self.app.pop_screen()
            return
        for pane in running:
            if self.pane_runs is not None:
                self.pane_runs.cancel(pane)
            else:
                pane.mark_cancelling()
        self.notify(f"cancelling {len(running)} run(s)…")

    # -- pulling a missing model ------------------------------------------------------------------

    @property
    def pulling(self) -> bool:
        return self._pulls_running > 0

    def _key_label(self, key_id: str) -> str:
        """The first key bound to `key_id` now (after the config's remaps), as the user types it."""
        current = getattr(getattr(self.app, "state", None), "keys", None) or {}
        bound = str(current.get(key_id) or keys.BY_ID[key_id].keys)
        return keys.display_keys(bound.split(",")[0]) or bound

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pull_model":
            offered = any(p.pull_offered for p in self.panes)
            return offered and self.service is not None and not self.readonly
        return True

    def action_pull_model(self) -> None:
        if self.service is None:
            return
        chosen = panes_to_pull(self.panes, self.focused)
        if chosen is None:
            return
        key, sharing = chosen
        for p in sharing:
            p.pull_started()
        self._pulls_running += 1
        self.refresh_bindings()
        self.run_worker(
            self._pull(key, sharing),
            name=f"pull-{key[0]}",
            group="model-pulls",
            exit_on_error=False,
        )

    async def _pull(self, key: PullKey, panes: list[AnswerPane]) -> None:
        assert self.service is not None
        model, node_id, _endpoint = key
        where = f"node {node_id[:8]}"
        try:
            await pull_into(self.service, key, panes)
        finally:
            self._pulls_running -= 1
            if self.is_mounted:
                self.flush()
                self.refresh_bindings()
        states = {p.pull_state for p in panes}
        if PullState.DONE in states:
            run_key = self._key_label("prompt_submit")
            self.notify(f"pulled {model} on {where}: {run_key} runs the prompt again")
            self._models_key = None  # the node's model list changed
            self._load_models()
        else:
            error = panes[0].pull_error if panes else None
            self.notify(f"pull of {model} on {where} failed: {error}", severity="error")

    def _lock(self, locked: bool) -> None:
        prompt = self.query_one("#prompt", TextArea)
        prompt.read_only = locked
        prompt.set_class(locked, "-locked")
        self._show_title()

    # -- flushing -----------------------------------------------------------------------------

    def flush(self) -> None:
        for pane in self.panes:
            pane.flush()
        self._show_title()

    def _show_title(self) -> None:
        running = len(self.running)
        done = sum(p.state is RunState.DONE for p in self.panes)
        parts = ["Prompt"]
        if self.panes:
            parts.append(f"{running} running · {done}/{len(self.panes)} done")
        parts.append("esc cancel" if running else "esc back")
        text = " · ".join(parts)
        if text != self._title_shown:
            self._title_shown = text
            self.query_one("#composer-title", Static).update(text)

    # -- models and nodes (thread workers) ------------------------------------------------------

    def _refresh_choices(self) -> None:
        if self.service is None:
            self._hint("not connected: prompts need a cluster connection")
            return
        if not self._nodes_ok:
            self.in_thread(
                self.service.nodes, self._nodes_loaded, name="nodes", group="composer-nodes"
            )
        self._load_models()

    def action_load_models(self) -> None:
        self._models_key = None
        self._nodes_ok = False
        self._refresh_choices()

    def _load_models(self) -> None:
        if self.service is None:
            return
        backend = self._backend()
        key = (backend, self._node() or "", self._value("#endpoint"))
        if key == self._models_key:
            return
        self._models_key = key
        hint = looking_up(backend)
        if hint is None:
            self._set_models([])
            self._hint(f"{backend}: type the model name the server serves")
            return
        self._hint(hint)
        backend, node, endpoint = key
        self.in_thread(
            partial(self.service.models, backend, node or None, endpoint or None),
            partial(self._models_loaded, key),
            name="models",
            group="composer-models",
            exclusive=True,
        )

    def _models_loaded(
        self, key: ModelsKey, names: list[str] | None, error: BaseException | None
    ) -> None:
        if key != self._models_key:
            return  # the form changed since
        if error is not None:
            self._models_key = None  # try again next time
            self._hint(f"model list: {describe(error)}")
            return
        self._set_models(names or [])
        self._hint(models_hint(key[0], names or []))

    def _nodes_loaded(self, nodes: list[NodeChoice] | None, error: BaseException | None) -> None:
        if nodes is None:
            # Shown once per distinct error (it is asked again each time the composer opens).
            text = describe(error) if error is not None else None
            if text and text != self._nodes_error:
                self.notify(
                    f"cannot list the nodes: {text}; prompts go to any node",
                    title="Composer",
                    severity="warning",
                )
            self._nodes_error = text
            return
        self._nodes_ok = True
        self._nodes_error = None
        select = self.query_one("#node", Select)
        current = select.value
        options = node_options(nodes)
        self._node_choices = options
        select.set_options([(literal(label), value) for label, value in options])
        if current in {v for _, v in options}:
            select.value = current

    def _node_options(self) -> list[tuple[str, str]]:
        return list(self._node_choices)

    def _set_models(self, names: list[str]) -> None:
        self.models = names
        self.query_one("#model", Input).suggester = (
            SuggestFromList(names, case_sensitive=False) if names else None
        )
        model = self.query_one("#model", Input)
        if names and not model.value.strip():
            model.value = names[0]

    def _hint(self, text: str) -> None:
        self.query_one("#models-hint", Static).update(text)

    @on(Select.Changed, "#backend")
    @on(Select.Changed, "#node")
    def _choice_changed(self) -> None:
        if self.is_mounted:
            self._load_models()

    @on(Input.Submitted, "#endpoint")
    def _endpoint_changed(self) -> None:
        self._load_models()
