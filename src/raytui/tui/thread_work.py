"""The one place a blocking call's result or failure comes back to the UI.

`ThreadWork` is a base for any DOM node (the pollers, screens, views): `in_thread(work, then)`
runs blocking `work` in a thread worker owned by that node, and `then(result, error)` runs on the
event loop once it returned or raised. A failure's traceback goes to the debug log once, here;
`then` gets the exception and words it for the user with `errors.describe` (harlequin's single
`Worker.StateChanged` handler). Textual sends `Worker.StateChanged` only to the node that ran the
worker (it does not bubble), so every node that starts work mixes this in.

A worker cancelled before it finished (the node was removed, or a newer call in an `exclusive`
group replaced it) hands nothing back: its answer is no longer wanted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.dom import DOMNode
from textual.worker import Worker, WorkerState

from raytui import debuglog

Then = Callable[[Any, BaseException | None], None]
"""Called on the event loop with (result, None) or (None, exception)."""


class ThreadWork(DOMNode):
    """Mix in before the Textual base: `class Poller(ThreadWork, Widget)`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._then: dict[Worker[Any], Then] = {}

    def in_thread(
        self,
        work: Callable[[], Any],
        then: Then,
        *,
        name: str,
        group: str | None = None,
        exclusive: bool = False,
    ) -> Worker[Any]:
        """Run blocking `work` in a thread worker; `then(result, error)` runs on the event loop
        once it returned or raised. `exclusive` cancels the group's earlier calls (their `then`
        is not called)."""
        worker = self.run_worker(
            work,
            thread=True,
            name=name,
            group=group or f"{self._label}-{name}",
            exclusive=exclusive,
            exit_on_error=False,
        )
        self._then[worker] = then
        return worker

    @property
    def _label(self) -> str:
        return self.name or type(self).__name__

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        then = self._then.pop(worker, None)
        if then is None or worker.state is WorkerState.CANCELLED:
            return
        if worker.state is WorkerState.ERROR:
            error = worker.error if worker.error is not None else RuntimeError("worker failed")
            debuglog.report(f"{self._label}: {worker.name} failed", error)
            then(None, error)
        else:
            then(worker.result, None)
