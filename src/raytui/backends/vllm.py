"""The vLLM backend: long-lived async Ray actors, each holding one vLLM `AsyncLLM` engine.

Checked against vLLM 0.33's source (`vllm/v1/engine/async_llm.py`, `vllm/sampling_params.py`,
`vllm/engine/arg_utils.py`). Loading a model costs minutes, so an engine is an actor that
outlives a prompt: `EnginePool` starts `replicas` actors (data parallelism), each with
`num_gpus = tensor_parallel_size` (tensor parallelism on one node, vLLM's `mp` executor: `ray`
would ask for a new placement group of the GPUs the actor already holds, and deadlock), named
`raytui-vllm-<model>-<tp>-<i>` in namespace `raytui` and reused by later pools/processes
(`get_if_exists`).

The actor's `__init__` returns at once and loads the model in a thread, so the actor answers
while it loads: a prompt sent meanwhile streams `Started`, then `Loading` (node, GPUs, seconds so
far) every `LOADING_EVERY_S` until the engine is ready, then `Chunk`s (vLLM's
`RequestOutputKind.DELTA` outputs), then `Done` or `Failed`. A load that raises ends that prompt
with the reason; the engine is then listed "failed" and replaced by the next prompt. An engine
whose core died (`engine.errored`, `check_health()`, `EngineDeadError`) is listed "dead" and
replaced likewise. Cancelling the stream (`ray.cancel` on the generator, as dispatch does) aborts
the request in the engine. Stopping an engine asks it to `shutdown()` (vLLM's engine core runs in
child processes that `ray.kill` would skip) and exit; `ray.kill` only after `STOP_TIMEOUT_S`.

Prompts: the chat template is rendered by the model's tokenizer (`get_tokenizer()` is sync in
0.33) and sent as a text prompt with `tokenization_kwargs={"add_special_tokens": False}`: the
template already carries the BOS token. `max_tokens` is always passed (None = up to the model's
context): vLLM's own default is 16.

vLLM is imported lazily, inside the actor, on the GPU node. Test hook: pass
`EnginePool(..., engine=<EngineFactory>)`, an object with `create(model, tensor_parallel_size,
engine_kwargs)` (blocking; it is the model load) returning something with `AsyncLLM`'s
interface, and `sampling_params(temperature, max_tokens)`. The default, `VllmFactory`, builds the
real `AsyncLLM`. Tests use a stand-in (vLLM cannot be installed without a GPU).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from raytui.backends.node import started_here
from raytui.backends.stream_task import StreamMeter
from raytui.errors import UsageError
from raytui.model.prompts import (
    Chunk,
    Done,
    EngineInfo,
    Event,
    Failed,
    FailureKind,
    Loading,
    PromptRequest,
)

NAMESPACE = "raytui"
LOADING_EVERY_S = 1.0  # how often a waiting prompt hears that the model still loads
HEALTH_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 30.0  # shutdown() this long, then ray.kill
STATUS_TIMEOUT_S = 2.0  # an actor not answering by then is still starting (GPUs, worker)
CHECKED_VLLM = "0.33.0"


class EngineFactory(Protocol):
    def create(
        self, model: str, tensor_parallel_size: int, engine_kwargs: Mapping[str, Any]
    ) -> Any: ...

    def sampling_params(self, temperature: float | None, max_tokens: int | None) -> Any: ...


class VllmFactory:
    """The real thing: `AsyncLLM.from_engine_args(AsyncEngineArgs(...))`, delta outputs."""

    def create(
        self, model: str, tensor_parallel_size: int, engine_kwargs: Mapping[str, Any]
    ) -> Any:
        vllm = importlib.import_module("vllm")
        async_llm = importlib.import_module("vllm.v1.engine.async_llm")

        args = vllm.AsyncEngineArgs(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            distributed_executor_backend="mp",
            **dict(engine_kwargs),
        )
        return async_llm.AsyncLLM.from_engine_args(args)

    def sampling_params(self, temperature: float | None, max_tokens: int | None) -> Any:
        vllm = importlib.import_module("vllm")
        kinds = importlib.import_module("vllm.sampling_params").RequestOutputKind

        # max_tokens always: vLLM's default is 16; only an explicit None means "to the context".
        kwargs: dict[str, Any] = {"output_kind": kinds.DELTA, "max_tokens": max_tokens}
        if temperature is not None:
            kwargs["temperature"] = temperature
        return vllm.SamplingParams(**kwargs)


class NoChatTemplate(Exception):
    pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@dataclass(frozen=True)
class EngineStatus:
    """What `EnginePool` needs to route: state and requests in flight."""

    state: str  # loading | ready | failed | dead | stopping
    in_flight: int


class VllmEngine:
    """Body of the engine actor (async: many requests stream concurrently through one engine)."""

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        engine_kwargs: Mapping[str, Any] | None = None,
        engine: EngineFactory | None = None,
    ) -> None:
        self.model = model
        self.tp = tensor_parallel_size
        self.factory: EngineFactory = engine if engine is not None else VllmFactory()
        self.engine: Any = None
        self.state = "loading"
        self.error: str | None = None
        self.in_flight = 0
        self.loading_since = time.time()
        self.loaded_at: float | None = None
        self._kwargs = dict(engine_kwargs or {})
        self._settled = threading.Event()  # the load ended, either way
        # The load is vLLM's blocking `from_engine_args` (it waits for the engine core to load
        # the weights): in a thread, so the actor answers status calls and prompts meanwhile.
        # AsyncLLM starts its output handler on the first request, in the actor's event loop.
        threading.Thread(target=self._load, name="raytui-vllm-load", daemon=True).start()

    def _load(self) -> None:
        try:
            engine = self.factory.create(self.model, self.tp, self._kwargs)
        except BaseException as exc:
            self.error = f"loading {self.model} failed: {_one_line(exc)}"
            self.state = "failed"
            self._settled.set()
            return
        self.engine = engine
        self.loaded_at = time.time()
        if self.state == "loading":
            self.state = "ready"
        self._settled.set()

    async def _check(self) -> None:
        """Turn a ready engine whose core died into "dead" (vLLM: `errored`, `check_health`)."""
        engine = self.engine
        if self.state != "ready" or engine is None:
            return
        try:
            if getattr(engine, "errored", False):
                raise RuntimeError("the engine core is not running (EngineDeadError)")
            check = getattr(engine, "check_health", None)
            if check is not None:
                result = check()
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, HEALTH_TIMEOUT_S)
        except Exception as exc:
            self.state = "dead"
            self.error = f"engine died: {_one_line(exc)}"

    async def status(self) -> EngineStatus:
        await self._check()
        return EngineStatus(self.state, self.in_flight)

    async def describe(self, name: str) -> EngineInfo:
        await self._check()
        s = started_here("vllm")
        return EngineInfo(
            name=name,
            ready=self.state == "ready",
            model=self.model,
            tensor_parallel_size=self.tp,
            node_id=s.node_id,
            hostname=s.hostname,
            gpu_ids=s.gpu_ids,
            in_flight=self.in_flight,
            started_at=self.loaded_at,
            state=self.state,
            error=self.error,
            loading_since=self.loading_since,
        )

    def where(self) -> dict[str, Any]:
        s = started_here("vllm")
        return {"node_id": s.node_id, "gpu_ids": list(s.gpu_ids), "pid": s.pid}

    async def stop(self) -> None:
        """Shut the engine down (its core processes free the GPUs), then end this actor."""
        import ray

        self.state = "stopping"
        engine = self.engine
        shutdown = getattr(engine, "shutdown", None) if engine is not None else None
        if shutdown is not None:
            await asyncio.to_thread(shutdown)
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    def _render(self, request: PromptRequest) -> str:
        messages = request.chat_messages()
        tokenizer = self.engine.get_tokenizer()  # sync in vLLM 0.33
        if not getattr(tokenizer, "chat_template", None):
            raise NoChatTemplate(
                f"model {self.model} has no chat template (a base model?): vLLM chat prompts"
                " need one; use an instruction-tuned model or `--backend openai` with a server"
                " started with --chat-template"
            )
        return str(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    async def _wait_loaded(self, where: Any) -> AsyncIterator[Loading]:
        while self.state == "loading":
            yield Loading(
                self.model, where.node_id, where.hostname, where.gpu_ids,
                time.time() - self.loading_since,
            )  # fmt: skip
            await asyncio.to_thread(self._settled.wait, LOADING_EVERY_S)

    async def generate(self, request: PromptRequest, request_id: str) -> AsyncIterator[Event]:
        here = started_here(f"vllm:{self.model}")
        yield here
        async for loading in self._wait_loaded(here):
            yield loading
        await self._check()
        if self.state != "ready":
            where = f"node {here.node_id[:8]} ({here.hostname})"
            why = self.error or f"the engine is {self.state}"
            yield Failed(
                f"vLLM engine for {self.model} on {where}: {why}"
                " (the next prompt starts a new engine)",
                FailureKind.SERVER,
            )
            return
        self.in_flight += 1
        meter = StreamMeter()
        tokens = 0
        finished = False
        try:
            try:
                prompt = self._render(request)
            except NoChatTemplate as exc:
                finished = True  # nothing was sent to the engine
                yield Failed(str(exc), FailureKind.BAD_REQUEST)
                return
            params = self.factory.sampling_params(request.temperature, request.max_tokens)
            stream = self.engine.generate(
                {"prompt": prompt},
                params,
                request_id,
                tokenization_kwargs={"add_special_tokens": False},  # the template has the BOS
            )
            async for out in stream:
                for completion in out.outputs[:1]:
                    tokens += len(getattr(completion, "token_ids", ()) or ())
                    if completion.text:
                        meter.text()
                        yield Chunk(completion.text)
                if out.finished:
                    finished = True
                    reason = out.outputs[0].finish_reason if out.outputs else None
                    yield Done(
                        meter.timings(
                            count=tokens,
                            measure_total=True,
                            prompt_eval_count=len(getattr(out, "prompt_token_ids", ()) or ()),
                            eval_count=tokens or None,
                        ),
                        done_reason=reason,
                    )
                    return
            yield Failed("vLLM ended the request without a final output", FailureKind.SERVER)
        except Exception as exc:
            await self._check()
            if type(exc).__name__ == "EngineDeadError" and self.state == "ready":
                self.state = "dead"
                self.error = f"engine died: {_one_line(exc)}"
            if self.state == "dead":
                finished = True  # no abort: vLLM does not abort on a dead engine either
                yield Failed(
                    f"vLLM engine for {self.model} died: {self.error}"
                    " (the next prompt starts a new engine)",
                    FailureKind.SERVER,
                )
            else:
                yield Failed(f"vLLM engine for {self.model}: {_one_line(exc)}")
        finally:
            self.in_flight -= 1
            if not finished:  # cancelled (CancelledError/GeneratorExit) or failed: free the slot
                await self._abort(request_id)

    async def _abort(self, request_id: str) -> None:
        try:
            result = self.engine.abort(request_id)
            if inspect.isawaitable(result):
                await asyncio.shield(result)
        except Exception:  # the request may be gone already
            return


ACTOR_PREFIX = "raytui-vllm-"


def actor_name(model: str, tensor_parallel_size: int, index: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
    return f"{ACTOR_PREFIX}{safe}-tp{tensor_parallel_size}-{index}"


class EnginePool:
    """Replicas of one model's engine; `generate` routes to the least busy one.

    Blocking methods (actor creation and status queries): call them from a thread or the CLI.
    """

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        replicas: int = 1,
        engine_kwargs: Mapping[str, Any] | None = None,
        engine: EngineFactory | None = None,
        node_id: str | None = None,
        detached: bool = False,
    ) -> None:
        self.model = model
        self.tp = tensor_parallel_size
        self.replicas = replicas
        self.engine_kwargs = dict(engine_kwargs or {})
        self.engine = engine
        self.node_id = node_id
        self.detached = detached
        self.actors: list[Any] = []

    def _new_actor(self, index: int) -> Any:
        import ray

        options: dict[str, Any] = {
            "num_gpus": self.tp,
            "num_cpus": 0,
            "namespace": NAMESPACE,
            "get_if_exists": True,
            "max_restarts": 0,
            "max_concurrency": 1000,
            "lifetime": "detached" if self.detached else None,
        }
        if self.node_id:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self.node_id, False)
        cls = ray.remote(VllmEngine)
        return cls.options(name=actor_name(self.model, self.tp, index), **options).remote(
            self.model, self.tp, self.engine_kwargs, self.engine
        )

    def start(self) -> EnginePool:
        self.actors = [self._new_actor(i) for i in range(self.replicas)]
        return self

    def statuses(self, timeout: float = STATUS_TIMEOUT_S) -> list[EngineStatus | None]:
        """Each replica's status; None for one that does not answer in time (still starting)."""
        import ray

        refs = [a.status.remote() for a in self.actors]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        answered = set(ready)
        out: list[EngineStatus | None] = []
        for ref in refs:
            status = None
            if ref in answered:
                try:
                    status = ray.get(ref)
                except ray.exceptions.RayError:  # the actor itself died
                    status = EngineStatus("dead", 0)
            out.append(status)
        return out

    def least_busy(self, timeout: float = STATUS_TIMEOUT_S) -> Any:
        """The replica to send a prompt to; failed or dead replicas are replaced first.

        Never fails for a replica that is slow to answer: one still loading (or waiting for its
        GPUs) gets the prompt queued, and the prompt's stream says it is loading.
        """
        if not self.actors:
            self.start()
        statuses = self.statuses(timeout)
        for i, status in enumerate(statuses):
            if status is not None and status.state in ("failed", "dead", "stopping"):
                stop_actor(self.actors[i], actor_name(self.model, self.tp, i), timeout=10.0)
                self.actors[i] = self._new_actor(i)
                statuses[i] = None

        def rank(i: int) -> tuple[int, int]:
            s = statuses[i]
            if s is None:
                return (2, i)
            return (0 if s.state == "ready" else 1, s.in_flight)

        return self.actors[min(range(len(self.actors)), key=rank)]

    def generate(self, request: PromptRequest, request_id: str) -> Any:
        """The Ray streaming generator of one request on the least busy replica."""
        actor = self.least_busy()
        return actor.generate.options(num_returns="streaming").remote(request, request_id)

    def shutdown(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every replica (engine shutdown, then the actor; killed after `timeout`)."""
        names = [actor_name(self.model, self.tp, i) for i in range(len(self.actors))]
        _stop_all(list(zip(self.actors, names, strict=True)), timeout)
        self.actors = []
        with _lock:
            for key in [k for k, v in _pools.items() if v is self]:
                del _pools[key]


def stop_actor(actor: Any, name: str, timeout: float = STOP_TIMEOUT_S) -> str:
    """Ask one engine actor to shut its engine down and exit; kill it if it has not in time.

    Returns "stopped" or "killed". Blocks until its name is free (a new engine can take it).
    """
    return _stop_all([(actor, name)], timeout)[0]


def _stop_all(actors: list[tuple[Any, str]], timeout: float) -> list[str]:
    import ray

    refs = [actor.stop.remote() for actor, _ in actors]
    # The call ends when the actor exits (ActorDiedError, intended exit) or fails: either way
    # it answered. One that has not by the deadline is wedged (e.g. in vLLM's shutdown).
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    answered = set(ready)
    for actor, _ in actors:
        # Also for the exited ones: Ray keeps an exited actor's name taken (get_if_exists would
        # hand back the dead actor) until it is killed.
        ray.kill(actor)
    gone_by = time.monotonic() + 15.0
    for _, name in actors:
        while _name_taken(name) and time.monotonic() < gone_by:
            time.sleep(0.05)
    return ["stopped" if ref in answered else "killed" for ref in refs]


def _name_taken(name: str) -> bool:
    import ray

    try:
        ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return False
    return True


_lock = threading.Lock()
_pools: dict[tuple[str, int], EnginePool] = {}


def pool_for(model: str, tensor_parallel_size: int = 1, **kwargs: Any) -> EnginePool:
    """This process's pool for (model, TP), created and started on first use."""
    key = (model, tensor_parallel_size)
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            pool = EnginePool(model, tensor_parallel_size, **kwargs)
            _pools[key] = pool
    if not pool.actors:
        pool.start()
    return pool


def register_pool(pool: EnginePool) -> None:
    """Make `pool` the one dispatch uses for its (model, TP) (the composer's or a test's)."""
    with _lock:
        _pools[(pool.model, pool.tp)] = pool


def generate(request: PromptRequest, request_id: str, node_id: str | None = None) -> Any:
    """Dispatch's entry: the request's GPUs are the tensor-parallel size of the engine.

    Without a registered pool, one detached replica is started (or found, by name) so the loaded
    model outlives this process; `EnginePool.shutdown()` or `ray kill`-ing the actor frees it.
    """
    tp = max(1, int(request.num_gpus))
    pool = pool_for(request.model, tp, detached=True, node_id=node_id)
    return pool.generate(request, request_id)


def list_engines(timeout: float = 5.0) -> list[EngineInfo]:
    """Every raytui vLLM engine actor in the cluster, whoever started it (blocking).

    An engine loads its model in the background and answers meanwhile ("loading"); one that does
    not answer within `timeout` is listed "starting" (waiting for GPUs or a worker).
    """
    import ray

    names = sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == NAMESPACE and a["name"].startswith(ACTOR_PREFIX)
    )
    refs: dict[str, Any] = {}
    for name in names:
        try:
            refs[name] = ray.get_actor(name, namespace=NAMESPACE).describe.remote(name)
        except ValueError:  # gone since it was listed
            continue
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
    answered = set(ready)
    out = []
    for name, ref in refs.items():
        info = None
        if ref in answered:
            try:
                info = ray.get(ref)
            except ray.exceptions.RayError:  # died meanwhile
                continue
        out.append(info if info is not None else EngineInfo(name=name, ready=False))
    return out


def stop_engines(names: list[str], timeout: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop these engines, freeing their GPUs; every name must exist (blocking)."""
    return [name for name, _ in stop_engines_report(names, timeout)]


def stop_engines_report(names: list[str], timeout: float = STOP_TIMEOUT_S) -> list[tuple[str, str]]:
    """Stop these engines, freeing their GPUs; every name must exist (blocking).

    Each engine is asked to shut down (vLLM's `shutdown()` ends its core processes) and exit;
    one that has not within `timeout` is killed. Returns (name, "stopped" | "killed").
    """
    import ray

    actors = []
    for name in names:
        if not name.startswith(ACTOR_PREFIX):
            raise UsageError(f"{name!r} is not a raytui engine (names start with {ACTOR_PREFIX})")
        try:
            actors.append(ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:
            raise UsageError(f"no engine named {name!r} (see `raytui engines list`)") from None
    results = _stop_all(list(zip(actors, names, strict=True)), timeout)
    with _lock:
        for key, pool in list(_pools.items()):
            pool.actors = [a for a in pool.actors if a not in actors]
            if not pool.actors:
                del _pools[key]
    return list(zip(names, results, strict=True))
