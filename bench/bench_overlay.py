"""Overlay benchmark in network namespaces: Ray across the overlay vs the same two nodes on a direct
link, with raytui's plain tunnel as the reference path for bulk bytes (issue 9, "Performance").

Two phases in one run, each in its own namespaces (tests/support/netns.py, removed on exit):

1. Direct link: two public namespaces on one bridge. Plain TCP between them, then a Ray head and a
   worker started with the same `ray start` command line `raytui join` uses (fixed ports, token
   auth), on their plain addresses: no daemon, no overlay.
2. Overlay: a head (public) and a box behind a real NAT, each running `raytui proxy run --overlay`,
   allow-listed to each other. Bulk TCP from the box, alternating between raytui's tunnel
   (`raytui proxy forward` on the box to a service the head exposes) and the overlay (a plain TCP
   connection from the box to the head's overlay address on port 10500, a Ray worker-range port
   the overlay carries); both end at the same sink/source server in the head's namespace. Then
   `raytui proxy expose --ray-head --share-token` and `raytui join --head` on the head,
   `raytui join head` on the box (timed from the command to the node ALIVE in the head's GCS),
   the same Ray driver as in phase 1, and the daemons' CPU with the joined node idle.

Ray figures come from one driver on the head with every task pinned to the box: a 200 MiB object
box -> head (made by a task on the box; the driver times `ray.wait(fetch_local=True)`) and
head -> box (`ray.put` on the head; a task on the box times its own `ray.wait(fetch_local=True)`
of the ref), so both are the object transfer alone, without (de)serialization or task dispatch;
then 500 sequential tiny tasks (`ray.get(f.remote())`, one at a time). Each figure is taken
`--runs` times, interleaved; the table shows the WORST run (lowest MB/s, highest latency); every
run's value is printed below it. Not a test: run by hand, as root, on a quiet machine:

    .venv/bin/python bench/bench_overlay.py [--runs 3] [--size-mb 200] [--tiny 500] [--idle-s 30]

Targets (issue 9): object each way >= 0.5x the tunnel's bulk MB/s in the same direction; overlay
bulk >= 0.8x the tunnel's; tiny-task median <= 2x direct; join (command to ALIVE) <= 15 s; each
daemon's CPU with a joined idle node <= 2% of one core (utime+stime from /proc/PID/stat).

The machine may be shared: the benchmark joins a cpuacct cgroup of its own (every child follows:
daemons, Ray, clients) and prints, per phase, its share of the machine's CPU and everyone else's.
`--daemon-env NAME=VALUE` passes environment to both daemons (A/B experiments, e.g. PY_YAMUX_*);
`--json FILE` keeps every figure. Results and method: bench/RESULTS-overlay.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_tunnel import (  # noqa: E402 - the same server protocol and measurements
    _serve_one,
    connect_ms,
    download,
    rtt_ms,
    upload,
)

BULK_PORT = 10500  # in Ray's worker range (model.overlay.WORKER_PORTS): the overlay carries it
TUNNEL_PORT = 15500  # the box's local end of `raytui proxy forward`
DASHBOARD_PORT = 8265
MIB = 1024 * 1024


# --- helpers that run inside a namespace (this file, re-run with a leading `_mode`) ------------


def serve_main(port: int) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(512)
    print("listening", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


def client_main(host: str, port: int, mode: str, amount: int) -> None:
    """One measurement from inside the namespace (bench_tunnel.py's, against its server
    protocol); prints one number: MB/s for up/down, the median ms for rtt/conn."""
    measure = {"up": upload, "down": download, "rtt": rtt_ms, "conn": connect_ms}.get(mode)
    if measure is None:
        raise SystemExit(f"unknown client mode {mode!r}")
    print(measure((host, port), amount))


def _node_rows(doc: Any) -> list[dict[str, Any]]:
    """The rows of `/api/v0/nodes` (the list of dicts with a node_id), wherever it is nested."""
    if isinstance(doc, list) and all(isinstance(r, dict) and "node_id" in r for r in doc):
        return doc
    if isinstance(doc, dict):
        for value in doc.values():
            rows = _node_rows(value)
            if rows:
                return rows
    return []


def alive_main(url: str, token: str, timeout: float) -> None:
    """Poll the head's GCS node table (dashboard HTTP, 0.1 s); print `ready` once it answers,
    then `ALIVE <unix time> <node id>` for the first node ALIVE that was not there at first."""
    request = urllib.request.Request(
        f"{url}/api/v0/nodes?detail=true&limit=10000",
        headers={"Authorization": f"Bearer {token}"},
    )

    def alive() -> set[str] | None:
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                rows = _node_rows(json.load(answer))
        except (OSError, ValueError):
            return None
        return {str(r["node_id"]) for r in rows if r.get("state") == "ALIVE"}

    deadline = time.monotonic() + timeout
    before = None
    while before is None:
        if time.monotonic() > deadline:
            raise SystemExit("the head's dashboard never answered")
        before = alive()
        if before is None:
            time.sleep(0.2)
    print("ready", flush=True)
    while time.monotonic() < deadline:
        now = alive()
        new = (now or set()) - before
        if new:
            print(f"ALIVE {time.time():.3f} {sorted(new)[0]}", flush=True)
            return
        time.sleep(0.1)
    raise SystemExit("no new node became ALIVE in time")


DRIVER = r"""
import json, statistics, sys, time
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

