"""The Ray dashboard's HTTP API: the requests of one poll, made concurrently over one client.

One snapshot costs a handful of small requests, made concurrently over one keep-alive client:

- `GET /nodes?view=summary` — per node: hostname, IP, CPU %, host memory, every GPU (read by Ray's
  agent with NVML on that node), the node's Ray workers (`raylet.coreWorkersStats`), and the
  logical resources in use (`nodeLogicalResources`). Its node *state* lags (a killed node can stay
  ALIVE there), so state comes from:
- `GET /api/v0/nodes?detail=true` — the GCS's node table: ALIVE/DEAD, `state_message`,
  `end_time_ms`.
- `GET /api/jobs/` — jobs with status, entrypoint, start and end times.
- `GET /api/v0/tasks` filtered server-side by state (one request per state in `TASK_STATES`) and
  `GET /api/v0/actors` filtered to ALIVE. Never the unfiltered task list: the dashboard fetches and
  sorts every task first (seconds at 10,000 tasks). Even a filtered count costs time proportional
  to the matching tasks (FINISHED at 10,000 tasks: ~3 s), so FINISHED is not counted.
- `GET /api/version` — once per client.

The summary (~20 KB a node) is read into a growing buffer chunk by chunk and decoded node by node
(`dashboard_decode`); the answers become a snapshot in `dashboard_parse.build_snapshot`.

HTTP is urllib3's pool, imported when the first client is made: the TUI makes it in the connect
worker, while its first frame is drawn. (httpx was ~100 ms to import here: httpcore imports trio
when it is installed, and httpx its command-line tool's dependencies.)
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from raytui.errors import AuthenticationFailed, ClusterUnreachable, RaytuiError, describe
from raytui.model.cluster import ClusterSnapshot
from raytui.sources.dashboard_decode import decode_summary
from raytui.sources.dashboard_parse import (
    DashboardResponses,
    build_snapshot,
    ray_version,
    result_count,
)
from raytui.sources.machine import local_addresses

if TYPE_CHECKING:
    import urllib3

__all__ = [
    "TASK_STATES",
    "DashboardClient",
    "token_hint",
]

TASK_STATES: tuple[str, ...] = (
    "RUNNING",
    "PENDING_NODE_ASSIGNMENT",
    "PENDING_ARGS_AVAIL",
    "SUBMITTED_TO_WORKER",
    "FAILED",
)
"""Task states counted per snapshot, each with one server-side filtered query."""

RUNNING_TASKS_LIMIT = 1000
"""Running tasks listed (for labelling GPU processes with the task they run)."""

ACTORS_LIMIT = 10000
"""Alive actors listed (for labelling GPU processes with the actor's class)."""

NODES_LIMIT = 10000
"""The state API's default limit is 100 entries: ask for the server's maximum."""


def token_hint() -> str:
    """Where raytui (like Ray) looks for the auth token, for error messages."""
    return (
        "set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to a file holding it, "
        "or put it in ~/.ray/auth_token (on the head: `ray get-auth-token`)"
    )


class DashboardClient:
    """Blocking client for one dashboard; call from a worker thread, never from the UI loop.

    Thread-safe for one caller at a time per method; reusable after a failure (a later
    `fetch_snapshot` retries from scratch), so the TUI can poll it with backoff.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 5.0,
        *,
        task_states: tuple[str, ...] = TASK_STATES,
    ) -> None:
        import urllib3

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.task_states = task_states
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # No retries (a failed poll is retried by the poller, with backoff); redirects followed.
        self._http = urllib3.PoolManager(
            num_pools=2,
            maxsize=16,
            headers=headers,
            timeout=urllib3.Timeout(connect=min(timeout, 3.0), read=timeout),
            retries=urllib3.Retry(connect=0, read=0, status=0, other=0, redirect=5),
        )
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._version: Any = None
        self._own_addresses: frozenset[str] | None = None

    # -- public ------------------------------------------------------------------------------

    def fetch_snapshot(self) -> ClusterSnapshot:
        """One snapshot. Raises ClusterUnreachable or AuthenticationFailed."""
        taken_at = time.time()
        pool = self._executor()
        required = {
            "summary": pool.submit(
                self.get_json, "/nodes", {"view": "summary"}, decode=decode_summary
            ),
            "nodes": pool.submit(
                self.get_json, "/api/v0/nodes", {"detail": "true", "limit": str(NODES_LIMIT)}
            ),
        }
        optional: dict[str, Future[Any]] = {
            "jobs": pool.submit(self.get_json, "/api/jobs/"),
            "running_tasks": pool.submit(
                self.get_json, "/api/v0/tasks", _state_filter("RUNNING", RUNNING_TASKS_LIMIT)
            ),
            "actors": pool.submit(
                self.get_json, "/api/v0/actors", _state_filter("ALIVE", ACTORS_LIMIT)
            ),
        }
        if self._version is None:
            optional["version"] = pool.submit(self.get_json, "/api/version")
        counts: dict[str, Future[Any]] = {
            state: pool.submit(self.get_json, "/api/v0/tasks", _state_filter(state, 1))
            for state in self.task_states
            if state != "RUNNING"
        }
        # Wait for everything before raising, so no request outlives this call.
        results = {k: _outcome(f) for k, f in {**required, **optional}.items()}
        count_results = {k: _outcome(f) for k, f in counts.items()}
        for key in required:
            value, error = results[key]
            if error is not None:
                raise error
        for _value, error in (*results.values(), *count_results.values()):
            if isinstance(error, AuthenticationFailed):
                raise error
        ok = {k: v for k, (v, e) in results.items() if e is None}
        if "version" in ok:
            self._version = ok["version"]
        task_counts: dict[str, int] = {}
        running = ok.get("running_tasks")
        if "RUNNING" in self.task_states and running is not None:
            n = result_count(running)
            if n is not None:
                task_counts["RUNNING"] = n
        for state, (value, error) in count_results.items():
            n = result_count(value) if error is None else None
            if n is not None:
                task_counts[state] = n
        try:
            return build_snapshot(
                self.url,
                DashboardResponses(
                    summary=ok["summary"],
                    nodes=ok["nodes"],
                    jobs=ok.get("jobs"),
                    version=self._version,
                    running_tasks=running,
                    actors=ok.get("actors"),
                    task_counts=task_counts,
                ),
                taken_at=taken_at,
                own_driver=(os.getpid(), self._addresses()),
            )
        finally:
            _release_summary(ok["summary"])

    def _addresses(self) -> frozenset[str]:
        """This machine's addresses, read once: where this process's own Ray driver runs."""
        if self._own_addresses is None:
            self._own_addresses = local_addresses()
        return self._own_addresses

    def ray_version(self) -> str | None:
        """The cluster's Ray version (one request the first time). Raises like fetch_snapshot."""
        if self._version is None:
            self._version = self.get_json("/api/version")
        return ray_version(self._version)

    def get_json(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        decode: Callable[[bytes | bytearray], Any] | None = None,
    ) -> Any:
        """GET one endpoint and decode it. Raises ClusterUnreachable or AuthenticationFailed."""
        from urllib3.exceptions import HTTPError, MaxRetryError

        where = f"{self.url}{path}"
        try:
            reply = self._http.request("GET", where, fields=params, preload_content=False)
            try:
                self._check_status(reply.status, path)
                body = _read_body(reply)
            finally:
                reply.release_conn()
        except MaxRetryError as exc:  # what failed, when no retry was left (none are made)
            raise self._unreachable(exc.reason or exc) from None
        except (HTTPError, OSError) as exc:
            raise self._unreachable(exc) from None
        try:
            return (decode or _loads)(body)
        except ValueError:
            raise ClusterUnreachable(
                f"{where} did not answer JSON: is this a Ray dashboard?"
            ) from None

    def _unreachable(self, exc: BaseException) -> ClusterUnreachable:
        from urllib3.exceptions import NewConnectionError
        from urllib3.exceptions import TimeoutError as HTTPTimeout

        # NewConnectionError is a subclass of urllib3's TimeoutError, but not a timeout.
        if isinstance(exc, HTTPTimeout) and not isinstance(exc, NewConnectionError):
            why = f"no answer within {self.timeout:g} s"
        else:
            cause = exc.__cause__ if isinstance(exc, NewConnectionError) else None
            if isinstance(cause, ConnectionRefusedError):
                why = "connection refused"
            else:  # urllib3's own text starts with the connection object's repr
                why = describe(cause or exc, "line")
        return ClusterUnreachable(f"cannot reach the Ray dashboard at {self.url}: {why}")

    def _check_status(self, status: int, path: str) -> None:
        if status in (401, 403):
            what = "rejected the auth token" if status == 403 else "needs an auth token"
            raise AuthenticationFailed(
                f"the Ray dashboard at {self.url} {what} (HTTP {status}): {token_hint()}"
            )
        if status >= 400:
            raise ClusterUnreachable(
                f"the Ray dashboard at {self.url} answered HTTP {status} for {path}"
            )

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._http.clear()

    def __enter__(self) -> DashboardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=4 + len(self.task_states), thread_name_prefix="raytui-dash"
                )
            return self._pool


def _state_filter(state: str, limit: int) -> dict[str, str]:
    return {
        "filter_keys": "state",
        "filter_predicates": "=",
        "filter_values": state,
        "limit": str(limit),
        "detail": "false",
    }


def _outcome(future: Future[Any]) -> tuple[Any, RaytuiError | None]:
    try:
        return future.result(), None
    except RaytuiError as exc:
        return None, exc


def _read_body(reply: urllib3.BaseHTTPResponse) -> bytearray:
    """The whole body, appended chunk by chunk.

    Reading it in one call joins the chunks in one call: for an 80 MB summary that is one
    40-90 ms copy (and page faults) with the GIL held. Appending to a bytearray grows it in place
    (realloc), so no single step copies more than a chunk.
    """
    body = bytearray()
    for chunk in reply.stream(256 * 1024):
        body += chunk
    return body


def _release_summary(doc: Any) -> None:
    """Free a decoded summary node by node: dropping 20 MB of objects at once holds the GIL."""
    data = doc.get("data") if isinstance(doc, dict) else None
    items = data.get("summary") if isinstance(data, dict) else None
    if isinstance(items, list):
        while items:
            items.pop()


def _loads(content: bytes | bytearray) -> Any:
    return json.loads(content)
