"""Dispatch: place prompt runs on the cluster's GPUs, stream their events, cancel them.

The caller has connected to Ray (`ray.init`). The API, for the TUI's composer and the CLI:

    run = submit(PromptRequest(...), history=store)   # schedules now; quick GCS calls, no waiting
    async for event in run.events():                  # Waiting*, Started, Chunk*, Done | Failed
        ...
    run.cancel()                                       # any thread; ends Failed(CANCELLED)

- `submit(request, index=..., history=..., config=...)` returns a `Run` at once. Placement: the
  request's `num_gpus` (default 1) and, with `node`, hard node affinity to the node named by id
  (or unique id prefix), IP or hostname (`resolve_node`). A node name that matches no alive node,
  or several, raises `UsageError`. A request no node could ever satisfy (not enough GPUs in the
  cluster or on the pinned node) does not wait forever: its stream is a single
  `Failed(kind=NO_GPU)`.
- `Run.events()` is an async iterator (consume on any asyncio loop; refs are awaited, never
  `ray.get` on the loop). Until the task reports `Started` it yields `Waiting(free, total)` every
  `WAITING_POLL_S` when the eligible GPUs are all taken (counts from Ray's available/total
  resources, per node when pinned). A worker that dies or a node that is removed mid-stream ends
  the stream with `Failed(kind=NODE_DIED)`; the text so far stays in `Run.text` and in history.
  `events()` can be iterated once.
- `Run.cancel()` calls `ray.cancel` on the generator: the task is interrupted, its HTTP stream to
  the model server is closed and Ray frees the GPU. The stream then ends with
  `Failed(kind=CANCELLED)`.
- `merge(runs)` fans several runs' events into one async iterator of `(run, event)`;
  `stream_sync(runs)` is the same for plain blocking code (the CLI): it runs an asyncio loop in a
  helper thread and cancels every run when the consumer stops early.
- Code on the nodes: connect with `ray.init(..., runtime_env=runtime_env())` so the tasks find
  raytui's package on nodes that only have Ray.
- History: with `history=HistoryStore`, each event is committed before `events()` yields it, so
  whatever a user saw is on disk even if the process is killed next. A write that fails (the
  database damaged, the disk full) never ends the run or loses its text: `Run.history_error`
  says why (once set, the run is no longer recorded) and the events go on.
- Every run's stream ends with exactly one Done or Failed, whatever breaks on the way: an
  unexpected error becomes `Failed(INTERNAL)` with a one-line reason (the traceback goes to the
  debug log) and the text so far is kept.
- Blocking Ray calls made for runs (the GPU counts behind Waiting, the composer's service's
  `submit`) run on `ray_calls()`, a bounded pool of their own: asyncio's default pool (6 threads
  on 2 cores) is where Textual's thread workers poll the cluster and the peers, and runs waiting
  on a slow driver connect must not starve them.

`Run.progress` (`model/runs.RunProgress`: state, node, text, first-chunk time, final event) is
kept current as events are yielded; `Run.state`, `Run.started`, `Run.text` and `Run.final` read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import queue
import threading
import time
import typing
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from raytui import config as config_mod
from raytui import debuglog
from raytui.backends.history import HistoryStore
from raytui.errors import ClusterUnreachable, UsageError, describe
from raytui.model.prompts import (
    Done,
    Event,
    Failed,
    FailureKind,
    Loading,
    PromptRequest,
    Waiting,
)
from raytui.model.runs import ProgressFields, RunProgress, advance
from raytui.runtime_env import runtime_env

__all__ = [
    "Run",
    "gpu_counts",
    "merge",
    "ray_calls",
    "resolve_node",
    "runtime_env",
    "stream_sync",
    "submit",
]

WAITING_GRACE_S = 0.5  # no Started by then: look at the GPUs and maybe report Waiting
WAITING_POLL_S = 1.0
CANCEL_GRACE_S = 5.0  # a cancelled run whose task never answers is ended by us after this
RAY_CALL_THREADS = 20  # the composer's 16 panes waiting on a driver connect, plus GPU counts

_T = TypeVar("_T")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def ray_calls() -> ThreadPoolExecutor:
    """The bounded pool for blocking Ray calls made on behalf of prompt runs (not the default
    executor that Textual's thread workers and `asyncio.to_thread` share)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(RAY_CALL_THREADS, thread_name_prefix="raytui-ray-call")
        return _pool


async def in_ray_thread(fn: Callable[[], _T]) -> _T:
    """`await fn()` run on `ray_calls()`."""
    return await asyncio.get_running_loop().run_in_executor(ray_calls(), fn)


# -- placement -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    ip: str
    hostname: str
    gpus_total: float
    alive: bool


RAY_CLIENT_CANNOT_STREAM = (
    "prompts cannot run over Ray Client (ray://...): Ray does not stream results through it."
    " Run raytui on a machine of the cluster (e.g. over SSH on the head), or attach with the"
    " head's GCS address (host:6379)"
)


def through_ray_client() -> bool:
    """Whether this process reaches Ray through Ray Client, which refuses streaming generators."""
    from ray.util.client import ray as client

    return bool(client.is_connected())  # type: ignore[no-untyped-call]


def cluster_nodes() -> list[NodeInfo]:
    import ray

    try:
        raw: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    except Exception as exc:  # GCS gone: any error means the same to the user
        raise ClusterUnreachable(f"cannot list Ray nodes: {describe(exc, 'line')}") from exc
    return [
        NodeInfo(
            node_id=str(n.get("NodeID", "")),
            ip=str(n.get("NodeManagerAddress", "")),
            hostname=str(n.get("NodeManagerHostname", "")),
            gpus_total=float((n.get("Resources") or {}).get("GPU", 0.0)),
            alive=bool(n.get("Alive", False)),
        )
        for n in raw
    ]


def resolve_node(spec: str, nodes: list[NodeInfo] | None = None) -> NodeInfo:
    """The alive node named by `spec`: node id, unique id prefix, IP or hostname."""
    wanted = spec.strip().lower()
    if not wanted:
        raise UsageError("empty node name")
    alive = [n for n in (nodes if nodes is not None else cluster_nodes()) if n.alive]
    for match in (
        [n for n in alive if n.node_id.lower() == wanted],
        [n for n in alive if n.ip == wanted],
        [n for n in alive if n.hostname.lower() == wanted],
        [n for n in alive if n.node_id.lower().startswith(wanted)],
    ):
        if len(match) == 1:
            return match[0]
        if len(match) > 1:
            ids = ", ".join(n.node_id[:8] for n in match)
            raise UsageError(f"node {spec!r} is ambiguous ({ids}): give a node id prefix")
    raise UsageError(f"no alive Ray node {spec!r} (give a node id prefix, IP or hostname)")


def gpu_counts(node_id: str | None = None) -> tuple[float, float]:
    """(free, total) logical GPUs on one node, or in the whole cluster."""
    import ray

    if node_id is None:
        return (
            float(ray.available_resources().get("GPU", 0.0)),  # type: ignore[no-untyped-call]
            float(ray.cluster_resources().get("GPU", 0.0)),  # type: ignore[no-untyped-call]
        )
    from ray._private import state

    gs: Any = state.state
    free = gs.available_resources_per_node().get(node_id, {}).get("GPU", 0.0)
    total = gs.total_resources_per_node().get(node_id, {}).get("GPU", 0.0)
    return float(free), float(total)


# -- runs ------------------------------------------------------------------------------------


_counter = itertools.count()


@dataclass
class Run(ProgressFields):
    """One prompt on the cluster. Iterate `events()` once; `cancel()` from anywhere."""

    request: PromptRequest
    index: int = 0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    progress: RunProgress = field(default_factory=lambda: RunProgress(time.monotonic()))
    node_id: str | None = None  # pinned node, when the request named one
    history: HistoryStore | None = None
    history_error: str | None = None  # why this run is not (fully) in history, once it failed
    _created: Future[None] | None = None  # the history insert, checked before the first event
    _gen: Any = None
    _immediate: Failed | None = None
    _cancelled: bool = False
    _consumed: bool = False

    def cancel(self) -> None:
        """Stop the run: the task is interrupted (HTTP stream closed) and its GPU freed."""
        if self._cancelled or self.final is not None:
            return
        self._cancelled = True
        if self._gen is not None:
            import ray

            with contextlib.suppress(Exception):  # already finished or its node is gone
                ray.cancel(self._gen)

    async def events(self) -> AsyncIterator[Event]:
        if self._consumed:
            raise RuntimeError("Run.events() can be iterated only once")
        self._consumed = True
        async with contextlib.aclosing(self._events()) as inner:
            try:
                async for event in inner:
                    yield event
            except Exception as exc:  # a defect: still end the run, with the reason
                if self.final is None:
                    yield await self.failed_unexpectedly(exc)

    async def failed_unexpectedly(self, exc: BaseException) -> Failed:
        """End the run with `Failed(INTERNAL)` for an error nothing expected; the traceback goes
        to the debug log, the text so far stays (in `text` and history)."""
        debuglog.report(f"prompt run {self.run_id[:8]}: its event stream broke", exc)
        event = Failed(f"the run's stream broke: {describe(exc, 'line')}", FailureKind.INTERNAL)
        await self._note(event)
        return event

    async def _events(self) -> AsyncGenerator[Event, None]:
        if self._immediate is not None:
            await self._note(self._immediate)
            yield self._immediate
            return
        pending: asyncio.Queue[Event | None] = asyncio.Queue()
        pump = asyncio.ensure_future(self._pump(pending))
        try:
            waited = WAITING_GRACE_S
            last_waiting: Waiting | None = None
            cancel_deadline: float | None = None
            while True:
                timeout = waited if self.started is None else None
                if self._cancelled:
                    if cancel_deadline is None:
                        cancel_deadline = time.monotonic() + CANCEL_GRACE_S
                    timeout = max(0.0, cancel_deadline - time.monotonic())
                try:
                    event = await asyncio.wait_for(pending.get(), timeout)
                except TimeoutError:
                    if self._cancelled:
                        if cancel_deadline is None or time.monotonic() < cancel_deadline:
                            continue
                        event = Failed(
                            "cancelled (the task did not confirm)", FailureKind.CANCELLED
                        )
                    else:
                        waiting = await self._waiting()
                        waited = WAITING_POLL_S
                        if waiting is not None and waiting != last_waiting:
                            last_waiting = waiting
                            yield waiting
                        continue
                if event is None:
                    return
                await self._note(event)
                yield event
                if isinstance(event, Done | Failed):
                    return
        finally:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
            if self.final is None:  # the consumer stopped early: do not leave the task running
                self.cancel()

    async def _waiting(self) -> Waiting | None:
        try:
            free, total = await in_ray_thread(functools.partial(gpu_counts, self.node_id))
        except Exception:
            return None
        if free >= self.request.num_gpus:
            return None  # a GPU is there: the worker is starting, not waiting
        where = f"node {self.node_id[:8]}" if self.node_id else "cluster"
        return Waiting(self.request.num_gpus, free, total, where)

    async def _pump(self, out: asyncio.Queue[Event | None]) -> None:
        from ray.exceptions import RayError, TaskCancelledError

        try:
            async for ref in self._gen:
                try:
                    event = await ref
                except TaskCancelledError:
                    event = Failed("cancelled", FailureKind.CANCELLED)
                except RayError as exc:
                    event = self._ray_failure(exc)
                except Exception as exc:  # an exception raised inside the task
                    event = Failed(f"task failed: {describe(exc, 'line')}", FailureKind.INTERNAL)
                if not isinstance(event, _EVENTS):
                    debuglog.report(
                        f"prompt run {self.run_id[:8]}: its task sent something else",
                        TypeError(f"not a run event: {event!r:.300}"),
                    )
                    event = Failed(
                        f"the task sent {type(event).__name__!r}, not a run event"
                        " (a raytui of another version on the node?)",
                        FailureKind.INTERNAL,
                    )
                await out.put(event)
                if isinstance(event, Done | Failed):
                    return
        except TaskCancelledError:
            await out.put(Failed("cancelled", FailureKind.CANCELLED))
            return
        except RayError as exc:
            await out.put(self._ray_failure(exc))
            return
        except Exception as exc:  # anything else: the stream still ends, saying why
            debuglog.report(f"prompt run {self.run_id[:8]}: reading its task's stream", exc)
            await out.put(
                Failed(f"the run's stream broke: {describe(exc, 'line')}", FailureKind.INTERNAL)
            )
            return
        if self._cancelled:
            await out.put(Failed("cancelled", FailureKind.CANCELLED))
        else:
            await out.put(Failed("the task ended without a result", FailureKind.INTERNAL))

    def _ray_failure(self, exc: BaseException) -> Failed:
        from ray.exceptions import TaskCancelledError

        if self._cancelled or isinstance(exc, TaskCancelledError):
            return Failed("cancelled", FailureKind.CANCELLED)
        where = (
            f"node {self.started.node_id[:8]} ({self.started.node_ip})"
            if self.started
            else "its node"
        )
        return Failed(
            f"run lost: {where} died or its worker was killed mid-stream"
            f" ({type(exc).__name__}: {describe(exc, 'line')})",
            FailureKind.NODE_DIED,
        )

    async def _note(self, event: Event) -> None:
        """Update the run from an event and commit it to history before anyone sees it."""
        self.progress = advance(self.progress, event, time.monotonic())
        if self.history is not None and not isinstance(event, Waiting | Loading):
            await self._record(self.history, event)

    async def _record(self, history: HistoryStore, event: Event) -> None:
        """Commit one event; a failure is kept in `history_error` (and the debug log), never
        raised: the run goes on and its text stays in `text`."""
        if self.history_error is not None:
            return
        try:
            if self._created is not None:
                created, self._created = self._created, None
                await asyncio.wrap_future(created)
            await asyncio.wrap_future(history.record(self.run_id, event))
        except Exception as exc:
            debuglog.report(f"prompt run {self.run_id[:8]}: history write", exc)
            self.history_error = (
                f"history could not be saved ({describe(exc, 'line')}) in {history.path}"
            )


def submit(
    request: PromptRequest,
    *,
    index: int | None = None,
    history: HistoryStore | None = None,
    config: config_mod.Config | None = None,
    nodes: list[NodeInfo] | None = None,
) -> Run:
    """Schedule one run now and return its handle (see the module docstring)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    run = Run(request, index=next(_counter) if index is None else index, history=history)
    if history is not None:
        try:
            run._created = history.create(run.run_id, request)
        except Exception as exc:  # the store is closed: the run goes on unrecorded
            debuglog.report(f"prompt run {run.run_id[:8]}: history insert", exc)
            run.history_error = f"history could not be saved ({describe(exc, 'line')})"
    if through_ray_client():
        run._immediate = Failed(RAY_CLIENT_CANNOT_STREAM, FailureKind.BAD_REQUEST)
        return run
    nodes = nodes if nodes is not None else cluster_nodes()
    options: dict[str, Any] = {"num_gpus": request.num_gpus}
    if request.node:
        node = resolve_node(request.node, nodes)
        run.node_id = node.node_id
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        if node.gpus_total < request.num_gpus:
            run._immediate = Failed(
                f"no GPU resource: node {node.node_id[:8]} ({node.ip}) has"
                f" {node.gpus_total:g} GPU(s), the run needs {request.num_gpus:g}",
                FailureKind.NO_GPU,
            )
            return run
    elif request.num_gpus > 0:
        most = max((n.gpus_total for n in nodes if n.alive), default=0.0)
        if most < request.num_gpus:
            run._immediate = Failed(
                f"no GPU resource in the cluster: no node has {request.num_gpus:g} GPU(s)"
                f" (the largest has {most:g})",
                FailureKind.NO_GPU,
            )
            return run
    cfg = config if config is not None else config_mod.load()
    if request.backend == "ollama":
        from raytui.backends import ollama

        run._gen = ollama.remote_chat().options(**options).remote(request, cfg.ollama_endpoints)
    elif request.backend == "openai":
        from raytui.backends import openai

        run._gen = openai.remote_chat().options(**options).remote(request, cfg.openai_endpoints)
    elif request.backend == "vllm":
        from raytui.backends import vllm

        run._gen = vllm.generate(request, run.run_id, node_id=run.node_id)
    else:
        raise UsageError(f"unknown backend {request.backend!r}")
    return run


async def merge(runs: Iterable[Run]) -> AsyncIterator[tuple[Run, Event]]:
    """All events of several runs as they come, each tagged with its run."""
    out: asyncio.Queue[tuple[Run, Event] | None] = asyncio.Queue()
    runs = list(runs)

    async def drain(run: Run) -> None:
        try:
            async for event in run.events():
                await out.put((run, event))
        except Exception as exc:  # the run still ends with its Failed, saying why
            if run.final is None:
                await out.put((run, await run.failed_unexpectedly(exc)))
        finally:
            await out.put(None)

    tasks = [asyncio.ensure_future(drain(r)) for r in runs]
    try:
        left = len(tasks)
        while left:
            item = await out.get()
            if item is None:
                left -= 1
                continue
            yield item
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t


def stream_sync(runs: Iterable[Run]) -> Iterator[tuple[Run, Event]]:
    """Blocking variant of `merge` for code without an event loop (the CLI).

    Closing the iterator early (break, exception, KeyboardInterrupt) cancels the runs.
    """
    runs = list(runs)
    items: queue.SimpleQueue[tuple[Run, Event] | BaseException | None] = queue.SimpleQueue()
    loop = asyncio.new_event_loop()

    async def main() -> None:
        try:
            async for item in merge(runs):
                items.put(item)
        except BaseException as exc:
            items.put(exc)
            raise
        finally:
            items.put(None)

    task_box: list[asyncio.Task[None]] = []

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        task = loop.create_task(main())
        task_box.append(task)
        with contextlib.suppress(BaseException):
            loop.run_until_complete(task)
        loop.close()

    thread = threading.Thread(target=thread_main, name="raytui-dispatch", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            try:
                item = items.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                finished = True
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not finished:
            for run in runs:
                run.cancel()
            # Let the cancellations come back (and reach history); then stop the loop.
            deadline = time.monotonic() + CANCEL_GRACE_S + 1
            while time.monotonic() < deadline:
                try:
                    if items.get(timeout=0.1) is None:
                        break
                except queue.Empty:
                    continue
            else:
                for task in task_box:
                    loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=CANCEL_GRACE_S + 2)


_EVENTS = typing.get_args(Event)  # every kind of run event, as the model defines them