args = json.loads(sys.argv[1])
ray.init(address=args["address"], log_to_driver=False)
box = NodeAffinitySchedulingStrategy(args["box_node"], soft=False)

@ray.remote(num_cpus=1)
def make(n):
    return b"\x07" * n

@ray.remote(num_cpus=1)
def pull(refs):
    t0 = time.perf_counter()
    ready, _ = ray.wait(refs, fetch_local=True, timeout=600)
    dt = time.perf_counter() - t0
    assert ready
    return dt, len(ray.get(refs[0])), ray.get_runtime_context().get_node_id()

@ray.remote(num_cpus=1)
def tiny():
    return ray.get_runtime_context().get_node_id()

def box_to_head(n):
    ref = make.options(scheduling_strategy=box).remote(n)
    ray.wait([ref], fetch_local=False, timeout=600)  # made on the box, not yet here
    t0 = time.perf_counter()
    ready, _ = ray.wait([ref], fetch_local=True, timeout=600)
    dt = time.perf_counter() - t0
    assert ready and len(ray.get(ref)) == n
    return n / dt / 1e6

def head_to_box(n):
    ref = ray.put(b"\x03" * n)
    dt, got, where = ray.get(pull.options(scheduling_strategy=box).remote([ref]))
    assert got == n and where == args["box_node"], (got, where)
    return n / dt / 1e6

def tiny_run(count):
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        where = ray.get(tiny.options(scheduling_strategy=box).remote())
        samples.append((time.perf_counter() - t0) * 1000)
    assert where == args["box_node"], where
    return statistics.median(samples), statistics.quantiles(samples, n=10)[8]

# Warm-up: a worker on the box, connections in place, small objects both ways.
tiny_run(20)
box_to_head(1 << 20)
head_to_box(1 << 20)
out = {"to_head": [], "to_box": [], "tiny_median": [], "tiny_p90": []}
for _ in range(args["runs"]):
    out["to_head"].append(box_to_head(args["size"]))
    out["to_box"].append(head_to_box(args["size"]))
    median, p90 = tiny_run(args["tiny"])
    out["tiny_median"].append(median)
    out["tiny_p90"].append(p90)
