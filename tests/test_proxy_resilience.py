"""Kill the serving daemon mid-transfer: the client sees a reset, not an EOF. Restart it with the
same identity: the link comes back without touching the other side; status shows down, then
connected."""

from __future__ import annotations

import socket
import time

import pytest

from raytui.model.peers import LinkState
from tests.proxy_support.daemons import Daemon, echo_roundtrip, pair_up, tcp_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.proxy


def test_kill_resets_client_then_restart_reconnects() -> None:
    a, b = Daemon("a"), Daemon("b")
    try:
        a.start()
        b.start()
        pair_up(a, b)
        b_id = b.status().peer_id
        with tcp_server("source") as source, tcp_server("echo") as echo:
            b.control.expose("source", f"{source[0]}:{source[1]}")
            b.control.expose("echo", f"{echo[0]}:{echo[1]}")
            src_host, src_port = a.control.forward("b", "source").bind.rsplit(":", 1)
            echo_host, echo_port = a.control.forward("b", "echo").bind.rsplit(":", 1)
            echo_addr = (echo_host, int(echo_port))

            with socket.create_connection((src_host, int(src_port)), timeout=30) as sock:
                received = 0
                while received < 4 * 1024 * 1024:  # mid-transfer: the source never ends
                    data = sock.recv(262144)
                    assert data, "the source ended before the kill"
                    received += len(data)
                b.kill()
                outcome = "eof"
                try:
                    while sock.recv(262144):
                        pass
                except ConnectionResetError:
                    outcome = "reset"
                assert outcome == "reset", "the client saw a clean EOF after the link died"

            down = wait_for(
                lambda: (p := a.status().peer(b_id)) and p.state == LinkState.DOWN and p,
                15,
                "a to report b down",
            )
            assert down.last_error

            t0 = time.monotonic()
            b.start()  # same RAYTUI_HOME: same key, same allow-list, same services
            assert b.status().peer_id == b_id
            up = wait_for(
                lambda: (p := a.status().peer(b_id)) and p.state == LinkState.CONNECTED and p,
                20,
                "a to report b connected again",
            )
            assert up.reconnects >= 1
            assert time.monotonic() - t0 < 20
            payload = b"x" * 100_000
            assert echo_roundtrip(echo_addr, payload) == payload
    finally:
        a.cleanup()
        b.cleanup()
