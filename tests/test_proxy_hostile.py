"""An allowed but hostile peer cannot stop the daemon: bad tunnel headers, unknown services,
stored targets that cannot be resolved, a token file that is not UTF-8, abrupt resets and 200
concurrent streams each cost at most that one stream. Afterwards the daemon still serves another
peer's tunnel byte-exact. Real daemons on loopback; the hostile peer is an in-process libp2p host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import multiaddr
import pytest
import trio
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr

from raytui.model.peers import TOKEN_PROTOCOL, TUNNEL_PROTOCOL
from raytui.proxy.host import build_host
from tests.proxy_support.daemons import (
    Daemon,
    echo_roundtrip,
    free_port,
    pair_up,
    sha,
    tcp_server,
)

pytestmark = pytest.mark.proxy

# Stored by hand in the victim's proxy.json: `expose` refuses each of these now, but a state file
# written before that (or edited) still holds them. Each crashed the daemon on first use.
BAD_STORED = {
    "dots": "db..lan:5432",  # an empty label: the resolver's IDNA step raises UnicodeError
    "long": "h" * 60_000 + ":80",
    "ctl": "ho\x00st:80",
    "noport": "garbage",
    "bigport": "127.0.0.1:99999",
}


@dataclass
class Setup:
    victim: Daemon
    good: Daemon
    forward: tuple[str, int]  # on good: a forward to the victim's echo service
    hostile_port: int
    hostile_keys: object


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    victim, good = Daemon("v"), Daemon("g")
    try:
        (victim.home / "config").mkdir(parents=True)
        token_file = victim.home / "auth_token"
        token_file.write_bytes(b"\xff\xfe not UTF-8 \x80\n")
        victim.env.pop("RAY_AUTH_TOKEN", None)
        victim.env["RAY_AUTH_TOKEN_PATH"] = str(token_file)
        state = {"version": 1, "services": BAD_STORED, "share_token": True}
        (victim.home / "config" / "proxy.json").write_text(json.dumps(state))
        victim.start()
        good.start()
        pair_up(victim, good)
        keys = create_new_key_pair()
        hostile_port = free_port()
        hostile_id = str(ID.from_pubkey(keys.public_key))
        # Allow-listed while nothing listens there yet: the add reports the failed dial.
        victim.control.add_peer(f"/ip4/127.0.0.1/tcp/{hostile_port}/p2p/{hostile_id}", "h")
        with tcp_server("echo") as echo:
            victim.control.expose("echo", f"{echo[0]}:{echo[1]}")
            port = free_port()
            good.control.forward(victim.label, "echo", f"127.0.0.1:{port}")
            yield Setup(victim, good, ("127.0.0.1", port), hostile_port, keys)
    finally:
        victim.cleanup()
        good.cleanup()


async def _read_all(stream: INetStream, limit: int = 1 << 20) -> tuple[bytes, str]:
    """Everything until the stream ends, and how it ended: 'eof' or the exception's name."""
    buf = b""
    try:
        while len(buf) < limit:
            data = await stream.read(65536)
            if not data:
                return buf, "eof"
            buf += data
    except StreamEOF:
        return buf, "eof"
    except Exception as exc:
        return buf, type(exc).__name__
    return buf, "limit"


async def _ask(host: IHost, peer: ID, protocol: str, send: bytes) -> tuple[bytes, str]:
    stream = await host.new_stream(peer, [TProtocol(protocol)])
    if send:
        await stream.write(send)
    with trio.fail_after(30):
        return await _read_all(stream)


async def _echo_stream(host: IHost, peer: ID, i: int, results: dict[int, str]) -> None:
    """One of the 200: a tunnel to `echo`; odd ones are reset halfway through."""
    payload = os.urandom(4096 + i)
    stream = await host.new_stream(peer, [TProtocol(TUNNEL_PROTOCOL)])
    try:
        await stream.write(b"echo\n" + payload[:2048])
        if i % 2:
            await trio.sleep(0.01 * (i % 7))
            await stream.reset()
            results[i] = "reset"
            return
        await stream.write(payload[2048:])
        await stream.close_write()  # type: ignore[attr-defined]
        back, how = await _read_all(stream)
        results[i] = (
            "ok" if back == b"+\n" + payload and how == "eof" else f"bad: {how} {back[:20]!r}"
        )
    except Exception as exc:
        results[i] = f"error: {type(exc).__name__}: {exc}"


