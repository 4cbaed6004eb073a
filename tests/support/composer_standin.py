"""A STAND-IN `PromptService` for composer tests and screenshots: scripted runs, no Ray.

Each model name maps to a `Script` (tokens, pacing, where it "runs", an error, a hold point). The
stand-in records every request, every cancel and the threads its blocking calls ran on, and it
writes runs to a real `HistoryStore` the way dispatch does (create, then every event but Waiting).

A model with no script fails the way the real Ollama task does: `Started`, then
`Failed(MODEL_MISSING)`. `pull()` streams a `PullScript` for models in `pullable` (the model is
known afterwards) or fails like Ollama's "file does not exist"; `hold_pulls` stops a pull after its
first progress lines until `release_pulls()`, so tests can look at the progress shown.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from raytui.backends.history import HistoryStore
from raytui.backends.service import NodeChoice, PromptRun
from raytui.errors import RaytuiError, UsageError
from raytui.model.prompts import (
    Chunk,
    Done,
    EngineInfo,
    Event,
    Failed,
    FailureKind,
    PromptRequest,
    PullEvent,
    PullProgress,
    Started,
    Timings,
    Waiting,
)
from raytui.model.runs import ProgressFields, RunProgress, advance
from raytui.tui.app import RaytuiApp
from tests.support.tui_fakes import FakeConnection, connector_for, frozen_clock, healthy

NODE_A = "b2c3d4e5f60718293a4b5c6d7e8f9001122334455667788990aabbcc"
NODE_B = "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334455667788990aabb"


@dataclass
class Script:
    tokens: list[str]
    delay_s: float = 0.0  # between tokens
    waiting: int = 0  # Waiting events before Started
    node_id: str = NODE_A
    hostname: str = "gpu-box-2"
    ip: str = "10.0.0.6"
    gpu: str = "1"
    error_after: int | None = None  # Failed(SERVER) after this many tokens
    error: str = "Ollama on node b2c3d4e5 (10.0.0.6) failed mid-stream: unexpected EOF"
    error_kind: FailureKind = FailureKind.SERVER
    hold_after: int | None = None  # stop after this many tokens until cancelled
    timings: Timings = field(default_factory=lambda: Timings(ttft_s=0.12, tokens_per_s=41.5))


@dataclass(frozen=True)
class StandInNode:
    node_id: str
    ip: str
    hostname: str
    gpus_total: float
    alive: bool = True


class StandInRun(ProgressFields):
    def __init__(self, service: StandInService, request: PromptRequest, script: Script) -> None:
        self.service = service
        self.request = request
        self.script = script
        self.run_id = uuid.uuid4().hex
        self.progress = RunProgress()
        self.cancelled = False
        self._cancel = asyncio.Event()

    def cancel(self) -> None:
        self.cancelled = True
        self.service.cancels.append(self.request)
        self._cancel.set()

    async def _record(self, event: Event) -> None:
        history = self.service.history
        if history is not None and not isinstance(event, Waiting):
            await asyncio.wrap_future(history.record(self.run_id, event))

    async def events(self) -> AsyncIterator[Event]:
        async for event in self._script():
            await self._record(event)
            self.progress = advance(self.progress, event, time.monotonic())
            yield event

    async def _pause(self, seconds: float) -> bool:
        """Sleep; True when cancelled meanwhile."""
        try:
            await asyncio.wait_for(self._cancel.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _script(self) -> AsyncIterator[Event]:
        s = self.script
        for _ in range(s.waiting):
            yield Waiting(self.request.num_gpus, 0, 2, "cluster")
            if await self._pause(0.05):
                yield Failed("cancelled", FailureKind.CANCELLED)
                return
        yield Started(s.node_id, s.ip, s.hostname, (s.gpu,), "http://127.0.0.1:11434", 4242)
        for i, token in enumerate(s.tokens):
            if s.error_after is not None and i == s.error_after:
                yield Failed(s.error, s.error_kind)
                return
            if s.hold_after is not None and i == s.hold_after:
                await self._cancel.wait()
            if self.cancelled or (s.delay_s and await self._pause(s.delay_s)):
                yield Failed("cancelled", FailureKind.CANCELLED)
                return
            yield Chunk(token)
        if s.error_after is not None:
            yield Failed(s.error, s.error_kind)
            return
        yield Done(s.timings, "stop")


PULL_TOTAL = 2_019_393_189


@dataclass
class PullScript:
    """What a pull of one model streams, and the script the model answers with afterwards."""

    then: Script
    steps: Sequence[PullProgress] = (
        PullProgress("pulling manifest"),
        PullProgress("pulling dde5aa3fc5ff", 0, PULL_TOTAL),
        PullProgress("pulling dde5aa3fc5ff", PULL_TOTAL // 2, PULL_TOTAL),
        PullProgress("pulling dde5aa3fc5ff", PULL_TOTAL, PULL_TOTAL),
        PullProgress("verifying sha256 digest"),
        PullProgress("success"),
    )
    hold_after: int = 3  # with the service's hold_pulls: wait here until release_pulls()
    error: str | None = None  # fail after the steps instead of succeeding


@dataclass(frozen=True)
class PullCall:
    model: str
    node_id: str
    endpoint: str | None


class StandInService:
    """`PromptService` stand-in. `models_by_backend` answers `models()`; unknown models 404."""

    def __init__(
        self,
        scripts: dict[str, Script],
        *,
        history: HistoryStore | None = None,
        models: list[str] | None = None,
        by_prompt: dict[str, Script] | None = None,
        pullable: dict[str, PullScript] | None = None,
        hold_pulls: bool = False,
        models_error: str | None = None,
        engine_models: list[str] | None = None,
        engines: list[EngineInfo] | None = None,
    ) -> None:
        self.scripts = scripts
        self.models_error = models_error  # models() raises RaytuiError(models_error) when set
        self.by_prompt = by_prompt or {}
        self._history = history
        self.model_names = models if models is not None else sorted(scripts)
        self.engine_models = engine_models or []  # loaded in "vLLM engines"
        self.engine_list = list(engines or [])  # what engines() lists; stop_engines() removes
        self.stopped: list[str] = []
        self.requests: list[PromptRequest] = []
        self.cancels: list[PromptRequest] = []
        self.runs: list[StandInRun] = []
        self.threads: set[str] = set()
        self.closed = False
        self.pullable = pullable or {}
        self.pulls: list[PullCall] = []
        self.pulls_closed: list[PullCall] = []  # pulls whose consumer left before the end
        self.hold_pulls = hold_pulls
        self._release = asyncio.Event()

    @property
    def history(self) -> HistoryStore | None:
        return self._history

    async def start(self, request: PromptRequest) -> PromptRun:
        self.requests.append(request)
        if request.node == "nowhere":
            raise UsageError("no alive Ray node 'nowhere' (give a node id prefix, IP or hostname)")
        script = self.by_prompt.get(request.prompt) or self.scripts.get(request.model)
        if script is None:
            script = Script(
                [],
                error_after=0,
                error=(
                    f"model {request.model} not found on node b2c3d4e5 (10.0.0.6): pull it with"
                    f" `ollama pull {request.model}` on that node (or the composer's pull action)"
                ),
                error_kind=FailureKind.MODEL_MISSING,
            )
        run = StandInRun(self, request, script)
        if self._history is not None:
            await asyncio.wrap_future(self._history.create(run.run_id, request))
        self.runs.append(run)
        return run

    def release_pulls(self) -> None:
        self._release.set()

    async def pull(
        self, model: str, node_id: str, endpoint: str | None = None
    ) -> AsyncIterator[PullEvent]:
        call = PullCall(model, node_id, endpoint)
        self.pulls.append(call)
        plan = self.pullable.get(model)
        finished = False
        try:
            if plan is None:
                yield PullProgress("pulling manifest")
                finished = True
                yield Failed(
                    f"pull of {model} on node {node_id[:8]} failed: pull model manifest: file"
                    " does not exist",
                    FailureKind.SERVER,
                )
                return
            for i, step in enumerate(plan.steps):
                if self.hold_pulls and i == plan.hold_after:
                    await self._release.wait()
                await asyncio.sleep(0.01)
                yield step
            finished = True
            if plan.error is not None:
                yield Failed(plan.error, FailureKind.SERVER)
                return
            self.scripts[model] = plan.then
            if model not in self.model_names:
                self.model_names.append(model)
            yield Done()
        finally:
            if not finished:
                self.pulls_closed.append(call)

    def models(self, backend: str, node: str | None, endpoint: str | None = None) -> list[str]:
        self.threads.add(threading.current_thread().name)
        if self.models_error is not None:
            raise RaytuiError(self.models_error)
        if backend == "vllm":
            return list(self.engine_models)
        return list(self.model_names) if backend == "ollama" else []

    def gpu_counts(self, node: str | None = None) -> tuple[float, float]:
        self.threads.add(threading.current_thread().name)
        return (1.0, 3.0)

    def engines(self) -> list[EngineInfo]:
        self.threads.add(threading.current_thread().name)
        return list(self.engine_list)

    def stop_engines(self, names: list[str]) -> list[str]:
        self.threads.add(threading.current_thread().name)
        known = {e.name for e in self.engine_list}
        for name in names:
            if name not in known:
                raise UsageError(f"no engine named {name!r}")
        self.engine_list = [e for e in self.engine_list if e.name not in names]
        self.stopped += names
        return names

    def nodes(self) -> list[NodeChoice]:
        self.threads.add(threading.current_thread().name)
        return [
            StandInNode(NODE_B, "10.0.0.5", "gpu-head", 1),
            StandInNode(NODE_A, "10.0.0.6", "gpu-box-2", 2),
        ]

    def close(self) -> None:
        self.closed = True
        for run in self.runs:
            if not run.state.final:
                run.cancel()


def app_with_service(service: Any, readonly: bool = False) -> RaytuiApp:
    """The real app on replayed snapshots, with `service` for prompts and engines."""
    return RaytuiApp(
        connector_for(FakeConnection([healthy()]), progress=()),
        refresh=3600,
        clock=frozen_clock,
        nvml_sampler=None,
        local_hostname="not-a-cluster-node",
        prompt_service=service,
        readonly=readonly,
    )
