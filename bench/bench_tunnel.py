"""Tunnel benchmark on loopback: direct TCP vs `ssh -L` vs the raytui tunnel (two daemons).

Measures bulk throughput both ways, small-message round trip, new-connection time, and the
daemons' RSS and idle CPU. Prints a table with ratios to direct TCP. Not a test: run by hand,
    .venv/bin/python bench/bench_tunnel.py [--size-mb 256] [--rtt-count 2000] [--conns 200]
`ssh -L` is measured when /usr/sbin/sshd and ssh exist (an sshd is started on a free port with
throwaway keys under a temp dir; nothing global is changed). The tunnel is measured a second
time with py-libp2p's default Yamux window updates (`--no-baseline` skips it), so the effect of
raytui's tuning (`raytui.proxy.host.YAMUX_TUNING`) is read off the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.proxy_support.daemons import Daemon, free_port, pair_up, wait_for

from raytui.model.peers import LinkState

BLOCK = 256 * 1024
BASELINE = "tunnel, library default"  # window update per read (PY_YAMUX_RELEASE_ON_READ=1)


# --- the target server (own process, so it does not share the GIL with the client) ------------


def _serve_one(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        mode = conn.recv(1)
        if mode == b"U":  # upload: count until EOF, answer the count
            total = 0
            while data := conn.recv(BLOCK):
                total += len(data)
            conn.sendall(struct.pack("!Q", total))
        elif mode == b"D":  # download: send N bytes, then EOF
            need = struct.unpack("!Q", _recv_exact(conn, 8))[0]
            block = b"\0" * BLOCK
            while need > 0:
                n = min(need, BLOCK)
                conn.sendall(block[:n])
                need -= n
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)
        elif mode == b"E":  # echo
            while data := conn.recv(65536):
                conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = conn.recv(n - len(buf))
        if not data:
            raise EOFError
        buf += data
    return buf


def _server_main(port: int, ready: multiprocessing.synchronize.Event) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(512)
    ready.set()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


# --- measurements ----------------------------------------------------------------------------


def upload(addr: tuple[str, int], size: int) -> float:
    block = b"\1" * BLOCK
    with socket.create_connection(addr) as s:
        t0 = time.perf_counter()
        s.sendall(b"U")
        left = size
        while left > 0:
            n = min(left, BLOCK)
            s.sendall(block[:n])
            left -= n
        s.shutdown(socket.SHUT_WR)
        got = struct.unpack("!Q", _recv_exact(s, 8))[0]
        dt = time.perf_counter() - t0
    assert got == size, (got, size)
    return size / dt / 1e6


def download(addr: tuple[str, int], size: int) -> float:
    with socket.create_connection(addr) as s:
        t0 = time.perf_counter()
        s.sendall(b"D" + struct.pack("!Q", size))
        got = 0
        while data := s.recv(BLOCK):
            got += len(data)
        dt = time.perf_counter() - t0
    assert got == size, (got, size)
    return size / dt / 1e6


def rtt_ms(addr: tuple[str, int], count: int) -> float:
    with socket.create_connection(addr) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"E")
        samples = []
        msg = b"x" * 64
        for _ in range(count):
            t0 = time.perf_counter()
            s.sendall(msg)
            _recv_exact(s, len(msg))
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def connect_ms(addr: tuple[str, int], count: int) -> float:
    """Connect, one echo round trip (proves the far end is reached), close."""
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        with socket.create_connection(addr) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"Ex")
            _recv_exact(s, 1)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def best(f: Callable[[], float], runs: int, higher: bool = True) -> float:
    values = [f() for _ in range(runs)]
    return max(values) if higher else min(values)


def measure(addr: tuple[str, int], args: argparse.Namespace) -> dict[str, float]:
    size = args.size_mb * 1024 * 1024
    upload(addr, 4 * 1024 * 1024)  # warm-up
    return {
        "up": best(lambda: upload(addr, size), args.runs),
        "down": best(lambda: download(addr, size), args.runs),
        "rtt": rtt_ms(addr, args.rtt_count),
        "conn": connect_ms(addr, args.conns),
    }


# --- the three routes ----------------------------------------------------------------------------


@contextmanager
def ssh_forward(target_port: int) -> Iterator[tuple[str, int] | None]:
    if not (shutil.which("ssh") and Path("/usr/sbin/sshd").exists()):
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="rtssh", dir="/tmp"))
    sshd_port, local_port = free_port(), free_port()
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True
        )
    (tmp / "authorized_keys").write_text((tmp / "client.pub").read_text())
    os.chmod(tmp / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {sshd_port}\nListenAddress 127.0.0.1\nHostKey {tmp / 'host'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPasswordAuthentication no\n"
        f"PidFile {tmp / 'sshd.pid'}\nStrictModes no\nAllowTcpForwarding yes\n"
        "PermitRootLogin prohibit-password\nUsePAM no\n"
    )
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)])
    ssh = None
    try:
        wait_for(lambda: _connectable(("127.0.0.1", sshd_port)), 10, "sshd")
        ssh = subprocess.Popen(
            [
                "ssh", "-N", "-i", str(tmp / "client"), "-p", str(sshd_port),
                "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp / 'kh'}",
                "-o", "ExitOnForwardFailure=yes",
                "-L", f"127.0.0.1:{local_port}:127.0.0.1:{target_port}",
                f"{os.environ.get('USER', 'root')}@127.0.0.1",
            ]
        )  # fmt: skip
        wait_for(lambda: _connectable(("127.0.0.1", local_port)), 10, "ssh -L")
        yield "127.0.0.1", local_port
    finally:
        if ssh is not None:
            ssh.terminate()
            ssh.wait(5)
        sshd.terminate()
        sshd.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


def _connectable(addr: tuple[str, int]) -> bool:
    try:
        socket.create_connection(addr, timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def raytui_forward(
    target_port: int, env: dict[str, str] | None = None
) -> Iterator[tuple[tuple[str, int], list[Daemon]]]:
    a, b = Daemon("A"), Daemon("B")
    for daemon in (a, b):
        daemon.env.update(env or {})
    try:
        a.start()
        b.start()
        pair_up(a, b)
        b.control.expose("bench", f"127.0.0.1:{target_port}")
        port = free_port()
        a.control.forward("B", "bench", f"127.0.0.1:{port}")
        yield ("127.0.0.1", port), [a, b]
    finally:
        a.cleanup()
        b.cleanup()


def daemon_resources(daemons: list[Daemon], idle_s: float) -> tuple[float, float, float]:
    """Max RSS and USS (MB) now, and idle CPU % over `idle_s` (peers connected, pinging)."""
    procs = [psutil.Process(d.proc.pid) for d in daemons if d.proc is not None]
    rss = max(p.memory_info().rss for p in procs) / 1e6
    uss = max(p.memory_full_info().uss for p in procs) / 1e6
    before = [p.cpu_times() for p in procs]
    time.sleep(idle_s)
    after = [p.cpu_times() for p in procs]
    cpu = max(
        ((x.user + x.system) - (y.user + y.system)) / idle_s * 100
        for x, y in zip(after, before, strict=True)
    )
    return rss, uss, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rtt-count", type=int, default=2000)
    parser.add_argument("--conns", type=int, default=200)
    parser.add_argument("--idle-s", type=float, default=15.0)
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the tunnel with py-libp2p's default Yamux window updates",
    )
    args = parser.parse_args()

    target_port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_server_main, args=(target_port, ready), daemon=True)
    server.start()
    ready.wait(10)
    target = ("127.0.0.1", target_port)
    results: dict[str, dict[str, float]] = {}
    try:
        results["direct TCP"] = measure(target, args)
        with ssh_forward(target_port) as ssh_addr:
            if ssh_addr is not None:
                results["ssh -L"] = measure(ssh_addr, args)
        with raytui_forward(target_port) as (addr, daemons):
            results["raytui tunnel"] = measure(addr, args)
            b_id = daemons[1].status().peer_id
            peer = daemons[0].status().peer(b_id)
            assert peer is not None and peer.state == LinkState.CONNECTED
            rss, uss, cpu = daemon_resources(daemons, args.idle_s)
        if not args.no_baseline:  # what raytui.proxy.host.YAMUX_TUNING changes, same run
            with raytui_forward(target_port, {"PY_YAMUX_RELEASE_ON_READ": "1"}) as (addr, _):
                results[BASELINE] = measure(addr, args)
    finally:
        server.terminate()

    base = results["direct TCP"]
    print(f"loopback, {os.cpu_count()} CPUs, {args.size_mb} MiB per bulk run (best of {args.runs})")
    width = max(len(name) for name in results) + 2
    header = (
        f"{'route':<{width}}{'upload MB/s':>13}{'download MB/s':>15}{'RTT ms':>9}"
        f"{'added RTT ms':>14}{'new conn ms':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        print(
            f"{name:<{width}}{r['up']:>13.0f}{r['down']:>15.0f}{r['rtt']:>9.3f}"
            f"{r['rtt'] - base['rtt']:>14.3f}{r['conn']:>13.2f}"
        )
    print()
    print("ratios to direct TCP (throughput: fraction of direct; latency: multiple of direct)")
    for name, r in results.items():
        if name == "direct TCP":
            continue
        print(
            f"{name:<{width}} upload {r['up'] / base['up']:.2f}x"
            f"  download {r['down'] / base['down']:.2f}x"
            f"  RTT {r['rtt'] / base['rtt']:.1f}x  new conn {r['conn'] / base['conn']:.1f}x"
        )
    print()
    print(
        f"raytui daemon: RSS {rss:.0f} MB, USS {uss:.0f} MB (max of the two, after the bulk runs); "
        f"idle CPU {cpu:.2f}% (max of the two, over {args.idle_s:g} s, one peer, pinging)"
    )
    t = results["raytui tunnel"]
    if BASELINE in results:
        b = results[BASELINE]
        print(
            f"Yamux tuning vs py-libp2p's default: upload {t['up'] / b['up']:.2f}x, download "
            f"{t['down'] / b['down']:.2f}x, RTT {t['rtt'] / b['rtt']:.2f}x, "
            f"new conn {t['conn'] / b['conn']:.2f}x"
        )
    checks = [
        ("bulk >= 100 MB/s", min(t["up"], t["down"]) >= 100),
        ("added RTT <= 1.5 ms", t["rtt"] - base["rtt"] <= 1.5),
        ("new connection <= 10 ms", t["conn"] <= 10),
        ("daemon RSS <= 80 MB", rss <= 80),
        ("idle CPU <= 1%", cpu <= 1),
    ]
    print("targets: " + ", ".join(f"{n}: {'met' if ok else 'MISSED'}" for n, ok in checks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
