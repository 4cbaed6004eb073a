"""The composer's runs: each answer pane fed by its own run, started, streamed, cancelled.

`PaneRuns.feed(pane)` (an async worker on the app's loop, never a blocking call) starts the pane's
run through the `PromptService`, hands every event to the pane and returns once the pane's run
has ended: with the run's own Done or Failed, or with a Failed that says why when the start or
the stream broke. `PaneRuns.cancel(pane)` (esc) stops a streaming run; a run still connecting is
ended in its pane at once and cancelled when its start finishes. History failures are shown in
the pane under the answer.
"""

from __future__ import annotations

import asyncio
import contextlib

from raytui import debuglog
from raytui.backends.service import PromptRun, PromptService
from raytui.errors import describe
from raytui.model.prompts import Failed, FailureKind
from raytui.tui.widgets.answer_pane import AnswerPane


def _cancel_late_run(starting: asyncio.Future[PromptRun]) -> None:
    """A run whose start finished after the user cancelled it: stop it at once."""
    if starting.cancelled() or starting.exception() is not None:
        return  # the failure was the user's to see only if they had waited
    with contextlib.suppress(Exception):
        starting.result().cancel()


class PaneRuns:
    """The runs of the panes on screen, by pane number."""

    def __init__(self, service: PromptService) -> None:
        self.service = service
        self.runs: dict[int, PromptRun] = {}  # pane number -> run, once started
        self._start_cancels: dict[int, asyncio.Event] = {}  # panes whose run is being started

    def clear(self) -> None:
        self.runs.clear()

    def cancel(self, pane: AnswerPane) -> None:
        """Stop the pane's run (its pane shows "cancelling…" until the run confirms)."""
        pane.mark_cancelling()
        run = self.runs.get(pane.number)
        if run is not None:
            run.cancel()
        starting = self._start_cancels.get(pane.number)
        if starting is not None:
            starting.set()

    async def feed(self, pane: AnswerPane) -> None:
        """Start the pane's run and stream it into the pane until it has ended."""
        starting = asyncio.ensure_future(self.service.start(pane.request))
        cancel = self._start_cancels[pane.number] = asyncio.Event()
        cancelled = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait({starting, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
            self._start_cancels.pop(pane.number, None)
        if not starting.done():  # esc while connecting: the pane ends now, the run when it can
            starting.add_done_callback(_cancel_late_run)
            pane.event(Failed("cancelled before the run started", FailureKind.CANCELLED))
            return
        try:
            run = starting.result()
        except Exception as exc:  # not connected, unknown node, ...: shown in the pane
            debuglog.report("composer._consume", exc)
            pane.fail(describe(exc))
            return
        self.runs[pane.number] = run
        if pane.cancelling:
            run.cancel()
        try:
            async for event in run.events():
                pane.event(event)
                _show_history_error(pane, run)
        except Exception as exc:
            debuglog.report("composer._consume", exc)
            if pane.running:
                pane.event(Failed(f"the stream broke: {describe(exc)}", FailureKind.INTERNAL))
        if pane.running:  # the iterator ended without a final event
            pane.event(Failed("the stream ended without a result", FailureKind.INTERNAL))
        _show_history_error(pane, run)


def _show_history_error(pane: AnswerPane, run: PromptRun) -> None:
    if pane.history_error is None and getattr(run, "history_error", None):
        pane.history_failed(str(getattr(run, "history_error", "")))
