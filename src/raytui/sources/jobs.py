"""Ray jobs over the dashboard's HTTP address, through Ray's own `JobSubmissionClient`.

Works on a console attached by dashboard URL only (`--via`): no Ray driver in this process. Every
call is blocking (run it in a worker thread) and bounded; failures are one-line RaytuiErrors.
Submitting with a working directory zips and uploads it exactly as `ray job submit --working-dir`
does (the same client code).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from raytui.errors import RaytuiError, UsageError
from raytui.model.workbench import JobInfo, JobSubmission
from raytui.sources._ray_http import auth_headers, bounded, drain, translate
from raytui.sources.values import ms_to_s as _ms
from raytui.sources.values import num as _num
from raytui.sources.values import text as _str
from raytui.sources.values import whole as _int

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

__all__ = ["JobsClient", "job_info_from"]

NO_AGENT = "No available agent"
"""Ray's answer to a submit while the head's job agent is still starting (fresh clusters)."""


class JobsClient:
    """Blocking client for one cluster's jobs; call from a worker thread, never the UI loop."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        upload_timeout: float = 300.0,
        agent_wait: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.agent_wait = agent_wait
        self._headers = auth_headers(token)
        self._client: JobSubmissionClient | None = None
        self._lock = threading.Lock()

    def _sdk(self) -> JobSubmissionClient:
        """Ray's client, made on first use (its constructor checks the dashboard's version)."""
        with self._lock:
            if self._client is None:

                def make() -> JobSubmissionClient:
                    from ray.job_submission import JobSubmissionClient

                    return JobSubmissionClient(self.url, headers=dict(self._headers))

                self._client = bounded(self.url, "reach the job API", make, self.timeout)
            return self._client

    def _call(self, what: str, fn: Any, *args: Any, timeout: float | None = None) -> Any:
        sdk = self._sdk()
        return bounded(self.url, what, lambda: fn(sdk, *args), timeout or self.timeout)

    # -- public ------------------------------------------------------------------------------

    def submit(self, job: JobSubmission) -> str:
        """Submit; returns the submission ID. Raises UsageError when `job.validate()` fails."""
        problems = job.validate()
        if problems:
            field, message = next(iter(problems.items()))
            raise UsageError(f"{field.replace('_', ' ')}: {message}")
        kwargs: dict[str, Any] = {
            "entrypoint": job.entrypoint.strip(),
            "runtime_env": job.runtime_env() or None,
            "submission_id": job.submission_id.strip() or None,
            "entrypoint_num_gpus": job.num_gpus_value(),
            "entrypoint_num_cpus": job.num_cpus_value(),
            "entrypoint_resources": job.resources_dict() or None,
        }
        deadline = time.monotonic() + self.agent_wait
        while True:
            try:
                return str(
                    self._call(
                        "submit the job",
                        lambda sdk: sdk.submit_job(**kwargs),
                        timeout=self.upload_timeout,
                    )
                )
            except RaytuiError as exc:
                if NO_AGENT not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.5)

    def list(self) -> tuple[JobInfo, ...]:
        """Every job the cluster knows, newest first."""
        details = self._call("list jobs", lambda sdk: sdk.list_jobs())
        jobs = [job_info_from(_as_dict(d)) for d in details]
        jobs.sort(key=lambda j: -(j.start_time or 0.0))
        return tuple(jobs)

    def info(self, key: str) -> JobInfo:
        """One job by submission ID (or job ID)."""
        return job_info_from(_as_dict(self._call(f"read job {key}", _get_info, key)))

    def logs(self, key: str) -> str:
        """The job's whole log so far."""
        return str(self._call(f"read the log of job {key}", lambda sdk: sdk.get_job_logs(key)))

    def stop(self, key: str) -> bool:
        """Ask the job to stop; False when it had already ended."""
        return bool(self._call(f"stop job {key}", lambda sdk: sdk.stop_job(key)))

    def delete(self, key: str) -> bool:
        """Delete a finished job's record and log (Ray refuses a running one)."""
        return bool(self._call(f"delete job {key}", lambda sdk: sdk.delete_job(key)))

    def wait(self, key: str, timeout: float, poll: float = 0.25) -> JobInfo:
        """Poll until the job is in a terminal state; raises RaytuiError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.info(key)
            if info.terminal:
                return info
            if time.monotonic() >= deadline:
                raise RaytuiError(f"job {key} is still {info.status} after {timeout:g} s")
            time.sleep(poll)

    def follow(
        self, key: str, cancel: threading.Event | None = None, *, poll: float = 0.2
    ) -> Iterator[str]:
        """The job's log from its start, chunk by chunk, as it grows.

        Ends when the job ends (Ray closes the log's websocket then) or, within `poll` s, when
        `cancel` is set; closing the generator also ends it. Ray's tail is asyncio (aiohttp): it
        runs on a private event loop in a daemon thread, so this stays a plain blocking iterator.
        """
        self.info(key)  # unknown job or unreachable dashboard: a clear error now, bounded
        sdk = self._sdk()
        chunks: queue.Queue[tuple[str, Any]] = queue.Queue()
        loop = asyncio.new_event_loop()

        async def tail() -> None:
            try:
                async for chunk in sdk.tail_job_logs(key):
                    chunks.put(("data", chunk))
                chunks.put(("end", None))
            except asyncio.CancelledError:
                chunks.put(("end", None))
            except Exception as exc:
                chunks.put(("error", translate(self.url, f"follow the log of job {key}", exc)))

        task = loop.create_task(tail())

        def run() -> None:
            try:
                loop.run_until_complete(task)
            finally:
                loop.close()

        reader = threading.Thread(target=run, name="raytui-job-tail", daemon=True)
        reader.start()
        try:
            for value in drain(chunks, cancel, poll):
                if value:
                    yield str(value)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop already finished and closed
                loop.call_soon_threadsafe(task.cancel)
            reader.join(timeout=2.0)

    def close(self) -> None:
        with self._lock:
            self._client = None


def _get_info(sdk: JobSubmissionClient, key: str) -> Any:
    return sdk.get_job_info(key)


def _as_dict(details: Any) -> dict[str, Any]:
    """Ray's `JobDetails` (pydantic) or a plain dict, as a JSON-shaped dict."""
    if isinstance(details, dict):
        return details
    dump = getattr(details, "model_dump", None) or getattr(details, "dict", None)
    if dump is not None:
        with contextlib.suppress(Exception):
            return _d(json.loads(json.dumps(dump(), default=str)))
    return {k: getattr(details, k) for k in dir(details) if not k.startswith("_")}


def job_info_from(row: dict[str, Any]) -> JobInfo:
    """One job from `/api/jobs/` (or `JobDetails`) to a JobInfo; missing fields become None."""
    driver = _d(row.get("driver_info"))
    runtime_env = _d(row.get("runtime_env"))
    resources = row.get("entrypoint_resources")
    return JobInfo(
        job_id=_str(row.get("job_id")),
        submission_id=_str(row.get("submission_id")),
        status=_enum_name(row.get("status")) or "UNKNOWN",
        message=str(row.get("message") or ""),
        entrypoint=str(row.get("entrypoint") or ""),
        start_time=_ms(row.get("start_time")),
        end_time=_ms(row.get("end_time")),
        runtime_env=tuple(
            (str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str))
            for k, v in sorted(runtime_env.items())
        ),
        driver_node_id=_str(row.get("driver_node_id")) or _str(driver.get("node_id")),
        driver_ip=_str(driver.get("node_ip_address")),
        driver_pid=_int(driver.get("pid")),
        driver_exit_code=_int(row.get("driver_exit_code")),
        error_type=_str(row.get("error_type")),
        entrypoint_num_cpus=_num(row.get("entrypoint_num_cpus")),
        entrypoint_num_gpus=_num(row.get("entrypoint_num_gpus")),
        entrypoint_resources=tuple(
            sorted((str(k), float(v)) for k, v in resources.items() if _num(v) is not None)
        )
        if isinstance(resources, dict)
        else (),
        kind=_enum_name(row.get("type")) or "SUBMISSION",
    )


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    text = str(getattr(value, "value", value))
    return text.rsplit(".", 1)[-1] if text else None
