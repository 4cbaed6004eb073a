"""Two real daemons (separate processes) on 127.0.0.1: peering, an echo service through a
forward, 64 MB and 100 concurrent 1 MB connections, checksummed; half-close; refusals."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from raytui.model.peers import LinkState
from tests.proxy_support.daemons import (
    Daemon,
    echo_roundtrip,
    free_port,
    pair_up,
    sha,
    tcp_server,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.proxy


@pytest.fixture(scope="module")
def linked() -> Iterator[tuple[Daemon, Daemon, tuple[str, int]]]:
    """a forwards 127.0.0.1:PORT to b's `echo` service."""
    a, b = Daemon("a"), Daemon("b")
    try:
        a.start()
        b.start()
        pair_up(a, b)
        with tcp_server("echo") as echo:
            b.control.expose("echo", f"{echo[0]}:{echo[1]}")
            port = free_port()
            fwd = a.control.forward("b", "echo", f"127.0.0.1:{port}")
            assert fwd.bind == f"127.0.0.1:{port}"
            yield a, b, ("127.0.0.1", port)
    finally:
        a.cleanup()
        b.cleanup()


def test_peers_see_each_other_connected_with_rtt(linked: tuple[Daemon, Daemon, object]) -> None:
    a, b, _ = linked
    b_id = b.status().peer_id
    peer = wait_for(
        lambda: (p := a.status().peer(b_id)) and p.rtt_ms is not None and p,
        10,
        "an RTT sample",
    )
    assert peer.state == LinkState.CONNECTED
    assert peer.name == "b"
    assert 0 < peer.rtt_ms < 1000


def test_status_prints_pasteable_multiaddrs(linked: tuple[Daemon, Daemon, object]) -> None:
    a, _, _ = linked
    status = a.status()
    out = a.cli("proxy", "status")
    assert out.returncode == 0, out.stderr
    assert f"{a.listen}/p2p/{status.peer_id}" in out.stdout
    js = a.cli("proxy", "status", "--json")
    import json

    doc = json.loads(js.stdout)
    assert doc["peer_id"] == status.peer_id
    assert all(addr.endswith(f"/p2p/{status.peer_id}") for addr in doc["addrs"])
    assert doc["peers"][0]["state"] == "connected"


def test_64_mb_through_the_tunnel_intact(linked: tuple[Daemon, Daemon, tuple[str, int]]) -> None:
    a, _, fwd = linked
    payload = os.urandom(64 * 1024 * 1024)
    before = a.status().peers[0]
    back = echo_roundtrip(fwd, payload)
    assert len(back) == len(payload)
    assert sha(back) == sha(payload)
    after = a.status().peers[0]
    assert after.bytes_out - before.bytes_out >= len(payload)
    assert after.bytes_in - before.bytes_in >= len(payload)


def test_100_concurrent_1_mb_connections_intact(
    linked: tuple[Daemon, Daemon, tuple[str, int]],
) -> None:
    _, _, fwd = linked
    payloads = [os.urandom(1024 * 1024) for _ in range(100)]
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda p: echo_roundtrip(fwd, p, timeout=90), payloads))
    assert [sha(r) for r in results] == [sha(p) for p in payloads]


def test_half_close_propagates_both_ways(linked: tuple[Daemon, Daemon, tuple[str, int]]) -> None:
    # The echo server only answers its EOF after reading ours: the reply must still arrive
    # after we shut down our sending side, and then a clean EOF (b"") must follow.
    _, _, fwd = linked
    with socket.create_connection(fwd, timeout=20) as sock:
        sock.sendall(b"ping")
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while data := sock.recv(100):
            got += data
    assert got == b"ping"


def test_unknown_service_resets_the_local_connection(
    linked: tuple[Daemon, Daemon, tuple[str, int]],
) -> None:
    a, _, _ = linked
    fwd = a.control.forward("b", "no-such-service")
    host, port = fwd.bind.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            while sock.recv(100):
                pass
    wait_for(
        lambda: "no service named" in (a.status().peers[0].last_error or ""),
        10,
        "the refusal reason in the peer's last error",
    )


def test_yamux_tuning_is_a_default_the_user_can_override() -> None:
    from raytui.proxy.host import YAMUX_TUNING, tune_yamux

    env: dict[str, str] = {}
    tune_yamux(env)
    assert env == {"PY_YAMUX_RELEASE_ON_READ": "0"} == dict(YAMUX_TUNING)
    mine = {"PY_YAMUX_RELEASE_ON_READ": "1"}
    tune_yamux(mine)
    assert mine == {"PY_YAMUX_RELEASE_ON_READ": "1"}
