"""`DashboardClient` against a real HTTP server speaking the dashboard's wire format.

The server answers with the captured Ray 2.60 bodies (tests/fixtures/ray-dashboard/), a summary
of 300 nodes built from them (big enough to be decoded node by node), or a failure; the snapshot
must be the one `json.loads` of the same bodies gives, and each failure one clear error.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from raytui.errors import AuthenticationFailed, ClusterUnreachable
from raytui.sources import dashboard_decode
from raytui.sources.dashboard_client import DashboardClient
from raytui.sources.dashboard_parse import DashboardResponses, build_snapshot
from tests.test_dashboard_decode import _big_summary
from tests.test_dashboard_parse import FIXTURES


class Dashboard:
    """Serves `routes` (path -> body bytes, or an int status); `chunked` sends no length."""

    def __init__(self, routes: dict[str, bytes | int], chunked: bool = False) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                owner.seen.append((self.path, self.headers.get("Authorization")))
                answer = owner.routes.get(path, 404)
                if path == "/old":
                    self.send_response(307)
                    self.send_header("Location", "/api/version")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if isinstance(answer, int):
                    self.send_response(answer)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(answer), 50_000):
                        part = answer[i : i + 50_000]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _routes(summary: bytes) -> dict[str, bytes | int]:
    return {
        "/nodes": summary,
        "/api/v0/nodes": _fixture("api_v0_nodes.json"),
        "/api/jobs/": _fixture("api_jobs.json"),
        "/api/version": _fixture("api_version.json"),
        "/api/v0/tasks": _fixture("api_v0_nodes.json"),  # a state API answer: total 1
        "/api/v0/actors": _fixture("api_v0_nodes.json"),
    }


@pytest.fixture
def big_summary() -> bytes:
    body = json.dumps(_big_summary(100)).encode()
    assert len(body) > dashboard_decode.SMALL
    return body


@pytest.fixture(params=[False, True], ids=["content-length", "chunked"])
def dashboard(request: pytest.FixtureRequest, big_summary: bytes) -> Iterator[Dashboard]:
    dash = Dashboard(_routes(big_summary), chunked=request.param)
    yield dash
    dash.close()


def _expected(routes: dict[str, bytes | int], url: str) -> Any:
    def doc(path: str) -> Any:
        body = routes[path]
        assert isinstance(body, bytes)
        return json.loads(body)

    return build_snapshot(
        url,
        DashboardResponses(
            summary=doc("/nodes"),
            nodes=doc("/api/v0/nodes"),
            jobs=doc("/api/jobs/"),
            version=doc("/api/version"),
            running_tasks=doc("/api/v0/tasks"),
            actors=doc("/api/v0/actors"),
            task_counts=dict.fromkeys(
                ("RUNNING", "PENDING_NODE_ASSIGNMENT", "PENDING_ARGS_AVAIL"), 1
            )
            | {"SUBMITTED_TO_WORKER": 1, "FAILED": 1},
        ),
        taken_at=0.0,
    )


def test_snapshot_over_http_is_the_one_json_loads_gives(dashboard: Dashboard) -> None:
    with DashboardClient(dashboard.url, token="tok") as client:
        snap = client.fetch_snapshot()
        again = client.fetch_snapshot()  # keep-alive connections are reused cleanly
    expected = _expected(dashboard.routes, dashboard.url)
    assert replace(snap, taken_at=0.0) == expected
    assert replace(again, taken_at=0.0) == expected
    assert len(snap.nodes) == 301 and snap.ray_version == "2.60.0"  # 300 + the GCS's own
    assert all(auth == "Bearer tok" for _path, auth in dashboard.seen)
    assert any("state" in path and "RUNNING" in path for path, _ in dashboard.seen)


def test_redirects_are_followed(dashboard: Dashboard) -> None:
    with DashboardClient(dashboard.url) as client:
        assert client.get_json("/old") == json.loads(_fixture("api_version.json"))


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (401, AuthenticationFailed, ["needs an auth token", "RAY_AUTH_TOKEN"]),
        (403, AuthenticationFailed, ["rejected the auth token", "HTTP 403"]),
        (500, ClusterUnreachable, ["answered HTTP 500 for /nodes"]),
    ],
)
def test_http_errors_are_one_clear_error(
    big_summary: bytes, status: int, error: type[Exception], words: list[str]
) -> None:
    dash = Dashboard({**_routes(big_summary), "/nodes": status})
    try:
        with DashboardClient(dash.url) as client, pytest.raises(error) as caught:
            client.fetch_snapshot()
    finally:
        dash.close()
    text = str(caught.value)
    assert "\n" not in text and dash.url in text
    for word in words:
        assert word in text


def test_not_json_is_one_clear_error(big_summary: bytes) -> None:
    dash = Dashboard({**_routes(big_summary), "/nodes": b"<html>" + b"x" * 400_000})
    try:
        with DashboardClient(dash.url) as client, pytest.raises(ClusterUnreachable) as caught:
            client.fetch_snapshot()
    finally:
        dash.close()
    assert "did not answer JSON" in str(caught.value)


def test_closed_port_is_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    client = DashboardClient(f"http://127.0.0.1:{port}")
    with client, pytest.raises(ClusterUnreachable) as caught:
        client.fetch_snapshot()
    assert str(caught.value) == (
        f"cannot reach the Ray dashboard at http://127.0.0.1:{port}: connection refused"
    )


def test_silent_server_is_no_answer_within_the_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # accepts (the kernel does), never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = DashboardClient(url, timeout=0.5)
        with client, pytest.raises(ClusterUnreachable) as caught:
            client.ray_version()
    assert str(caught.value) == f"cannot reach the Ray dashboard at {url}: no answer within 0.5 s"
