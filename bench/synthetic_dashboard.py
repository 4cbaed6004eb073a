"""A stand-in Ray dashboard serving a synthetic cluster of N nodes x G GPUs over real HTTP.

Responses are shaped like the real dashboard's (tests/fixtures/ray-dashboard/, captured from
Ray 2.60): the node summary reuses the captured node record, with per-node ids, addresses,
GPUs and workers filled in. A few frames with different utilisation are pre-rendered and served
in turn, so every poll sees changed numbers without the server burning CPU.

Run standalone: `python bench/synthetic_dashboard.py --nodes 4096 --port 8265` (rendering 4,096
nodes takes ~10 s and ~1 GB; the four summary frames are ~83 MB each).
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ray-dashboard"
FRAMES = 4


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _node_id(i: int) -> str:
    return f"{i:08x}" + "ab" * 24


def render(nodes: int, gpus: int, workers: int = 8) -> dict[str, list[bytes]]:
    """Pre-rendered bodies per path; the summary has FRAMES variants."""
    summary_doc = _load("nodes_view_summary.json")
    template = summary_doc["data"]["summary"][0]
    worker_template = template["raylet"]["coreWorkersStats"][0]
    v0_doc = _load("api_v0_nodes.json")
    v0_template = v0_doc["data"]["result"]["result"][0]

    v0_nodes = []
    per_frame: list[list[dict[str, Any]]] = [[] for _ in range(FRAMES)]
    logical: dict[str, str] = {}
    for i in range(nodes):
        node_id = _node_id(i)
        ip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        v0 = dict(v0_template)
        v0.update(node_id=node_id, node_ip=ip, node_name=ip, is_head_node=i == 0)
        v0["resources_total"] = {"CPU": 64.0, "GPU": float(gpus), "memory": 5e11}
        v0_nodes.append(v0)
        logical[node_id] = f"{i % 64}.0/64.0 CPU\n{i % (gpus + 1)}.0/{gpus}.0 GPU\n0B/465GiB memory"
        pids = [100000 + i * 100 + w for w in range(workers)]
        stats = []
        for w, pid in enumerate(pids):
            ws = dict(worker_template)
            ws.update(pid=pid, workerId=f"{i:08x}{w:04x}" + "cd" * 22, ipAddress=ip)
            stats.append(ws)
        for frame in range(FRAMES):
            node = dict(template)  # what is not replaced below is shared
            node.update(hostname=f"gpu-node-{i:04d}", ip=ip, cpu=float((i * 7 + frame * 13) % 100))
            node["raylet"] = dict(template["raylet"], nodeId=node_id, nodeManagerAddress=ip)
            node["raylet"]["coreWorkersStats"] = stats
            node["raylet"]["resourcesTotal"] = v0["resources_total"]
            node["raylet"]["isHeadNode"] = i == 0
            node["gpus"] = [
                {
                    "index": g,
                    "name": "NVIDIA H100 80GB HBM3",
                    "uuid": f"GPU-{i:06x}-{g:02x}-0000-0000-000000000000",
                    "utilizationGpu": (i * 31 + g * 17 + frame * 23) % 101,
                    "memoryUsed": 1024 * ((i + g + frame) % 80),
                    "memoryTotal": 81559,
                    "powerMw": 70000 + 1000 * ((i + g * 3 + frame) % 600),
                    "temperatureC": 30 + (i + g + frame) % 50,
                    "processesPids": [
                        {"pid": pids[g % workers], "gpuMemoryUsage": 512 * (1 + frame)}
                    ],
                }
                for g in range(gpus)
            ]
            per_frame[frame].append(node)

    def wrap(data: Any) -> bytes:
        return json.dumps(data).encode()

    summaries = [
        wrap(
            {
                "result": True,
                "msg": "Node summary fetched.",
                "data": {"summary": frame_nodes, "nodeLogicalResources": logical},
            }
        )
        for frame_nodes in per_frame
    ]
    v0_doc["data"]["result"].update(
        total=nodes, num_after_truncation=nodes, num_filtered=nodes, result=v0_nodes
    )
    empty_list = {
        "result": True,
        "msg": "",
        "data": {
            "result": {
                "total": 0,
                "num_after_truncation": 0,
                "num_filtered": 0,
                "result": [],
                "partial_failure_warning": "",
                "warnings": None,
            }
        },
    }
    return {
        "/nodes": summaries,
        "/api/v0/nodes": [wrap(v0_doc)],
        "/api/v0/tasks": [wrap(empty_list)],
        "/api/v0/actors": [wrap(empty_list)],
        "/api/v0/tasks/summarize": [wrap(_load("api_v0_tasks_summarize.json"))],
        "/api/jobs/": [wrap(_load("api_jobs.json"))],
        "/api/version": [wrap(_load("api_version.json"))],
        "/api/cluster_status": [wrap(_load("api_cluster_status.json"))],
        "/api/authentication_mode": [b'{"authentication_mode": "disabled"}'],
    }


class SyntheticDashboard:
    """Serves `render(...)` bodies on 127.0.0.1 in a background thread."""

    def __init__(self, nodes: int, gpus: int = 8, port: int = 0) -> None:
        bodies = render(nodes, gpus)
        counters: dict[str, int] = {}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: with Nagle's algorithm on, each keep-alive answer
            # waits ~40 ms for the client's delayed ACK. Ray's dashboard (aiohttp) sets
            # TCP_NODELAY too.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                variants = bodies.get(path) or bodies.get(path.rstrip("/") + "/")
                if variants is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with lock:
                    n = counters.get(path, 0)
                    counters[path] = n + 1
                body = variants[n % len(variants)]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.summary_bytes = len(bodies["/nodes"][0])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> SyntheticDashboard:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with SyntheticDashboard(args.nodes, args.gpus, args.port) as dash:
        print(dash.url, f"summary {dash.summary_bytes / 1e6:.1f} MB", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
