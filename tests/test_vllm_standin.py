"""The vLLM engine actor, driven against a STAND-IN for vLLM's AsyncLLM (tests/support).

vLLM cannot be installed on these machines (no GPU, CUDA wheels), so these tests check raytui's
side of the contract: actor placement (GPUs = tensor-parallel size), replicas with least-busy
routing, delta streaming, chat templating, SamplingParams(output_kind=DELTA), abort on cancel.
What only a real GPU machine can verify: vLLM's own AsyncLLM under Ray, model load, real TP.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raytui.backends import dispatch, vllm
from raytui.model.prompts import (
    Chunk,
    Done,
    Failed,
    FailureKind,
    Loading,
    PromptRequest,
    Started,
)
from tests.support.prompt_runs import RAYTUI, collect, gpu2, submit_cli
from tests.support.ray_cluster import RayTestCluster
from tests.support.vllm_standin import StandInFactory, read_log

pytestmark = [pytest.mark.ray, pytest.mark.multinode]

TOKENS = ["Ten", "sor", " par", "allel", " 並列", "."]


@pytest.fixture
def pool_factory(ray_driver: RayTestCluster, tmp_path: Path) -> Iterator[object]:
    pools: list[vllm.EnginePool] = []

    def make(
        tp: int, replicas: int, tokens_per_s: float = 50.0, **standin: Any
    ) -> tuple[vllm.EnginePool, str]:
        log = str(tmp_path / f"standin-{len(pools)}.jsonl")
        pool = vllm.EnginePool(
            f"standin-model-{len(pools)}",
            tensor_parallel_size=tp,
            replicas=replicas,
            engine_kwargs={"gpu_memory_utilization": 0.8},
            engine=StandInFactory(
                log, TOKENS * (1 if tokens_per_s >= 50 else 20), tokens_per_s, **standin
            ),
            node_id=gpu2(ray_driver).node_id,
        ).start()
        vllm.register_pool(pool)
        pools.append(pool)
        return pool, log

    yield make
    for pool in pools:
        pool.shutdown(timeout=3)


def wait_ready(pool: vllm.EnginePool, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        states = [s.state if s else None for s in pool.statuses()]
        if all(s == "ready" for s in states):
            return
        assert time.monotonic() < deadline, states
        time.sleep(0.1)


async def test_vllm_actor_streams_deltas_from_standin_engine(pool_factory: object) -> None:
    pool, log = pool_factory(tp=2, replicas=1)  # type: ignore[operator]
    run = dispatch.submit(
        PromptRequest("Explain TP", "vllm", pool.model, system="be brief", max_tokens=5, num_gpus=2)
    )
    events = await collect(run)
    started = next(e for e in events if isinstance(e, Started))
    assert len(started.gpu_ids) == 2  # the engine actor holds TP-many GPUs
    assert [e.text for e in events if isinstance(e, Chunk)] == TOKENS[:5]
    done = events[-1]
    assert isinstance(done, Done) and done.done_reason == "length"
    assert done.timings.eval_count == 5
    entries = read_log(log)
    create = next(e for e in entries if e["event"] == "create")
    assert create["tp"] == 2 and create["kwargs"] == {"gpu_memory_utilization": 0.8}
    gen = next(e for e in entries if e["event"] == "generate")
    assert gen["prompt"] == "<s><|system|>be brief<|user|>Explain TP<|assistant|>"
    assert gen["bos_count"] == 1
    assert gen["params"] == {"output_kind": "DELTA", "temperature": None, "max_tokens": 5}
    assert gen["id"] == run.run_id


async def test_vllm_replicas_route_to_least_busy_standin(pool_factory: object) -> None:
    pool, log = pool_factory(tp=1, replicas=2, tokens_per_s=20)  # type: ignore[operator]
    first = dispatch.submit(PromptRequest("one", "vllm", pool.model))
    events: list[object] = []
    streaming = asyncio.Event()

    async def consume_first() -> None:
        async for event in first.events():
            events.append(event)
            if isinstance(event, Chunk):
                streaming.set()

    task = asyncio.ensure_future(consume_first())
    await asyncio.wait_for(streaming.wait(), 30)  # the first replica is now busy
    second = dispatch.submit(PromptRequest("two", "vllm", pool.model))
    second_events = await collect(second)
    first.cancel()
    await task
    pids = {e["pid"] for e in read_log(log) if e["event"] == "generate"}
    assert len(pids) == 2  # went to the other, idle replica
    s1 = next(e for e in events if isinstance(e, Started))
    s2 = next(e for e in second_events if isinstance(e, Started))
    assert s1.gpu_ids != s2.gpu_ids


async def test_vllm_cancel_aborts_request_in_standin_engine(pool_factory: object) -> None:
    pool, log = pool_factory(tp=1, replicas=1, tokens_per_s=20)  # type: ignore[operator]
    run = dispatch.submit(PromptRequest("long", "vllm", pool.model))
    events = []
    async for event in run.events():
        events.append(event)
        if sum(isinstance(e, Chunk) for e in events) == 2:
            run.cancel()
    assert isinstance(events[-1], Failed) and events[-1].kind == FailureKind.CANCELLED
    deadline = asyncio.get_running_loop().time() + 10
    while not any(e["event"] == "abort" and e["id"] == run.run_id for e in read_log(log)):
        assert asyncio.get_running_loop().time() < deadline, read_log(log)
        await asyncio.sleep(0.05)
    assert not any(e["event"] == "finished" for e in read_log(log))
    # The engine keeps serving after an abort.
    again = dispatch.submit(PromptRequest("short", "vllm", pool.model, max_tokens=2))
    assert isinstance((await collect(again))[-1], Done)


def test_engines_list_and_stop_from_the_command_line_with_standin(
    pool_factory: object, ray_driver: RayTestCluster
) -> None:
    pool, log = pool_factory(tp=1, replicas=2)  # type: ignore[operator]
    wait_ready(pool)  # both replicas have loaded their (stand-in) model

    def raytui(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RAYTUI), "engines", *args, "--address", ray_driver.gcs_address],
            env=ray_driver.client_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    listed = raytui("list", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    mine = [e for e in json.loads(listed.stdout) if e["model"] == pool.model]
    assert [e["name"] for e in mine] == [vllm.actor_name(pool.model, 1, i) for i in (0, 1)]
    node = gpu2(ray_driver)
    for e in mine:
        assert e["ready"] and e["tensor_parallel_size"] == 1 and e["in_flight"] == 0
        assert e["node_id"] == node.node_id and len(e["gpu_ids"]) == 1
    text = raytui("list").stdout
    assert f"{mine[0]['name']}  {pool.model}  TP 1  " in text

    stopped = raytui("stop", mine[0]["name"])
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert stopped.stdout == f"stopped {mine[0]['name']}\n"
    shut = [e["pid"] for e in read_log(log) if e["event"] == "shutdown"]
    assert len(shut) == 1  # vLLM's shutdown() ran (its core processes free the GPUs)
    left = [e["name"] for e in json.loads(raytui("list", "--json").stdout)]
    assert mine[0]["name"] not in left and mine[1]["name"] in left

    unknown = raytui("stop", "raytui-vllm-nothing-tp1-0")
    assert unknown.returncode == 2
    assert "no engine named 'raytui-vllm-nothing-tp1-0'" in unknown.stderr
    assert raytui("stop").returncode == 2  # NAMEs or --all
    assert raytui("stop", "--all").returncode == 0
    assert json.loads(raytui("list", "--json").stdout) == []


def test_composer_model_list_offers_the_models_loaded_in_standin_engines(
    pool_factory: object, ray_driver: RayTestCluster
) -> None:
    from raytui.backends.service import RayPromptService
    from raytui.sources import attach

    pool, _ = pool_factory(tp=1, replicas=1)  # type: ignore[operator]
    wait_ready(pool)
    conn = attach.connect(ray_driver.dashboard_url)  # the connection the app would hold
    service = RayPromptService(lambda: conn)
    try:
        assert pool.model in service.models("vllm", None)
        assert pool.model in service.models("vllm", gpu2(ray_driver).node_id)
        assert pool.model not in service.models("vllm", ray_driver.head.node_id)  # elsewhere
    finally:
        conn.close()
    import ray

    assert ray.is_initialized()  # the session's driver was not this connection's to stop


async def test_first_prompt_waits_for_a_slow_loading_standin_engine_then_streams(
    pool_factory: object, ray_driver: RayTestCluster
) -> None:
    """A model load of minutes (here 5 s): the prompt says where it loads, then streams."""
    pool, log = pool_factory(tp=1, replicas=1, load_s=5.0)  # type: ignore[operator]
    cli = asyncio.ensure_future(
        asyncio.to_thread(submit_cli, ray_driver, "--backend", "vllm", "--model", pool.model,
                          "--node", gpu2(ray_driver).node_id[:8], "hello")
    )  # fmt: skip
    run = dispatch.submit(PromptRequest("hi", "vllm", pool.model, max_tokens=3))
    events = await collect(run)
    loading = [e for e in events if isinstance(e, Loading)]
    assert len(loading) >= 3, events  # about one a second while the model loads
    node = gpu2(ray_driver)
    assert loading[0].node_id == node.node_id and len(loading[0].gpu_ids) == 1
    assert loading[-1].elapsed_s > loading[0].elapsed_s
    assert (
        loading[0].describe().startswith(f"loading model {pool.model} on node {node.node_id[:8]}")
    )
    assert [e.text for e in events if isinstance(e, Chunk)] == TOKENS[:3]
    assert isinstance(events[-1], Done)
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("Loading") < kinds.index("Chunk")
    done = await cli  # `raytui submit` against the same loading engine (found by name)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"loading model {pool.model} on node {node.node_id[:8]}" in done.stderr
    assert done.stdout == "".join(TOKENS) + "\n"
    assert sum(e["event"] == "create" for e in read_log(log)) == 1  # one load served both


async def test_standin_engine_whose_load_fails_says_why_is_listed_failed_and_retried(
    pool_factory: object,
) -> None:
    pool, log = pool_factory(  # type: ignore[operator]
        tp=1, replicas=1, load_s=0.5, load_error="CUDA out of memory", fail_loads=1
    )
    events = await collect(dispatch.submit(PromptRequest("hi", "vllm", pool.model)))
    failed = events[-1]
    assert isinstance(failed, Failed) and failed.kind == FailureKind.SERVER
    assert f"loading {pool.model} failed: RuntimeError: CUDA out of memory" in failed.error
    assert "the next prompt starts a new engine" in failed.error
    (listed,) = [e for e in vllm.list_engines() if e.model == pool.model]
    assert not listed.ready and listed.status == "failed"
    assert listed.error is not None and "CUDA out of memory" in listed.error
    again = await collect(dispatch.submit(PromptRequest("hi", "vllm", pool.model, max_tokens=2)))
    assert isinstance(again[-1], Done), again  # a new engine, loaded this time
    creates = [e["pid"] for e in read_log(log) if e["event"] == "create"]
    assert len(creates) == 2 and creates[0] != creates[1]


async def test_dead_standin_engine_is_listed_dead_and_replaced_by_the_next_prompt(
    pool_factory: object,
) -> None:
    pool, log = pool_factory(tp=1, replicas=1, die_after=1)  # type: ignore[operator]
    first = await collect(dispatch.submit(PromptRequest("one", "vllm", pool.model)))
    assert isinstance(first[-1], Done)
    second = await collect(dispatch.submit(PromptRequest("two", "vllm", pool.model)))
    died = second[-1]
    assert isinstance(died, Failed) and "died" in died.error and "EngineDeadError" in died.error
    (listed,) = [e for e in vllm.list_engines() if e.model == pool.model]
    assert listed.status == "dead" and not listed.ready
    third = await collect(dispatch.submit(PromptRequest("three", "vllm", pool.model)))
    assert isinstance(third[-1], Done), third
    entries = read_log(log)
    assert sum(e["event"] == "create" for e in entries) == 2
    assert any(e["event"] == "shutdown" for e in entries)  # the dead one was shut down


def test_stopping_a_standin_engine_that_ignores_shutdown_kills_it_after_the_timeout(
    pool_factory: object,
) -> None:
    import time

    pool, log = pool_factory(tp=1, replicas=1, ignore_shutdown=True)  # type: ignore[operator]
    wait_ready(pool)
    name = vllm.actor_name(pool.model, 1, 0)
    began = time.monotonic()
    assert vllm.stop_engines_report([name], timeout=2.0) == [(name, "killed")]
    assert 2.0 <= time.monotonic() - began < 20
    assert any(e["event"] == "shutdown" for e in read_log(log))  # it was asked first
    assert name not in [e.name for e in vllm.list_engines()]
