"""The vLLM backend: long-lived async Ray actors, each holding one vLLM `AsyncLLM` engine.

Loading a model costs minutes, so an engine is an actor that outlives a prompt: `EnginePool`
starts `replicas` actors (data parallelism), each with `num_gpus = tensor_parallel_size` (tensor
parallelism on one node, vLLM's `mp` executor), named `raytui-vllm-<model>-<tp>-<i>` in namespace
`raytui` and reused by later pools/processes (`get_if_exists`). A prompt goes to the replica with
the fewest requests in flight. The actor's `generate` is an async generator streaming `Started`,
`Chunk`s (vLLM's `RequestOutputKind.DELTA` outputs), then `Done` or `Failed`; cancelling it
(`ray.cancel` on the generator, as dispatch does) aborts the request in the engine.

vLLM is imported lazily, inside the actor, on the GPU node. Test hook: pass
`EnginePool(..., engine=<EngineFactory>)`, an object with `create(model, tensor_parallel_size,
engine_kwargs)` returning something with the async engine's interface (`generate(prompt,
sampling_params, request_id)` async iterator of RequestOutput-like objects, `abort(request_id)`,
`get_tokenizer()`) and `sampling_params(temperature, max_tokens)`. The default, `VllmFactory`,
builds the real `AsyncLLM`. Tests use a stand-in (vLLM cannot be installed without a GPU).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from raytui.backends.node import started_here
from raytui.errors import UsageError
from raytui.model.prompts import (
    Chunk,
    Done,
    EngineInfo,
    Event,
    Failed,
    FailureKind,
    PromptRequest,
    Timings,
)

NAMESPACE = "raytui"


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

        kwargs: dict[str, Any] = {"output_kind": kinds.DELTA}
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        return vllm.SamplingParams(**kwargs)


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
        self.engine = self.factory.create(model, tensor_parallel_size, engine_kwargs or {})
        self.in_flight = 0
        self.loaded_at = time.time()

    def load(self) -> int:
        return self.in_flight

    def describe(self, name: str) -> EngineInfo:
        s = started_here("vllm")
        return EngineInfo(
            name=name,
            ready=True,
            model=self.model,
            tensor_parallel_size=self.tp,
            node_id=s.node_id,
            hostname=s.hostname,
            gpu_ids=s.gpu_ids,
            in_flight=self.in_flight,
            started_at=self.loaded_at,
        )

    def where(self) -> dict[str, Any]:
        s = started_here("vllm")
        return {"node_id": s.node_id, "gpu_ids": list(s.gpu_ids), "pid": s.pid}

    async def _prompt(self, request: PromptRequest) -> str:
        messages = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": request.prompt})
        tokenizer = self.engine.get_tokenizer()
        if inspect.isawaitable(tokenizer):
            tokenizer = await tokenizer
        return str(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    async def generate(self, request: PromptRequest, request_id: str) -> AsyncIterator[Event]:
        yield started_here(f"vllm:{self.model}")
        self.in_flight += 1
        sent = time.monotonic()
        first: float | None = None
        tokens = 0
        finished = False
        try:
            prompt = await self._prompt(request)
            params = self.factory.sampling_params(request.temperature, request.max_tokens)
            async for out in self.engine.generate(prompt, params, request_id):
                for completion in out.outputs[:1]:
                    tokens += len(getattr(completion, "token_ids", ()) or ())
                    if completion.text:
                        if first is None:
                            first = time.monotonic()
                        yield Chunk(completion.text)
                if out.finished:
                    finished = True
                    end = time.monotonic()
                    reason = out.outputs[0].finish_reason if out.outputs else None
                    span = end - first if first is not None else 0.0
                    yield Done(
                        Timings(
                            ttft_s=first - sent if first is not None else None,
                            tokens_per_s=tokens / span if span > 0 and tokens else None,
                            prompt_eval_count=len(getattr(out, "prompt_token_ids", ()) or ()),
                            eval_count=tokens or None,
                            total_duration_s=end - sent,
                        ),
                        done_reason=reason,
                    )
                    return
            yield Failed("vLLM ended the request without a final output", FailureKind.SERVER)
        except Exception as exc:
            yield Failed(f"vLLM engine for {self.model}: {type(exc).__name__}: {exc}")
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

    Blocking methods (actor creation and load queries): call them from a thread or the CLI.
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

    def start(self) -> EnginePool:
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
        self.actors = [
            cls.options(name=actor_name(self.model, self.tp, i), **options).remote(
                self.model, self.tp, self.engine_kwargs, self.engine
            )
            for i in range(self.replicas)
        ]
        return self

    def least_busy(self, timeout: float = 10.0) -> Any:
        import ray

        if not self.actors:
            self.start()
        loads = ray.get([a.load.remote() for a in self.actors], timeout=timeout)
        return self.actors[min(range(len(loads)), key=lambda i: loads[i])]

    def generate(self, request: PromptRequest, request_id: str) -> Any:
        """The Ray streaming generator of one request on the least busy replica."""
        actor = self.least_busy()
        return actor.generate.options(num_returns="streaming").remote(request, request_id)

    def shutdown(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        with _lock:
            for key in [k for k, v in _pools.items() if v is self]:
                del _pools[key]


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

    An engine still loading its model does not answer within `timeout`: it is listed not ready.
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


def stop_engines(names: list[str]) -> list[str]:
    """Kill these engine actors (freeing their GPUs); every name must exist (blocking)."""
    import ray

    actors = []
    for name in names:
        if not name.startswith(ACTOR_PREFIX):
            raise UsageError(f"{name!r} is not a raytui engine (names start with {ACTOR_PREFIX})")
        try:
            actors.append(ray.get_actor(name, namespace=NAMESPACE))
        except ValueError:
            raise UsageError(f"no engine named {name!r} (see `raytui engines list`)") from None
    for actor in actors:
        ray.kill(actor)
    with _lock:
        for key, pool in list(_pools.items()):
            pool.actors = [a for a in pool.actors if a not in actors]
            if not pool.actors:
                del _pools[key]
    return names