async def _attack(setup: Setup) -> dict[str, object]:
    host = build_host(
        setup.hostile_keys,  # type: ignore[arg-type]
        [multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{setup.hostile_port}")],
        lambda _peer: True,
    )
    target = info_from_p2p_addr(multiaddr.Multiaddr(setup.victim.addr))
    out: dict[str, object] = {}
    async with host.run([multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{setup.hostile_port}")]):
        with trio.fail_after(20):
            await host.connect(target)
        peer = target.peer_id
        # Bad headers.
        out["too long"] = await _ask(host, peer, TUNNEL_PROTOCOL, b"x" * 5000)
        out["not utf-8"] = await _ask(host, peer, TUNNEL_PROTOCOL, b"\xff\xfe\x00\n")
        out["empty"] = await _ask(host, peer, TUNNEL_PROTOCOL, b"\n")
        out["unknown"] = await _ask(host, peer, TUNNEL_PROTOCOL, b"nope\n")
        for name in BAD_STORED:
            out[name] = await _ask(host, peer, TUNNEL_PROTOCOL, name.encode() + b"\n")
        out["token"] = await _ask(host, peer, TOKEN_PROTOCOL, b"")
        # Abrupt resets: before any byte, inside the header, right after it, mid-relay.
        for send in (b"", b"ec", b"echo\n", b"echo\n" + os.urandom(100_000)):
            stream = await host.new_stream(peer, [TProtocol(TUNNEL_PROTOCOL)])
            if send:
                await stream.write(send)
            await stream.reset()
        # A stream whose header never ends, then the connection is dropped under it.
        stream = await host.new_stream(peer, [TProtocol(TUNNEL_PROTOCOL)])
        await stream.write(b"ech")
        # 200 concurrent tunnel streams, half of them reset halfway.
        results: dict[int, str] = {}
        with trio.fail_after(180):
            async with trio.open_nursery() as nursery:
                for i in range(200):
                    nursery.start_soon(_echo_stream, host, peer, i, results)
        out["concurrent"] = results
        await host.disconnect(peer)
    return out


def test_hostile_peer_cannot_stop_the_daemon(setup: Setup) -> None:
    victim = setup.victim
    pid = victim.control.ping()["pid"]
    out = trio.run(_attack, setup)

    assert victim.proc is not None and victim.proc.poll() is None, victim.log_tail()
    assert victim.control.ping()["pid"] == pid

    def reply(key: str) -> bytes:
        data, _how = out[key]  # type: ignore[misc]
        assert isinstance(data, bytes)
        return data

    assert reply("too long") == b""  # reset: no status line
    assert reply("not utf-8").startswith(b"-no service named")
    assert reply("empty").startswith(b"-no service named ''")
    assert reply("unknown") == b"-no service named 'nope'\n"
    for name in BAD_STORED:
        line = reply(name)
        assert line.startswith(f"-service '{name}' is misconfigured here: bad ".encode()), (
            name,
            line,
        )
        assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert reply("token").startswith(b"-this head cannot hand on its Ray token:")
    assert b"not UTF-8" in reply("token")
    results = out["concurrent"]
    assert isinstance(results, dict)
    assert sorted(results) == list(range(200))
    bad = {i: r for i, r in results.items() if r not in ("ok", "reset")}
    # Seen twice in full-suite runs on a loaded 2-core machine (never alone): every even stream
    # got EOF with no status line. The daemon's log says what it did with them.
    assert not bad, (bad, victim.log_tail(80))
    assert sum(r == "ok" for r in results.values()) == 100

    # Another peer's tunnel through the same daemon is still byte-exact.
    payload = os.urandom(4 * 1024 * 1024)
    assert sha(echo_roundtrip(setup.forward, payload)) == sha(payload)
    # The stored settings were not rewritten away from what the user wrote.
    stored = json.loads((victim.home / "config" / "proxy.json").read_text())
    assert stored["services"]["dots"] == BAD_STORED["dots"]
    assert victim.proc.poll() is None
    # Each case above was refused with its reason, not caught as a handler failure.
    log = (victim.home / "daemon.log").read_text(errors="replace")
    assert "Traceback" not in log, victim.log_tail(60)
    assert "misconfigured here" in log and "not UTF-8" in log


# --- the guard itself: any handler's exception costs one stream ---------------------------------


async def _guard_scenario() -> tuple[bytes, str, bytes]:
    server = build_host(create_new_key_pair(), [], lambda _peer: True)
    client = build_host(create_new_key_pair(), [], lambda _peer: True)

    async def boom(stream: INetStream) -> None:
        await stream.read(1)
        raise RuntimeError("a handler bug")

    async def ok(stream: INetStream) -> None:
        data = await stream.read(100)
        await stream.write(b"ok:" + data)
        await stream.close()

    server.set_stream_handler(TProtocol("/test/boom/1"), boom)
    server.set_stream_handler(TProtocol("/test/ok/1"), ok)
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with server.run(listen), client.run(listen):
        addr = multiaddr.Multiaddr(f"{server.get_addrs()[0]}")
        info = info_from_p2p_addr(addr)
        with trio.fail_after(20):
            await client.connect(info)
            broken = await client.new_stream(info.peer_id, [TProtocol("/test/boom/1")])
            await broken.write(b"x")
            boom_data, boom_end = await _read_all(broken)
            after = await client.new_stream(info.peer_id, [TProtocol("/test/ok/1")])
            await after.write(b"still here")
            ok_data, _ = await _read_all(after)
    return boom_data, boom_end, ok_data


def test_a_failing_stream_handler_resets_its_stream_and_the_host_keeps_serving() -> None:
    boom_data, boom_end, ok_data = trio.run(_guard_scenario)
    assert boom_data == b""
    assert boom_end != "limit"
    assert ok_data == b"ok:still here"
