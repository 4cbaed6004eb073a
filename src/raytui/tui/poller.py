"""The poller base: a hidden widget that owns its timer and its thread workers.

A poller makes one blocking call at a time in a thread worker and arms the next only after the
last one finished (dolphie's loop), so calls never overlap and a slow source slows the loop
instead of piling up threads. Failures count up; `backoff_delay` spaces the retries.

Its thread workers go through `ThreadWork.in_thread` (tui/thread_work.py, shared with the
screens): the result or the exception is handed to the callback given with the work, on the
event loop, and an exception is logged with its traceback once. Results go up as messages:
`post_message` on the poller, which bubble to the component that mounted it, then its screen
and the app ("messages up").

It starts polling when mounted and stops when removed (Textual cancels a removed node's
timers and workers). Subclasses say what to call (`poll_call`) and what a result or a failure
means (`polled`, `poll_failed`, each returning the delay before the next call, or None).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from textual.timer import Timer
from textual.widget import Widget

from raytui.tui.thread_work import ThreadWork

BACKOFF_MAX = 30.0

FETCH_SHARE = 0.25
"""A poll may cost this share of the time between polls; a costlier one spaces polls out."""


def backoff_delay(failures: int) -> float:
    """Seconds before retry number `failures` (1-based): 1, 2, 4, 8, 16, 30, 30, ..."""
    if failures < 1:
        return 0.0
    return min(BACKOFF_MAX, float(2 ** min(failures - 1, 10)))


class PollPace:
    """How often to poll a source whose calls cost time: every `interval` seconds, unless a call
    costs more than `share` of that. Then every `cost / share` seconds, rounded up to whole
    seconds so the period shown stays steady; the cost is smoothed over the last few calls, and
    polling returns to `interval` once calls are cheap again."""

    def __init__(self, interval: float, share: float = FETCH_SHARE) -> None:
        self.interval = interval
        self.share = share
        self.cost: float | None = None  # seconds per call, smoothed

    def record(self, took: float) -> float:
        """A call took `took` seconds and has just ended: the delay before the next one."""
        self.cost = took if self.cost is None else (self.cost + took) / 2
        return max(self.interval, self.period - took)

    @property
    def period(self) -> float:
        """Seconds from one call's start to the next's (at least `interval`)."""
        if self.cost is None or self.cost <= self.interval * self.share:
            return self.interval
        return max(self.interval, float(math.ceil(self.cost / self.share)))

    @property
    def slowed(self) -> bool:
        return self.period > self.interval


class Poller(ThreadWork, Widget):
    """Mount it where its messages should go; it starts when mounted. Methods run on the event
    loop; only the calls handed to `in_thread` run in threads."""

    DEFAULT_CSS = "Poller { display: none; }"

    again_when_busy = False
    """`poll_now` while a call is under way: another right after it (else it is ignored)."""

    def __init__(self, *, name: str, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self.busy = False  # the polled call is under way
        self.stopped = False
        self.failures = 0  # failed calls in a row
        self._again = False
        self._timer: Timer | None = None

    # -- what subclasses say ------------------------------------------------------------------

    def poll_call(self) -> Callable[[], Any] | None:
        """The next blocking call (run in a thread), or None when there is nothing to call."""
        raise NotImplementedError

    def polled(self, result: Any) -> float | None:
        """A call returned `result`: seconds until the next one (0: at once; None: none)."""
        raise NotImplementedError

    def poll_failed(self, error: BaseException) -> float | None:
        """A call raised (`failures` counts it already): seconds until the next one."""
        return backoff_delay(self.failures)

    # -- the loop -----------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.start()

    def start(self) -> None:
        self.stopped = False
        self.poll_now()

    def stop(self) -> None:
        """No more calls (one under way still finishes and is handed to `polled`)."""
        self.stopped = True
        self._cancel_timer()

    def poll_now(self) -> None:
        if self.stopped:
            return
        if self.busy:
            self._again = self._again or self.again_when_busy
            return
        call = self.poll_call()
        if call is None:
            return
        self._cancel_timer()
        self.busy = True
        self._again = False
        self.in_thread(call, self._finished, name="poll")

    def _finished(self, result: Any, error: BaseException | None) -> None:
        self.busy = False
        if error is None:
            delay = self.polled(result)
        else:
            self.failures += 1
            delay = self.poll_failed(error)
        if self.stopped:
            return
        if self._again or delay == 0:
            self.poll_now()
        elif delay is not None:
            self._cancel_timer()
            self._timer = self.set_timer(delay, self.poll_now, name=f"{self.name}-timer")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