ray.shutdown()
print(json.dumps(out))
"""


# --- the benchmark -----------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def _cpu_totals() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]]
    return sum(fields), fields[3] + fields[4]  # all, idle + iowait


@dataclass
class Interval:
    label: str
    seconds: float
    load1: float  # 1-min load average at its end
    busy: float  # % of all cores, every process on the machine
    ours: float | None  # % of all cores, this benchmark and everything it started


class Meter:
    """The machine's CPU between marks: all of it (/proc/stat), this benchmark's share (a cpuacct
    cgroup that holds this process, so every child joins it: daemons, Ray, clients, even in the
    namespaces) and, by difference, everyone else's (the machine is shared)."""

    def __init__(self) -> None:
        self.group: Path | None = None
        self.intervals: list[Interval] = []
        self._last: tuple[float, int, int, int | None] | None = None

    def __enter__(self) -> Meter:
        group = CPUACCT / f"rtbench-{os.getpid()}"
        try:
            group.mkdir()
            (group / "cgroup.procs").write_text(str(os.getpid()))
            self.group = group
        except OSError:  # no cgroup v1 cpuacct here: the others' share is not reported
            with contextlib.suppress(OSError):
                group.rmdir()
        self._last = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.group is None:
            return
        with contextlib.suppress(OSError):
            (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(50):  # empty once the namespaces' processes are gone
            try:
                self.group.rmdir()
                return
            except OSError:
                time.sleep(0.1)

    def _sample(self) -> tuple[float, int, int, int | None]:
        total, idle = _cpu_totals()
        ours = None
        if self.group is not None:
            with contextlib.suppress(OSError, ValueError):
                ours = int((self.group / "cpuacct.usage").read_text())
        return time.monotonic(), total, idle, ours

    def mark(self, label: str) -> Interval:
        """Close the interval since the last mark, naming it `label`."""
        assert self._last is not None
        now = self._sample()
        t0, total0, idle0, ours0 = self._last
        t1, total1, idle1, ours1 = now
        self._last = now
        seconds = t1 - t0
        busy = 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))
        ours = None
        if ours0 is not None and ours1 is not None:
            ours = (ours1 - ours0) / 1e9 / (seconds * (os.cpu_count() or 1)) * 100
        interval = Interval(label, seconds, os.getloadavg()[0], busy, ours)
        self.intervals.append(interval)
        others = "?" if ours is None else f"{busy - ours:.0f}%"
        log(
            f"{label}: {seconds:.0f} s, machine {busy:.0f}% busy, others {others}, "
            f"load {interval.load1:.2f}"
        )
        return interval


@dataclass
class Results:
    """Every figure of the run; lists hold one value per run (worst taken when printing)."""

    bulk: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # route -> up/down
    rtt: dict[str, float] = field(default_factory=dict)  # route -> ms (median of echoes)
    conn: dict[str, float] = field(default_factory=dict)  # route -> ms per new connection
    ray: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # cluster -> figures
    join_s: dict[str, float] = field(default_factory=dict)
    join_cmd_s: dict[str, float] = field(default_factory=dict)
    head_join_s: float = 0.0
    bulk_cpu: dict[str, dict[str, list[dict[str, float]]]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # daemon -> % of one core, joined idle
    cpu_no_ray: dict[str, float] = field(default_factory=dict)  # the same before any Ray node
    cpu_driver: dict[str, float] = field(default_factory=dict)  # during the Ray driver
    idle_bytes_s: float = 0.0  # carried bytes/s (both ways) with the joined node idle
    carried: dict[str, Any] = field(default_factory=dict)
    meter: Meter = field(default_factory=Meter)


def bench_argv(*args: object) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *[str(a) for a in args]]


