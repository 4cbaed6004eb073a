"""The workbench's data layer (jobs, tasks, actors, workers, logs) against the real session cluster.

Everything goes through the dashboard URL and token only, as a console attached with `--via`
would: no Ray driver in this process. Workloads are started as jobs (Ray's job API).
"""

from __future__ import annotations

import re
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raytui.errors import ClusterUnreachable, RaytuiError, UsageError
from raytui.model.workbench import (
    ActorFilter,
    JobSubmission,
    LogSource,
    TaskFilter,
)
from raytui.sources.jobs import JobsClient
from raytui.sources.logs import LogsClient
from raytui.sources.ray_connection import RayConnection, Target
from raytui.sources.workload import WorkloadClient
from tests.conftest import RayTestCluster
from tests.support.waiting import wait_for

PY = sys.executable  # the cluster's nodes run this venv's Ray; `python` on PATH may lack it


# -- validate (pure) ----------------------------------------------------------------------------


def test_a_valid_submission_has_no_problems(tmp_path: Path) -> None:
    job = JobSubmission(
        "python run.py",
        working_dir=str(tmp_path),
        pip="requests==2.32, numpy",
        env_vars="FOO=bar MSG='two words'",
        num_gpus="1",
        num_cpus="0.5",
        resources="accel_A=2",
        submission_id="my-job_1.2",
    )
    assert job.validate() == {}
    assert job.runtime_env() == {
        "working_dir": str(tmp_path),
        "pip": ["requests==2.32", "numpy"],
        "env_vars": {"FOO": "bar", "MSG": "two words"},
    }
    assert (job.num_gpus_value(), job.num_cpus_value()) == (1.0, 0.5)
    assert job.resources_dict() == {"accel_A": 2.0}


@pytest.mark.parametrize(
    ("fields", "bad", "says"),
    [
        ({"entrypoint": "  "}, "entrypoint", "empty"),
        ({"working_dir": "/no/such/dir"}, "working_dir", "not a directory"),
        ({"env_vars": "FOO"}, "env_vars", "NAME=value"),
        ({"env_vars": "1X=2"}, "env_vars", "variable name"),
        ({"env_vars": "A='open"}, "env_vars", "quote"),
        ({"num_gpus": "-1"}, "num_gpus", "0 or more"),
        ({"num_cpus": "two"}, "num_cpus", "not a number"),
        ({"num_gpus": "nan"}, "num_gpus", "0 or more"),
        ({"resources": "X"}, "resources", "NAME=amount"),
        ({"submission_id": "bad id/x"}, "submission_id", "letters, digits"),
        ({"pip": "E2E_WORD=tmux-ok"}, "pip", "not a package spec"),  # an env var in pip's box
    ],
)
def test_validate_names_the_bad_field(fields: dict[str, str], bad: str, says: str) -> None:
    job = JobSubmission(**{"entrypoint": "python run.py", **fields})
    problems = job.validate()
    assert list(problems) == [bad]
    assert says in problems[bad] and "\n" not in problems[bad]


