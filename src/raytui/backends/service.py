"""The seam between the TUI's composer and the cluster: start prompt runs, list models and nodes.

The TUI never imports Ray; it is handed a `PromptService`. `RayPromptService` is the real one:
it makes this process a Ray driver on first use (through the connection's `ensure_driver`, in a
thread, with `dispatch.runtime_env()`), then goes through `dispatch`. Tests hand the app a
stand-in that streams scripted events.

    run = await service.start(PromptRequest(...))   # raises RaytuiError (not connected, bad node)
    async for event in run.events(): ...            # Waiting*, Started, Chunk*, Done | Failed
    run.cancel()                                    # ends the stream with Failed(CANCELLED)

    async for event in service.pull(model, node_id, endpoint): ...
                                                    # PullProgress*, then Done | Failed

`models`, `gpu_counts` and `nodes` block (GCS calls, a small task on a node): call them from a
thread worker. `history` is where runs are recorded as they stream (read by the history screen).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from raytui import config as config_mod
from raytui import debuglog
from raytui.backends.history import HistoryStore
from raytui.errors import ClusterUnreachable, RaytuiError, UsageError, describe
from raytui.model.prompts import (
    Done,
    EngineInfo,
    Event,
    Failed,
    FailureKind,
    PromptRequest,
    PullEvent,
    RunState,
)

__all__ = ["DriverConnection", "NodeChoice", "PromptRun", "PromptService", "RayPromptService"]


class PromptRun(Protocol):
    """A run handle (`dispatch.Run` is one). `events()` can be iterated once."""

    @property
    def run_id(self) -> str: ...

    @property
    def request(self) -> PromptRequest: ...

    @property
    def state(self) -> RunState: ...

    @property
    def text(self) -> str: ...

    def events(self) -> AsyncIterator[Event]: ...

    def cancel(self) -> None: ...


class NodeChoice(Protocol):
    """A node the composer can pin a run to (`dispatch.NodeInfo` is one)."""

    @property
    def node_id(self) -> str: ...

    @property
    def ip(self) -> str: ...

    @property
    def hostname(self) -> str: ...

    @property
    def gpus_total(self) -> float: ...

    @property
    def alive(self) -> bool: ...


class PromptService(Protocol):
    @property
    def history(self) -> HistoryStore | None:
        """Where runs are recorded as they stream; None: not recorded."""
        ...

    async def start(self, request: PromptRequest) -> PromptRun:
        """Schedule one run (off the event loop). Raises RaytuiError (not connected, bad node)."""
        ...

    def pull(
        self, model: str, node_id: str, endpoint: str | None = None
    ) -> AsyncIterator[PullEvent]:
        """Pull `model` into the Ollama on node `node_id` (the node a run found it missing on),
        through a task pinned to that node. Streams PullProgress, then exactly one Done or
        Failed (errors are events, never raised). Closing the iterator early stops the pull."""
        ...

    def models(self, backend: str, node: str | None, endpoint: str | None = None) -> list[str]:
        """Blocking. Model names the backend offers on `node` (None: a GPU node; for vLLM, the
        models loaded in running engines, None: anywhere). [] if unknown."""
        ...

    def gpu_counts(self, node: str | None = None) -> tuple[float, float]:
        """Blocking. (free, total) logical GPUs on a node id, or in the cluster."""
        ...

    def engines(self) -> list[EngineInfo]:
        """Blocking. The vLLM engines running in the cluster (models kept loaded on GPUs)."""
        ...

    def stop_engines(self, names: list[str]) -> list[str]:
        """Blocking. Stop these engines, freeing their GPUs; UsageError for an unknown name."""
        ...

    def nodes(self) -> list[NodeChoice]:
        """Blocking. The cluster's nodes."""
        ...

    def close(self) -> None:
        """Cancel runs still streaming and close the history store."""
        ...


class DriverConnection(Protocol):
    def ensure_driver(self) -> None: ...