def start_server(host: Any, port: int) -> subprocess.Popen[str]:
    proc = host.popen(bench_argv("_serve", port), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "listening":
        raise RuntimeError(f"bulk server in {host.ns} did not start: {line!r}")
    return proc


def client(host: Any, address: str, port: int, mode: str, amount: int) -> float:
    done = host.run(bench_argv("_client", address, port, mode, amount), timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"client {mode} to {address}:{port} failed: {done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def measure_bulk(
    results: Results,
    box: Any,
    routes: dict[str, tuple[str, int]],
    args: argparse.Namespace,
    pids: dict[str, int] | None = None,
) -> None:
    """Bulk both ways over each route, the routes alternating run by run; then RTT and
    new-connection time once per route. With `pids`, also each daemon's CPU per transfer (its
    CPU seconds / the transfer's duration: % of one core while the bytes moved)."""
    size = args.size_mb * MIB
    for name, (address, port) in routes.items():
        client(box, address, port, "up", 4 * MIB)  # warm-up
        results.bulk[name] = {"up": [], "down": []}
        results.bulk_cpu[name] = {"up": [], "down": []}
    for run in range(args.runs):
        for name, (address, port) in routes.items():
            for direction in ("up", "down"):
                before = {d: _cpu_seconds(pid) for d, pid in (pids or {}).items()}
                rate = client(box, address, port, direction, size)
                busy = {
                    d: (_cpu_seconds(pid) - before[d]) / (size / rate / 1e6) * 100
                    for d, pid in (pids or {}).items()
                }
                results.bulk[name][direction].append(rate)
                results.bulk_cpu[name][direction].append(busy)
                cpu = ", ".join(f"{d} {v:.0f}%" for d, v in busy.items())
                suffix = f" (daemon CPU {cpu})" if cpu else ""
                log(f"bulk {name} run {run + 1}: {direction} {rate:.0f} MB/s{suffix}")
    for name, (address, port) in routes.items():
        results.rtt[name] = client(box, address, port, "rtt", args.rtt_count)
        results.conn[name] = client(box, address, port, "conn", args.conns)
        log(f"{name}: RTT {results.rtt[name]:.3f} ms, new conn {results.conn[name]:.2f} ms")


def run_driver(
    host: Any, env: dict[str, str], address: str, box_node: str, args: argparse.Namespace
) -> dict[str, list[float]]:
    payload = json.dumps(
        {
            "address": address,
            "box_node": box_node,
            "size": args.size_mb * MIB,
            "runs": args.runs,
            "tiny": args.tiny,
        }
    )
    done = host.run([sys.executable, "-c", DRIVER, payload], env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"Ray driver failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    out: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


class AlivePoller:
    """`_alive` in the head's namespace: the time a new node shows ALIVE in the GCS."""

    def __init__(self, host: Any, address: str, token: str, timeout: float = 180) -> None:
        url = f"http://{address}:{DASHBOARD_PORT}"
        self.proc = host.popen(
            bench_argv("_alive", url, token, timeout), stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"head dashboard poller did not start: {line!r}")

    def wait(self) -> tuple[float, str]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        self.proc.wait(10)
        if len(line) != 3 or line[0] != "ALIVE":
            raise RuntimeError(f"no node became ALIVE: {line!r}")
        return float(line[1]), line[2]


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def daemon_cpu(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """% of one core each process used over `seconds` (its own threads, not its children)."""
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    return {name: (_cpu_seconds(pid) - before[name]) / dt * 100 for name, pid in pids.items()}


def ray_env(plan: Any) -> dict[str, str]:
    """The environment `raytui join` gives its node (token auth on), minus raytui's own."""
    env = plan.env()
    for var in ("RAYTUI_RAY_TEMP_DIR", "RAY_AUTH_TOKEN_PATH"):
        env.pop(var, None)
    return env


def start_ray_node(host: Any, plan: Any, tmp: Path) -> None:
    """`ray start --block` as `raytui join` runs it (raytui.proxy.ray_node.NodePlan), in
    `host`'s namespace, on its plain address, with its own temp dir; output to tmp/NAME.log."""
    cmd = plan.command()
    cmd[cmd.index("--temp-dir") + 1] = str(tmp / host.name)
    with open(tmp / f"{host.name}.log", "ab") as out:
        host.popen(cmd, env=ray_env(plan), stdout=out, stderr=subprocess.STDOUT)


# --- phase 1: direct link ------------------------------------------------------------------------


def phase_direct(results: Results, args: argparse.Namespace) -> None:
    from tests.support.netns import Topology

    from raytui.proxy.ray_node import NodePlan

    token = secrets.token_hex(32)
    tmp = Path(tempfile.mkdtemp(prefix="rtbench", dir="/tmp"))
    try:
        with Topology() as topo:
            head, box = topo.public("dhead"), topo.public("dbox")
            log(f"direct link: head {head.address}, box {box.address}")
            server = start_server(head, BULK_PORT)
            measure_bulk(results, box, {"direct TCP": (head.address, BULK_PORT)}, args)
            server.kill()
            server.wait()

            gcs = f"{head.address}:6379"
            head_plan = NodePlan("head", head.address, gcs, None, token, 0, 1)
            box_plan = NodePlan("worker", box.address, gcs, None, token, 0, 2)
            t0 = time.time()
            start_ray_node(head, head_plan, tmp)
            _wait(
                lambda: b"Ray runtime started" in (tmp / "dhead.log").read_bytes(),
                180,
                "the direct head to start",
            )
            poller = AlivePoller(head, head.address, token)
            log(f"direct head up in {time.time() - t0:.1f} s")
            t0 = time.time()
            start_ray_node(box, box_plan, tmp)
            alive_at, box_node = poller.wait()
            results.join_s["direct link"] = alive_at - t0
            log(f"direct box ALIVE {alive_at - t0:.1f} s after `ray start`")
            log("direct link: Ray driver")
            results.ray["direct link"] = run_driver(head, ray_env(head_plan), gcs, box_node, args)
            log(f"direct link: {results.ray['direct link']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- phase 2: the overlay and the tunnel ---------------------------------------------------------


def phase_overlay(results: Results, args: argparse.Namespace) -> None:
    from tests.support.netns import Topology
    from tests.support.overlay_world import NsDaemon, allow_each_other, wait_route

    daemons: list[NsDaemon] = []
    try:
        with Topology() as topo:
            head = NsDaemon(topo.public("head"))
            box = NsDaemon(topo.behind_nat("box"))
            daemons += [head, box]
            for d in daemons:
                d.env.update(kv.split("=", 1) for kv in args.daemon_env)
                d.start("--overlay")
            allow_each_other(head, box)
            head_ip = head.overlay_address
            wait_route(box, head_ip)
            log(f"overlay: head {head.host.address} ({head_ip}), box {box.host.address} behind NAT")
            pids = {}
            for d in daemons:
                assert d.proc is not None  # `ip netns exec` execs: this is the daemon itself
                cmdline = Path(f"/proc/{d.proc.pid}/cmdline").read_bytes()
                assert b"raytui" in cmdline and b"proxy" in cmdline, cmdline
                pids[d.label] = d.proc.pid
            if args.idle_s > 0:
                time.sleep(args.settle_s)
                results.cpu_no_ray = daemon_cpu(pids, args.idle_s)
                log(f"daemon CPU, overlay up, no Ray node: {results.cpu_no_ray}")

            server = start_server(head.host, BULK_PORT)
            done = head.cli("proxy", "expose", "bench", f"127.0.0.1:{BULK_PORT}")
            assert done.returncode == 0, done.stderr
            done = box.cli(
                "proxy", "forward", "head", "bench", "--bind", f"127.0.0.1:{TUNNEL_PORT}"
            )
            assert done.returncode == 0, done.stderr
            _wait(lambda: box.host.dial("127.0.0.1", TUNNEL_PORT) == "connected", 30, "forward")
            routes = {
                "raytui tunnel": ("127.0.0.1", TUNNEL_PORT),
                "overlay": (head_ip, BULK_PORT),
            }
            measure_bulk(results, box.host, routes, args, pids)
            server.kill()
            server.wait()
            results.meter.mark("overlay: daemons, idle, bulk TCP")

            results.carried["before join"] = box.status().overlay.carried
            done = head.cli("proxy", "expose", "--ray-head", "--share-token")
            assert done.returncode == 0, done.stderr
            t0 = time.time()
            done = head.cli("join", "--head", "--cpus", "1", "--gpus", "0")
            assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{head.node_log_tail()}"
            results.head_join_s = time.time() - t0
            token = head.token()
            poller = AlivePoller(head.host, head_ip, token)
            log(f"head node up in {results.head_join_s:.1f} s; joining the box")
            t0 = time.time()
            done = box.cli("join", "head", "--cpus", "2", "--gpus", "0")
            results.join_cmd_s["overlay"] = time.time() - t0
            assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{box.node_log_tail()}"
            alive_at, box_node = poller.wait()
            results.join_s["overlay"] = alive_at - t0
            joined = box.join_status()
            assert joined is not None and joined.node_id == box_node, (joined, box_node)
            log(
                f"box ALIVE {alive_at - t0:.1f} s after `raytui join head` "
                f"(the command returned after {results.join_cmd_s['overlay']:.1f} s)"
            )

            log("overlay: Ray driver")
            results.carried["after join"] = box.status().overlay.carried
            before = {d: _cpu_seconds(pid) for d, pid in pids.items()}
            t_driver = time.monotonic()
            results.ray["overlay"] = run_driver(
                head.host, head.ray_env(token), f"{head_ip}:6379", box_node, args
            )
            t_driver = time.monotonic() - t_driver
            results.cpu_driver = {
                d: (_cpu_seconds(pid) - before[d]) / t_driver * 100 for d, pid in pids.items()
            }
            results.carried["after the driver"] = box.status().overlay.carried
            log(f"overlay: {results.ray['overlay']}; daemon CPU {results.cpu_driver}")
            results.meter.mark("overlay: Ray (join, driver)")

            time.sleep(args.settle_s)  # the driver's connections close, workers go idle
            head_id = head.peer_id
            link = box.status().peer(head_id)
            assert link is not None
            t0 = time.monotonic()
            results.cpu = daemon_cpu(pids, args.idle_s)
            after = box.status().peer(head_id)
            assert after is not None
            moved = after.bytes_in + after.bytes_out - link.bytes_in - link.bytes_out
            results.idle_bytes_s = moved / (time.monotonic() - t0)
            overlay = box.status().overlay
            results.carried.update(idle_active=overlay.active, refused=overlay.refused)
            log(
                f"daemon CPU, joined idle node: {results.cpu}; carried "
                f"{results.idle_bytes_s / 1000:.1f} kB/s; overlay {results.carried}"
            )
    finally:
        for d in daemons:  # processes died with the namespaces; only their files are left
            shutil.rmtree(d.home, ignore_errors=True)


# --- the table -----------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(results: Results, args: argparse.Namespace) -> list[tuple[str, bool]]:
    worst_min = min
    worst_max = max
    b, r = results.bulk, results.ray
    tunnel_up, tunnel_down = (
        worst_min(b["raytui tunnel"]["up"]),
        worst_min(b["raytui tunnel"]["down"]),
    )
    rows: list[tuple[str, str, str, str, str, str]] = []
    checks: list[tuple[str, bool]] = []

    def row(figure: str, direct: str, tunnel: str, overlay: str, target: str, ok: bool | None):
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        rows.append((figure, direct, tunnel, overlay, target, verdict))
        if ok is not None:
            checks.append((f"{figure}: {target}", ok))

    for direction, label, tunnel in (
        ("up", "box -> head", tunnel_up),
        ("down", "head -> box", tunnel_down),
    ):
        o = worst_min(b["overlay"][direction])
        row(
            f"bulk TCP {label}, MB/s",
            _fmt(worst_min(b["direct TCP"][direction])),
            _fmt(tunnel),
            _fmt(o),
            f">= 0.8x tunnel: {o / tunnel:.2f}x",
            o >= 0.8 * tunnel,
        )
    for key, label, tunnel in (
        ("to_head", "box -> head", tunnel_up),
        ("to_box", "head -> box", tunnel_down),
    ):
        o = worst_min(r["overlay"][key])
        row(
            f"{args.size_mb} MiB object {label}, MB/s",
            _fmt(worst_min(r["direct link"][key])),
            "-",
            _fmt(o),
            f">= 0.5x tunnel ({tunnel:.0f}): {o / tunnel:.2f}x",
            o >= 0.5 * tunnel,
        )
    d_med, o_med = (
        worst_max(r["direct link"]["tiny_median"]),
        worst_max(r["overlay"]["tiny_median"]),
    )
    row(
        f"{args.tiny} tiny tasks, median ms",
        _fmt(d_med, 2),
        "-",
        _fmt(o_med, 2),
        f"<= 2x direct: {o_med / d_med:.2f}x",
        o_med <= 2 * d_med,
    )
    row(
        f"{args.tiny} tiny tasks, p90 ms",
        _fmt(worst_max(r["direct link"]["tiny_p90"]), 2),
        "-",
        _fmt(worst_max(r["overlay"]["tiny_p90"]), 2),
        "(none)",
        None,
    )
    row(
        "TCP round trip, 64 B echo, ms",
        _fmt(results.rtt["direct TCP"], 3),
        _fmt(results.rtt["raytui tunnel"], 3),
        _fmt(results.rtt["overlay"], 3),
        "(none)",
        None,
    )
    row(
        "new TCP connection + echo, ms",
        _fmt(results.conn["direct TCP"], 2),
        _fmt(results.conn["raytui tunnel"], 2),
        _fmt(results.conn["overlay"], 2),
        "(none)",
        None,
    )
    join = results.join_s["overlay"]
    row(
        "join: command to node ALIVE, s",
        _fmt(results.join_s["direct link"], 1),
        "-",
        _fmt(join, 1),
        "<= 15 s",
        join <= 15,
    )
    cpu = max(results.cpu.values())
    row(
        f"daemon CPU, joined idle node, % core ({args.idle_s:g} s)",
        "-",
        "-",
        " / ".join(f"{name} {v:.2f}" for name, v in results.cpu.items()),
        "<= 2% each",
        cpu <= 2,
    )
    if results.cpu_no_ray:
        row(
            "  the same, overlay up, no Ray node",
            "-",
            "-",
            " / ".join(f"{name} {v:.2f}" for name, v in results.cpu_no_ray.items()),
            "(none)",
            None,
        )

    header = ("figure", "direct link", "raytui tunnel", "overlay", "target", "result")
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    right = {1, 2, 3}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print()
    print(
        f"{os.cpu_count()} CPUs; worst of {args.runs} runs for bulk ({args.size_mb} MiB), objects "
        f"({args.size_mb} MiB) and tiny tasks ({args.tiny}); join and idle CPU measured once"
    )
    print("machine CPU, % of all cores (this benchmark / everyone else), 1-min load at the end:")
    for i in results.meter.intervals:
        ours = "?" if i.ours is None else f"{i.ours:.0f}%"
        others = "?" if i.ours is None else f"{i.busy - i.ours:.0f}%"
        print(f"  {i.label} ({i.seconds:.0f} s): {ours} / {others}, load {i.load1:.2f}")
    print()
    print(line(header))
    print("-" * len(line(header)))
    for cells in rows:
        print(line(cells))
    print()
    print("every run (MB/s; tiny tasks ms):")
    for route, dirs in b.items():
        print(f"  bulk {route}: up {_runs(dirs['up'])}; down {_runs(dirs['down'])}")
    for cluster, figures in r.items():
        print(
            f"  Ray {cluster}: box->head {_runs(figures['to_head'])}; head->box "
            f"{_runs(figures['to_box'])}; tiny median {_runs(figures['tiny_median'], 2)}; "
            f"p90 {_runs(figures['tiny_p90'], 2)}"
        )
    print(
        f"  join: `raytui join head` returned after {results.join_cmd_s['overlay']:.1f} s; "
        f"`raytui join --head` took {results.head_join_s:.1f} s"
    )
    for route, dirs in results.bulk_cpu.items():
        for direction, samples in dirs.items():
            if samples and samples[0]:
                cpu_runs = "; ".join(
                    ", ".join(f"{d} {v:.0f}" for d, v in sample.items()) for sample in samples
                )
                print(f"  daemon CPU % of a core during bulk {route} {direction}: {cpu_runs}")
    per_mb = {  # both daemons' CPU ms per MB moved, median over runs and directions
        route: statistics.median(
            sum(sample.values()) * 10 / rate
            for direction, samples in dirs.items()
            for sample, rate in zip(samples, b[route][direction], strict=True)
        )
        for route, dirs in results.bulk_cpu.items()
        if any(sample for samples in dirs.values() for sample in samples)
    }
    if per_mb:
        costs = ", ".join(f"{route} {ms:.1f}" for route, ms in per_mb.items())
        print(f"  daemons' CPU per MB moved (both daemons, median), ms: {costs}")
    driver_cpu = ", ".join(f"{d} {v:.0f}%" for d, v in results.cpu_driver.items())
    print(f"  daemon CPU over the whole overlay Ray driver run: {driver_cpu}")
    print(
        f"  with the joined node idle the overlay carried {results.idle_bytes_s / 1000:.1f} kB/s; "
        f"overlay connections: {json.dumps(results.carried)}"
    )
    return checks


def _jsonable(o: Any) -> Any:
    return o.intervals if isinstance(o, Meter) else o.__dict__


def _runs(values: list[float], digits: int = 0) -> str:
    return ", ".join(_fmt(v, digits) for v in values)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        mode, rest = sys.argv[1], sys.argv[2:]
        if mode == "_serve":
            serve_main(int(rest[0]))
        elif mode == "_client":
            client_main(rest[0], int(rest[1]), rest[2], int(rest[3]))
        elif mode == "_alive":
            alive_main(rest[0], rest[1], float(rest[2]))
        else:
            raise SystemExit(f"unknown mode {mode}")
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--tiny", type=int, default=500)
    parser.add_argument("--rtt-count", type=int, default=1000)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--settle-s", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument(
        "--daemon-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for both daemons, for experiments (e.g. PY_YAMUX_* knobs)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: network namespaces, veth pairs, iptables")

    results = Results()
    with results.meter:
        phase_direct(results, args)
        results.meter.mark("direct link: bulk TCP and Ray")
        phase_overlay(results, args)
        results.meter.mark("overlay: idle window, clean-up")
    checks = report(results, args)
    print()
    print("targets: " + ", ".join(f"{n}: {'met' if ok else 'MISSED'}" for n, ok in checks))
    if args.json:
        args.json.write_text(json.dumps(results.__dict__, indent=2, default=_jsonable))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
