"""Ray logs over the dashboard's HTTP address: `/api/v0/logs` (list), `/logs/file`, `/logs/stream`.

These are the endpoints behind `ray.util.state.list_logs`/`get_log`; those functions resolve a
bootstrap address (refusing `http://` ones), take the token only from the environment and wait
without a timeout, so raytui speaks the same endpoints with the console's own headers and bounded
waits. The dashboard proxies to the node's agent, so nodes behind NAT and `--via` consoles work.

Bytes are decoded as UTF-8 with replacement (invalid bytes become U+FFFD, never an error), with
an incremental decoder so a character split across two chunks survives.
"""

from __future__ import annotations

import codecs
import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from raytui.errors import AuthenticationFailed, ClusterUnreachable, RaytuiError
from raytui.model.workbench import LogKind, LogSource, NodeLogs
from raytui.sources._ray_http import drain
from raytui.sources.dashboard_client import DashboardClient, token_hint

__all__ = ["LogsClient"]


class LogsClient:
    """Blocking client; call from a worker thread, never from the UI loop."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._dash = DashboardClient(self.url, token, timeout)
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            trust_env=False,
        )

    def close(self) -> None:
        self._dash.close()
        self._http.close()

    def __enter__(self) -> LogsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def node_logs(self, node_id: str, glob: str = "*") -> NodeLogs:
        """A node's log files by group (raylet, agent, worker_out, worker_err, core_worker, …)."""
        doc = self._dash.get_json(
            "/api/v0/logs",
            {"node_id": node_id, "glob": glob, "timeout": str(max(1, int(self.timeout)))},
        )
        if isinstance(doc, dict) and doc.get("result") is False:
            raise RaytuiError(f"cannot list the logs of node {node_id[:8]}: {_msg(doc)}")
        data = doc.get("data") if isinstance(doc, dict) else None
        result = data.get("result") if isinstance(data, dict) else None
        groups: list[tuple[str, tuple[str, ...]]] = []
        for group, names in (result or {}).items() if isinstance(result, dict) else ():
            if isinstance(names, list):
                files = sorted(str(n) for n in names if isinstance(n, str) and not n.endswith("/"))
                groups.append((str(group), tuple(files)))
        groups.sort()
        return NodeLogs(node_id=node_id, groups=tuple(groups))

    def read(self, source: LogSource, tail: int = -1) -> str:
        """The log's content (the last `tail` lines; -1: all of it)."""
        return "".join(self._chunks(source, follow=False, tail=tail, cancel=None))

    def follow(
        self,
        source: LogSource,
        cancel: threading.Event | None = None,
        *,
        tail: int = 1000,
        poll: float = 0.2,
    ) -> Iterator[str]:
        """The last `tail` lines (-1: all), then new text as it is written, until `cancel` is set
        (noticed within `poll` s) or the generator is closed. A dead worker's log ends on its own
        only when the dashboard closes the stream; the caller decides when to stop."""
        return self._chunks(source, follow=True, tail=tail, cancel=cancel, poll=poll)

    # -- internals ---------------------------------------------------------------------------

    def _chunks(
        self,
        source: LogSource,
        *,
        follow: bool,
        tail: int,
        cancel: threading.Event | None,
        poll: float = 0.2,
    ) -> Iterator[str]:
        """The source's text; when the dashboard refuses it before any text came and the source
        names a fallback (a task's worker), a one-line note and then the fallback's text."""
        started = False
        try:
            for text in self._source_chunks(source, follow, tail, cancel, poll):
                started = True
                yield text
        except (AuthenticationFailed, ClusterUnreachable):
            raise
        except RaytuiError as exc:
            fallback = source.fallback
            if started or fallback is None:
                raise
            yield (
                f"[raytui] {exc}. Showing the whole log of its worker instead ({fallback.title}).\n"
            )
            yield from self._source_chunks(fallback, follow, tail, cancel, poll)

    def _source_chunks(
        self,
        source: LogSource,
        follow: bool,
        tail: int,
        cancel: threading.Event | None,
        poll: float,
    ) -> Iterator[str]:
        params = log_params(source, tail, self.timeout)
        if follow:
            params["interval"] = "0.5"
        path = "/api/v0/logs/stream" if follow else "/api/v0/logs/file"
        what = f"open the log of {source.title}"
        # A stream's read may wait for new lines for ever: read in a daemon thread, hand chunks
        # over through a queue, so cancel and close are noticed within `poll` s.
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 3.0), read=None)
        chunks: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=256)
        stop = threading.Event()
        holder: list[httpx.Response] = []

        def reader() -> None:
            try:
                with self._http.stream(
                    "GET", path, params=params, timeout=timeout if follow else self._http.timeout
                ) as reply:
                    holder.append(reply)
                    if reply.status_code != 200:
                        reply.read()
                        chunks.put(("error", self._http_error(reply, what)))
                        return
                    for raw in reply.iter_raw():
                        if stop.is_set():
                            return
                        chunks.put(("data", raw))
                chunks.put(("end", None))
            except httpx.TimeoutException:
                chunks.put(("error", self._unreachable(what, "no answer in time")))
            except (httpx.HTTPError, OSError) as exc:
                if not stop.is_set():
                    chunks.put(("error", self._unreachable(what, _first(exc))))

        thread = threading.Thread(target=reader, name="raytui-log-reader", daemon=True)
        thread.start()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            for raw in drain(chunks, cancel, poll):
                text = decoder.decode(raw)
                if text:
                    yield text
            if cancel is None or not cancel.is_set():  # the end: what the decoder still holds
                rest = decoder.decode(b"", final=True)
                if rest:
                    yield rest
        finally:
            stop.set()
            for reply in holder:
                with contextlib.suppress(Exception):  # may race the reader thread
                    reply.close()
            while not chunks.empty():  # unblock a reader waiting on a full queue
                chunks.get_nowait()

    def _http_error(self, reply: httpx.Response, what: str) -> RaytuiError:
        if reply.status_code in (401, 403):
            return AuthenticationFailed(
                f"cannot {what}: the Ray dashboard at {self.url} refused the auth token: "
                f"{token_hint()}"
            )
        body = reply.content.decode("utf-8", "replace").strip()
        last = [ln.strip() for ln in body.splitlines() if ln.strip()]
        why = last[-1][:300] if last else f"HTTP {reply.status_code}"
        return RaytuiError(f"cannot {what}: {why}")

    def _unreachable(self, what: str, why: str) -> ClusterUnreachable:
        return ClusterUnreachable(f"cannot {what}: the Ray dashboard at {self.url}: {why}")


def log_params(source: LogSource, tail: int, timeout: float) -> dict[str, str]:
    """The query of `/api/v0/logs/{file,stream}` for one source (Ray's `GetLogOptions`)."""
    params: dict[str, str] = {"lines": str(tail), "timeout": str(max(1, int(timeout)))}
    if source.kind is LogKind.JOB:
        params["submission_id"] = source.job_id or ""
    elif source.kind is LogKind.TASK:
        params.update(
            task_id=source.task_id or "", attempt_number=str(source.attempt), suffix=source.stream
        )
    elif source.kind is LogKind.ACTOR:
        params.update(actor_id=source.actor_id or "", suffix=source.stream)
    elif source.kind is LogKind.WORKER:
        params.update(node_id=source.node_id or "", pid=str(source.pid), suffix=source.stream)
    else:
        params.update(node_id=source.node_id or "", filename=source.filename or "")
    return params


def _msg(doc: dict[str, Any]) -> str:
    return _first_text(str(doc.get("msg") or "")) or "unknown error"


def _first_text(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("Traceback"):
            return line[:300]
    return ""


def _first(exc: BaseException) -> str:
    return _first_text(str(exc)) or type(exc).__name__