ConnectionSource = Callable[[], object | None]
"""Returns the app's current cluster connection (None while not connected)."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _on_driver(
    fn: Callable[Concatenate[RayPromptService, _P], _R],
) -> Callable[Concatenate[RayPromptService, _P], _R]:
    """The Ray calls of `fn` hold the connection open (`RayConnection.driver_calls`): closing
    it waits for them, and a call after it closed fails with a clear error."""

    @functools.wraps(fn)
    def wrapper(service: RayPromptService, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with service._driver_calls():
            return fn(service, *args, **kwargs)

    return wrapper


class RayPromptService:
    """`PromptService` over `dispatch`, on the connection the app currently holds."""

    def __init__(
        self,
        connection: ConnectionSource,
        history: HistoryStore | None = None,
        config: config_mod.Config | None = None,
    ) -> None:
        self._connection = connection
        self._history = history
        self._config = config
        self._runs: list[PromptRun] = []
        self._pulls: set[Any] = set()  # Ray generators of pulls still streaming

    @property
    def history(self) -> HistoryStore | None:
        return self._history

    def ensure_driver(self) -> None:
        """Blocking: connect this process to Ray as a driver (once) through the connection."""
        conn = self._connection()
        if conn is None:
            raise ClusterUnreachable("not connected to the Ray cluster yet")
        ensure = getattr(conn, "ensure_driver", None)
        if ensure is None:
            raise ClusterUnreachable("this cluster connection cannot run prompts")
        ensure()

    def _driver_calls(self) -> contextlib.AbstractContextManager[None]:
        held: Callable[[], contextlib.AbstractContextManager[None]] | None = getattr(
            self._connection(), "driver_calls", None
        )
        return held() if held is not None else contextlib.nullcontext()

    def _cfg(self) -> config_mod.Config:
        if self._config is None:
            self._config = config_mod.load()
        return self._config

    @_on_driver
    def _submit(self, request: PromptRequest) -> PromptRun:
        from raytui.backends import dispatch

        self.ensure_driver()
        return dispatch.submit(request, history=self._history, config=self._cfg())

    async def start(self, request: PromptRequest) -> PromptRun:
        from raytui.backends import dispatch

        # Not asyncio's default pool: there the app's pollers run (dispatch.ray_calls).
        run = await dispatch.in_ray_thread(functools.partial(self._submit, request))
        self._runs = [r for r in self._runs if not r.state.final]
        self._runs.append(run)
        return run

    @_on_driver
    def _start_pull(self, model: str, node_id: str, endpoint: str | None) -> Any:
        from raytui.backends import ollama

        self.ensure_driver()
        return ollama.pull_model(model, node_id, endpoint, self._cfg().ollama_endpoints)

    async def pull(
        self, model: str, node_id: str, endpoint: str | None = None
    ) -> AsyncIterator[PullEvent]:
        where = f"node {node_id[:8]}"
        try:
            from raytui.backends import dispatch

            gen = await dispatch.in_ray_thread(
                functools.partial(self._start_pull, model, node_id, endpoint)
            )
        except Exception as exc:
            debuglog.report("service.pull", exc)
            yield Failed(f"cannot pull {model} on {where}: {describe(exc, 'typed')}", _kind(exc))
            return
        from ray.exceptions import RayError

        self._pulls.add(gen)
        final = False
        try:
            try:
                async for ref in gen:
                    event: PullEvent = await ref
                    final = isinstance(event, Done | Failed)
                    yield event
                    if final:
                        return
            except RayError as exc:  # the node died, or the task could not be placed there
                final = True
                yield Failed(
                    f"pull of {model} on {where} lost: {describe(exc, 'typed')}",
                    FailureKind.NODE_DIED,
                )
                return
            final = True
            yield Failed(f"the pull of {model} on {where} ended without a result")
        finally:
            self._pulls.discard(gen)
            if not final:  # the consumer left early: stop the task on the node
                import ray

                with contextlib.suppress(Exception):
                    ray.cancel(gen)

    @_on_driver
    def models(self, backend: str, node: str | None, endpoint: str | None = None) -> list[str]:
        if backend == "vllm":
            return self._engine_models(node)
        if backend != "ollama":
            return []  # OpenAI-compatible servers: the model is typed
        from raytui.backends import dispatch, ollama

        self.ensure_driver()
        if node:
            node_id = dispatch.resolve_node(node).node_id
        else:
            gpu_nodes = [n for n in dispatch.cluster_nodes() if n.alive and n.gpus_total > 0]
            if not gpu_nodes:
                return []
            node_id = gpu_nodes[0].node_id
        return ollama.list_models(node_id, endpoint, self._cfg().ollama_endpoints)

    def _engine_models(self, node: str | None) -> list[str]:
        """Models loaded in a vLLM engine (on `node`): a prompt to them starts at once. Any other
        model can still be typed; it starts an engine, which takes minutes."""
        from raytui.backends import dispatch, vllm

        self.ensure_driver()
        node_id = dispatch.resolve_node(node).node_id if node else None
        return sorted(
            {
                e.model
                for e in vllm.list_engines()
                if e.ready and e.model and node_id in (None, e.node_id)
            }
        )

    @_on_driver
    def gpu_counts(self, node: str | None = None) -> tuple[float, float]:
        from raytui.backends import dispatch

        self.ensure_driver()
        return dispatch.gpu_counts(node)

    @_on_driver
    def engines(self) -> list[EngineInfo]:
        from raytui.backends import vllm

        self.ensure_driver()
        return vllm.list_engines()

    @_on_driver
    def stop_engines(self, names: list[str]) -> list[str]:
        from raytui.backends import vllm

        self.ensure_driver()
        return vllm.stop_engines(names)

    @_on_driver
    def nodes(self) -> list[NodeChoice]:
        from raytui.backends import dispatch

        self.ensure_driver()
        return list(dispatch.cluster_nodes())

    def close(self) -> None:
        for run in self._runs:
            if not run.state.final:
                with contextlib.suppress(Exception):
                    run.cancel()
        self._runs.clear()
        if self._pulls:
            import ray

            for gen in list(self._pulls):
                with contextlib.suppress(Exception):
                    ray.cancel(gen)
            self._pulls.clear()
        if self._history is not None:
            self._history.close()


def _kind(exc: BaseException) -> FailureKind:
    if isinstance(exc, UsageError):
        return FailureKind.BAD_REQUEST
    if isinstance(exc, RaytuiError):
        return FailureKind.UNREACHABLE
    return FailureKind.INTERNAL
