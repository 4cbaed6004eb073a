"""Waiting on a condition with a deadline, never on the clock: the one waiter the tests share.

- `wait_for` polls in plain (synchronous) tests.
- `until` lets a Textual app (driven by Pilot) run until a condition holds.
- `Notices` records what an app notified, so a test that checks something did NOT happen
  first waits for the positive event that proves the app handled the input (its refusal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App
    from textual.pilot import Pilot


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Poll until `predicate()` is truthy and return its value; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


async def until(
    pilot: Pilot[Any],
    cond: Callable[[], object],
    within: float = 5.0,
    what: str = "",
    detail: Callable[[], str] | None = None,
) -> None:
    """Let the app run until `cond()` holds; fail after `within` seconds, saying `what` was
    awaited and, if given, `detail()` (e.g. the screen's text)."""
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            message = f"timed out after {within:g} s waiting for {what or cond}"
            if detail is not None:
                message += "\n" + detail()
            raise AssertionError(message)
        await pilot.pause(0.01)
    await pilot.pause()


class Notices:
    """Every notification `app` shows from now on (from the app or any screen), in order, as
    "title: message" (or the message alone)."""

    def __init__(self, app: App[Any]) -> None:
        self.messages: list[str] = []
        shown = app.notify

        def notify(message: str, *args: Any, **kwargs: Any) -> None:
            title = kwargs.get("title")
            self.messages.append(f"{title}: {message}" if title else str(message))
            shown(message, *args, **kwargs)

        app.notify = notify  # type: ignore[method-assign]

    def count(self, text: str) -> int:
        return sum(1 for m in self.messages if text in m)

    async def next(self, pilot: Pilot[Any], text: str, after: int, within: float = 5.0) -> None:
        """Wait for a notification containing `text` beyond the `after` seen before."""
        await until(
            pilot,
            lambda: self.count(text) > after,
            within,
            f"a notice with {text!r}",
            detail=lambda: "\n".join(self.messages),
        )
