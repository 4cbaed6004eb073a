"""Where a prompt run stands: one pure reducer from its events, and the TTFT/tokens-per-second math.

`RunProgress` is an immutable value; `advance(progress, event, now)` returns the next one. Dispatch
(`backends/dispatch.Run`) and the composer's answer pane (`tui/widgets/answer_pane.AnswerPane`)
both keep one and replace it on every event, so "which state after which event" is decided once.

The transitions (events in the order `model/prompts.py` describes):

- `Waiting`: remembered (the last one is shown); the state stays.
- `Started`: the node, and when it came; WAITING -> LOADING (a later state is never undone).
- `Loading`: the engine's load progress, shown until the first text; the state stays.
- `Chunk`: the text grows; first/last chunk times; the load progress is cleared; -> STREAMING.
- `Done` -> DONE; `Failed` -> FAILED, or CANCELLED for `FailureKind.CANCELLED`.
- After Done or Failed the run is over: later events change nothing.

`ProgressFields` gives a holder of a `progress` the run's fields to read (`state`, `text`,
`started`, `final`, `error`). `ttft()` and `tokens_per_s()` are the formulas every place that
measures a stream uses (the backends on the node, the pane on the console); the server's own
figures win where it gave them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from raytui.model.prompts import (
    Chunk,
    Done,
    Event,
    Failed,
    FailureKind,
    Loading,
    RunState,
    Started,
    Timings,
    Waiting,
)


def ttft(sent: float | None, first: float | None) -> float | None:
    """Seconds from sending the request to the first text; None before any text."""
    if sent is None or first is None:
        return None
    return first - sent


def tokens_per_s(count: int | None, first: float | None, end: float | None) -> float | None:
    """`count` tokens (or pieces) over the time from the first text to `end`; None when there is
    no count or no time span to divide by."""
    if not count or count <= 0 or first is None or end is None or end <= first:
        return None
    return count / (end - first)


@dataclass(frozen=True, slots=True)
class RunProgress:
    """One run as its events so far describe it. Times are the caller's clock (monotonic)."""

    submitted_at: float = 0.0
    state: RunState = RunState.WAITING
    waiting: Waiting | None = None
    started: Started | None = None
    started_at: float | None = None
    loading: Loading | None = None  # a vLLM engine still loading the model; None once text came
    text: str = ""
    chunks: int = 0
    first_chunk_at: float | None = None
    last_chunk_at: float | None = None
    final: Done | Failed | None = None

    @property
    def timings(self) -> Timings | None:
        return self.final.timings if isinstance(self.final, Done) else None

    @property
    def done_reason(self) -> str | None:
        return self.final.done_reason if isinstance(self.final, Done) else None

    @property
    def error(self) -> str | None:
        return self.final.error if isinstance(self.final, Failed) else None

    def ttft_s(self) -> float | None:
        """The node's figure when the run reported one, else measured here from the start
        (or the submit, when no Started came)."""
        timings = self.timings
        if timings is not None and timings.ttft_s is not None:
            return timings.ttft_s
        since = self.started_at if self.started_at is not None else self.submitted_at
        return ttft(since, self.first_chunk_at)

    def tokens_per_s(self) -> float | None:
        """The node's figure when the run reported one, else chunks per second between the first
        and the last chunk seen here."""
        timings = self.timings
        if timings is not None and timings.tokens_per_s is not None:
            return timings.tokens_per_s
        return tokens_per_s(self.chunks - 1, self.first_chunk_at, self.last_chunk_at)


class ProgressFields:
    """The run's fields, read from `self.progress` (which the holder replaces on each event)."""

    progress: RunProgress

    @property
    def state(self) -> RunState:
        return self.progress.state

    @property
    def text(self) -> str:
        return self.progress.text

    @property
    def started(self) -> Started | None:
        return self.progress.started

    @property
    def final(self) -> Done | Failed | None:
        return self.progress.final

    @property
    def error(self) -> str | None:
        return self.progress.error


def advance(progress: RunProgress, event: Event, now: float) -> RunProgress:
    """The run after `event`, which arrived at `now` (see the module docstring)."""
    if progress.final is not None:
        return progress
    if isinstance(event, Waiting):
        return replace(progress, waiting=event)
    if isinstance(event, Started):
        state = RunState.LOADING if progress.state is RunState.WAITING else progress.state
        return replace(progress, started=event, started_at=now, state=state)
    if isinstance(event, Loading):
        return replace(progress, loading=event)
    if isinstance(event, Chunk):
        return replace(
            progress,
            state=RunState.STREAMING,
            loading=None,
            text=progress.text + event.text,
            chunks=progress.chunks + 1,
            first_chunk_at=now if progress.first_chunk_at is None else progress.first_chunk_at,
            last_chunk_at=now,
        )
    if isinstance(event, Done):
        return replace(progress, state=RunState.DONE, final=event)
    cancelled = event.kind is FailureKind.CANCELLED
    return replace(
        progress, state=RunState.CANCELLED if cancelled else RunState.FAILED, final=event
    )