# -- unreachable ------------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung dashboard)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_unreachable_dashboard_fails_in_one_line_within_a_bound(silent_server: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    for url in (closed, silent_server):
        calls = [
            lambda u=url: JobsClient(u, "t", timeout=1.5).info("raysubmit_x"),
            lambda u=url: WorkloadClient(u, "t", timeout=1.5).task_summary(),
            lambda u=url: LogsClient(u, "t", timeout=1.5).read(LogSource.node_file("ab" * 28, "x")),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(ClusterUnreachable) as err:
                call()
            assert time.monotonic() - started < 6
            assert url in str(err.value) and "\n" not in str(err.value)


def test_a_connection_makes_one_workbench_and_closes_it_when_it_closes(silent_server: str) -> None:
    """Screens ask the connection for its workbench on every call: it must not build (and leak)
    new HTTP clients each time, and its clients must not outlive it."""
    conn = RayConnection(Target(silent_server, "test", None, None, None))
    wb = conn.workbench()
    assert conn.workbench() is wb
    logs_http = wb.logs._http
    conn.close()
    assert logs_http.is_closed
    with pytest.raises(ClusterUnreachable, match="closed"):
        conn.workbench()


# -- jobs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jobs(ray_cluster: RayTestCluster) -> JobsClient:
    return JobsClient(ray_cluster.dashboard_url, ray_cluster.token, timeout=20)


@pytest.mark.ray
def test_job_with_working_dir_and_env_var_is_followed_in_order(
    jobs: JobsClient, tmp_path: Path
) -> None:
    (tmp_path / "count.py").write_text(
        "import os, time\n"
        "for i in range(200):\n"
        "    print(f'n={i} {os.environ[\"WB_GREETING\"]}', flush=True)\n"
        "    if i % 50 == 0: time.sleep(0.2)\n"
    )
    key = jobs.submit(
        JobSubmission(f"{PY} count.py", working_dir=str(tmp_path), env_vars="WB_GREETING=hello-wb")
    )
    text = "".join(jobs.follow(key))  # ends on its own when the job ends
    numbers = [int(m) for m in re.findall(r"^n=(\d+) hello-wb$", text, re.MULTILINE)]
    assert numbers == list(range(200)), text[-500:]
    info = jobs.wait(key, 30)
    assert info.status == "SUCCEEDED" and info.terminal
    assert dict(info.runtime_env)["env_vars"] == '{"WB_GREETING": "hello-wb"}'
    assert dict(info.runtime_env)["working_dir"].startswith("gcs://")
    assert info.driver_node_id and info.start_time and info.end_time
    assert any(j.submission_id == key for j in jobs.list())

    assert jobs.delete(key)
    with pytest.raises(RaytuiError) as err:
        jobs.info(key)
    assert "\n" not in str(err.value)


@pytest.mark.ray
def test_stop_ends_the_follow_and_the_job_shows_stopped(jobs: JobsClient) -> None:
    code = "import time\nfor i in range(10**6):\n print('tick', i, flush=True); time.sleep(0.1)"
    key = jobs.submit(JobSubmission(f"{PY} -c {shlex.quote(code)}", num_cpus="0"))
    got: list[str] = []
    done = threading.Event()

    def follow() -> None:
        for chunk in jobs.follow(key):
            got.append(chunk)
        done.set()

    threading.Thread(target=follow, daemon=True).start()
    wait_for(lambda: "tick 3" in "".join(got), 60, "the job's first lines")
    assert jobs.stop(key)
    assert done.wait(30), "follow did not end after stop"
    assert jobs.wait(key, 30).status == "STOPPED"
    jobs.delete(key)


@pytest.mark.ray
def test_follow_ends_when_cancelled(jobs: JobsClient) -> None:
    code = "import time\nfor i in range(10**6):\n print('tock', i, flush=True); time.sleep(0.1)"
    key = jobs.submit(JobSubmission(f"{PY} -c {shlex.quote(code)}", num_cpus="0"))
    cancel = threading.Event()
    try:
        gen = jobs.follow(key, cancel, poll=0.05)
        seen = ""
        for chunk in gen:
            seen += chunk
            if "tock" in seen:
                break
        cancel.set()
        started = time.monotonic()
        rest = list(gen)
        assert time.monotonic() - started < 2 and len(rest) < 50
    finally:
        jobs.stop(key)
        jobs.wait(key, 30)
        jobs.delete(key)


# -- tasks, actors, workers, logs -------------------------------------------------------------

WORKLOAD = """
import sys, time, ray
ray.init(log_to_driver=False)

@ray.remote(max_retries=0)
def wb_explode():
    print("about to explode", flush=True)
    raise ValueError("kaboom 11")

@ray.remote
def wb_quiet(i):
    return i

@ray.remote(num_gpus=1, num_cpus=0)
class WbGpuHolder:
    def __init__(self):
        print("holder ready", flush=True)
        sys.stdout.buffer.write(b"bad bytes \\xff\\xfe end\\n"); sys.stdout.flush()
    def ping(self):
        return ray.get_gpu_ids()

ray.get([wb_quiet.remote(i) for i in range(3)])
try:
    ray.get(wb_explode.remote())
except ray.exceptions.RayTaskError:
    pass
h = WbGpuHolder.options(name="wb-holder", namespace="wb", lifetime="detached").remote()
print("gpu ids", ray.get(h.ping.remote()), flush=True)
"""


@pytest.fixture(scope="module")
def workload(ray_cluster: RayTestCluster, jobs: JobsClient) -> Iterator[WorkloadClient]:
    key = jobs.submit(JobSubmission(f"{PY} -c {shlex.quote(WORKLOAD)}", num_cpus="0"))
    info = jobs.wait(key, 120)
    assert info.status == "SUCCEEDED", jobs.logs(key)[-2000:]
    with WorkloadClient(ray_cluster.dashboard_url, ray_cluster.token, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def logs(ray_cluster: RayTestCluster) -> Iterator[LogsClient]:
    with LogsClient(ray_cluster.dashboard_url, ray_cluster.token, timeout=20) as client:
        yield client


@pytest.mark.ray
def test_a_failing_task_counts_as_failed_and_its_detail_has_the_traceback(
    workload: WorkloadClient, logs: LogsClient
) -> None:
    summary = wait_for(
        lambda: (s := workload.task_summary()).group("wb_explode") and s, 30, "wb_explode"
    )
    assert summary.group("wb_explode").count("FAILED") == 1
    page = workload.tasks(TaskFilter(func_or_class_name="wb_explode", state="FAILED"))
    (row,) = page.rows
    detail = workload.task(row.task_id)
    assert detail.row.state == "FAILED"
    assert detail.row.error_type == "TASK_EXECUTION_EXCEPTION"
    assert detail.traceback and "line 8, in wb_explode" in detail.traceback  # Ray's frames
    assert detail.message == "ValueError: kaboom 11"

    # Its log, read as the task detail opens it. In a busy session (the whole suite) Ray may lose
    # track of the attempt: no log file for it ("Could not find log file for task attempt"),
    # sometimes not even its worker (the detail has no worker PID: task events dropped). When
    # the worker is known, its whole log stands in and holds what the task printed; when it is
    # not, the read fails as one clear line.
    worker = detail.row
    source = LogSource.task(row.task_id, row.attempt, node_id=worker.node_id, pid=worker.worker_pid)
    if worker.node_id and worker.worker_pid:
        assert "about to explode" in logs.read(source)
    else:
        assert source.fallback is None
        try:
            text = logs.read(source)
        except RaytuiError as exc:
            assert "Could not find" in str(exc) and "\n" not in str(exc), exc
        else:
            assert "about to explode" in text


@pytest.mark.ray
def test_a_task_log_ray_cannot_find_falls_back_to_its_workers_log(
    workload: WorkloadClient, logs: LogsClient
) -> None:
    # A real worker whose PID Ray always knows: the detached actor's (a task's worker PID comes
    # from task events, which a busy cluster may drop).
    (actor,) = workload.actors(ActorFilter(class_name="WbGpuHolder", state="ALIVE")).rows
    assert actor.node_id and actor.pid
    missing = "ff" * 24  # a task ID Ray never ran
    with pytest.raises(RaytuiError) as refused:
        logs.read(LogSource.task(missing))  # no worker named: one clear line
    assert "\n" not in str(refused.value)
    text = logs.read(LogSource.task(missing, node_id=actor.node_id, pid=actor.pid))
    first, _, rest = text.partition("\n")
    assert first.startswith("[raytui] cannot open the log of task ffffffff")
    assert f"Showing the whole log of its worker instead (worker pid {actor.pid}" in first
    assert "holder ready" in rest


@pytest.mark.ray
def test_task_filters_are_applied_by_the_dashboard(workload: WorkloadClient) -> None:
    page = workload.tasks(TaskFilter(func_or_class_name="wb_quiet"), limit=1)
    assert len(page.rows) == 1 and page.rows[0].func_or_class_name == "wb_quiet"
    assert page.matched == 3 and page.more == 2  # the count the dashboard filtered, not total
    assert workload.tasks(TaskFilter(name="no_such_function_h11")).matched == 0
    summary = workload.task_summary()
    assert summary.group("wb_quiet").count("FINISHED") == 3


@pytest.mark.ray
def test_gpu_actor_is_listed_on_its_node_and_its_logs_open(
    workload: WorkloadClient, logs: LogsClient
) -> None:
    (actor,) = workload.actors(ActorFilter(class_name="WbGpuHolder", state="ALIVE")).rows
    assert actor.name == "wb-holder" and actor.pid and actor.node_id
    detail = workload.actor(actor.actor_id)
    assert dict(detail.required_resources)["GPU"] == 1.0 and detail.namespace == "wb"

    on_node = workload.node_workload(actor.node_id)
    assert actor.actor_id in {a.actor_id for a in on_node.actors.rows}
    worker = next(w for w in on_node.workers if w.pid == actor.pid)
    assert worker.node_id == actor.node_id and worker.alive

    text = logs.read(LogSource.actor(actor.actor_id))
    assert "holder ready" in text
    assert "bad bytes \ufffd\ufffd end" in text  # invalid UTF-8 kept, replaced
    assert "holder ready" in logs.read(LogSource.worker(actor.node_id, actor.pid))


@pytest.mark.ray
def test_a_nodes_raylet_log_lists_opens_and_follows(
    ray_cluster: RayTestCluster, logs: LogsClient
) -> None:
    node = ray_cluster.head.node_id
    listing = logs.node_logs(node)
    assert "raylet.out" in listing.files("raylet")
    assert any(f.startswith("dashboard_agent") for f in listing.files("agent"))
    assert any(f.startswith("worker-") for f in listing.all_files)
    assert len(logs.read(LogSource.node_file(node, "raylet.out"), tail=5).splitlines()) == 5
    cancel = threading.Event()
    gen = logs.follow(LogSource.node_file(node, "raylet.out"), cancel, tail=3, poll=0.05)
    assert next(gen)
    cancel.set()
    started = time.monotonic()
    list(gen)
    assert time.monotonic() - started < 2
    with pytest.raises(RaytuiError) as err:
        logs.read(LogSource.node_file(node, "no-such-file-h11.log"))
    assert "\n" not in str(err.value)


@pytest.mark.ray
def test_kill_actor_refused_readonly_then_dead(
    workload: WorkloadClient,
) -> None:
    (actor,) = workload.actors(ActorFilter(class_name="WbGpuHolder", state="ALIVE")).rows
    with pytest.raises(UsageError, match="--readonly"):
        workload.kill_actor(actor.actor_id, readonly=True)
    workload.kill_actor(actor.actor_id, python=PY)
    wait_for(lambda: workload.actor(actor.actor_id).row.dead, 30, "the actor DEAD")
