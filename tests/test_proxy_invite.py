"""Invites between real daemons on loopback (model/invite.py, proxy/invite.py): an invite
allow-lists both sides; a used, expired or forged one is refused with one line on the box and
counted on the head; and while an invite is open, an unknown peer gets the invite protocol and
nothing else (no tunnel, token, ray-head, overlay, ping), and is disconnected when it tries
anything else, fails a proof or proves nothing in time."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import multiaddr
import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr

from raytui.model.invite import GARBLED, INVITE_PROTOCOL, InviteRefusal, parse_invite
from raytui.model.overlay import OVERLAY_INFO_PROTOCOL, OVERLAY_PROTOCOL, RAY_HEAD_INFO_PROTOCOL
from raytui.model.peers import TOKEN_PROTOCOL, TUNNEL_PROTOCOL, LinkState
from raytui.proxy.host import build_host
from raytui.proxy.invite import PROOF_TIMEOUT
from tests.proxy_support.daemons import Daemon, echo_roundtrip, tcp_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.proxy

TOKEN = "invite-test-token"


@pytest.fixture(scope="module")
def head() -> Iterator[Daemon]:
    d = Daemon("ih")
    d.env["RAY_AUTH_TOKEN"] = TOKEN
    try:
        d.start()
        with tcp_server("echo") as (host, port):
            d.control.expose("echo", f"{host}:{port}")
            d.control.set_share_token(True)
            yield d
    finally:
        d.cleanup()


@pytest.fixture
def box() -> Iterator[Daemon]:
    d = Daemon("ib")
    try:
        yield d.start()
    finally:
        d.cleanup()


def _invite(head: Daemon, *args: str) -> str:
    done = head.cli("invite", *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return lines[0]


def _refusals(head: Daemon) -> dict[str, int]:
    done = head.cli("proxy", "status", "--json")
    assert done.returncode == 0, done.stderr
    refused: dict[str, int] = json.loads(done.stdout)["invites"]["refused"]
    return refused


def _one_line_failure(done: object, code: int) -> str:
    assert done.returncode == code, (done.stdout, done.stderr)  # type: ignore[attr-defined]
    err: str = done.stderr  # type: ignore[attr-defined]
    assert err.startswith("raytui: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# --- a box with an invite ------------------------------------------------------------------------


def test_an_invite_allow_lists_both_sides_once(head: Daemon, box: Daemon) -> None:
    head_id, box_id = head.status().peer_id, box.status().peer_id
    line = _invite(head, "--expires", "10m")
    before = head.status().invites
    assert before.active >= 1 and before.door_open
    done = box.cli("peers", "add", line)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: box.peer_state(head_id) == LinkState.CONNECTED, 20, "box sees the head")
    wait_for(lambda: head.peer_state(box_id) == LinkState.CONNECTED, 20, "head sees the box")
    assert head.status().peer(box_id).name  # type: ignore[union-attr]
    head_name = box.status().peer(head_id).name  # type: ignore[union-attr]
    assert head_name and head_name in done.stdout
    after = head.status().invites
    assert after.active == before.active - 1 and after.accepted == before.accepted + 1
    # Now an ordinary allowed peer: the tunnel and the token work.
    assert box.control.token(head_name) == TOKEN
    fwd = box.control.forward(head_name, "echo")
    host, _, port = fwd.bind.rpartition(":")
    assert echo_roundtrip((host, int(port)), b"through the invite") == b"through the invite"

    # The same line again, from another machine: refused, one line, counted.
    other = Daemon("ic")
    try:
        other.start()
        used = _refusals(head).get(InviteRefusal.USED, 0)
        err = _one_line_failure(other.cli("peers", "add", line), 1)
        assert "already used" in err
        assert _refusals(head)[InviteRefusal.USED] == used + 1
        assert other.status().peer(head_id) is None
        assert head.status().peer(other.status().peer_id) is None
    finally:
        other.cleanup()


def test_join_checks_this_machine_before_spending_the_invite(head: Daemon, box: Daemon) -> None:
    line = _invite(head)
    active = head.status().invites.active
    err = _one_line_failure(box.cli("join", line, "--gpus", "1"), 1)
    assert "overlay" in err
    assert head.status().invites.active == active
    assert box.status().peers == ()
    assert box.cli("peers", "add", line).returncode == 0


def test_an_expired_invite_is_refused_and_counted(head: Daemon, box: Daemon) -> None:
    line = _invite(head, "--expires", "1s")
    before = _refusals(head).get(InviteRefusal.EXPIRED, 0)
    time.sleep(1.5)
    err = _one_line_failure(box.cli("peers", "add", line), 1)
    assert "expired" in err
    assert _refusals(head)[InviteRefusal.EXPIRED] == before + 1
    assert box.status().peers == ()


def test_forged_invites_are_refused_and_counted(head: Daemon, box: Daemon) -> None:
    invite = parse_invite(_invite(head))
    invite_id, _, key = invite.secret.partition(".")
    other_key = key[:-1] + ("A" if key[-1] != "A" else "B")
    wrong = replace(invite, secret=f"{invite_id}.{other_key}").line()
    unknown = replace(invite, secret=f"{'0' * 16}.{key}").line()
    before = _refusals(head)
    err = _one_line_failure(box.cli("peers", "add", wrong), 1)
    assert "secret is wrong" in err
    err = _one_line_failure(box.cli("peers", "add", unknown), 1)
    assert "no such invite" in err
    after = _refusals(head)
    assert after[InviteRefusal.WRONG] == before.get(InviteRefusal.WRONG, 0) + 1
    assert after[InviteRefusal.UNKNOWN] == before.get(InviteRefusal.UNKNOWN, 0) + 1
    assert box.status().peers == ()
    # The real one still works after the forgeries.
    assert box.cli("peers", "add", invite.line()).returncode == 0


def test_a_garbled_line_is_a_usage_error_before_any_dial(box: Daemon) -> None:
    for argv in (["join", "raytui1:eyJwZWVyX2lkIjoiMTJE"], ["peers", "add", "raytui1:%%%"]):
        err = _one_line_failure(box.cli(*argv), 2)
        assert GARBLED in err
    assert "bad duration" in _one_line_failure(box.cli("invite", "--expires", "soon"), 2)


def test_proxy_status_shows_the_invites(head: Daemon) -> None:
    _invite(head)
    done = head.cli("proxy", "status")
    assert done.returncode == 0, done.stderr
    assert "invites: " in done.stdout and "invite protocol only" in done.stdout


# --- an unknown peer while an invite is open -----------------------------------------------------


async def _connect_and_try(
    target: str, protocol: str, payload: bytes | None = None, linger: float = 5.0
) -> tuple[str | None, bytes, bool]:
    """A stranger (a fresh key, on no allow-list) connects, opens `protocol`, sends `payload`.
    Returns (the stream's failure or None, what came back, whether the head hung up within
    `linger` seconds)."""
    stranger = build_host(create_new_key_pair(), [], lambda _peer: True)
    info = info_from_p2p_addr(multiaddr.Multiaddr(target))
    async with stranger.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        with trio.fail_after(10):
            await stranger.connect(info)
        error, reply = None, b""
        try:
            with trio.fail_after(10):
                stream = await stranger.new_stream(info.peer_id, [TProtocol(protocol)])
                if payload is not None:
                    await stream.write(payload)
                    while chunk := await stream.read(4096):
                        reply += chunk
                        if reply.endswith(b"\n"):
                            break
        except Exception as exc:
            error = _chain(exc)
        closed = await _hung_up(stranger, info.peer_id, linger)
    return error, reply, closed


def _chain(exc: BaseException | None) -> str:
    parts = []
    while exc is not None and len(parts) < 10:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


async def _hung_up(host: object, peer: ID, within: float) -> bool:
    with trio.move_on_after(within):
        while True:
            if not host.get_network().get_connections(peer):  # type: ignore[attr-defined]
                return True
            await trio.sleep(0.1)
    return False


@pytest.mark.parametrize(
    "protocol",
    [
        TUNNEL_PROTOCOL,
        TOKEN_PROTOCOL,
        RAY_HEAD_INFO_PROTOCOL,
        OVERLAY_PROTOCOL,
        OVERLAY_INFO_PROTOCOL,
        str(PING_PROTOCOL),
    ],
)
def test_an_unknown_peer_gets_no_other_protocol(head: Daemon, protocol: str) -> None:
    _invite(head)  # the door is open
    before = _refusals(head).get(InviteRefusal.PROTOCOL, 0)
    error, reply, closed = trio.run(_connect_and_try, head.addr, protocol, b"echo\n")
    assert error is not None and "not supported" in error, error
    assert reply == b""
    assert closed, "the head kept the connection of a peer that tried another protocol"
    assert _refusals(head)[InviteRefusal.PROTOCOL] == before + 1
    assert TOKEN not in head.log_tail(200)


def test_an_unknown_peer_with_a_forged_proof_is_refused_and_dropped(head: Daemon) -> None:
    invite = parse_invite(_invite(head))
    forged = json.dumps({"secret": f"{invite.invite_id}.{'x' * 43}", "name": "mallory"})
    before = _refusals(head).get(InviteRefusal.WRONG, 0)
    error, reply, closed = trio.run(
        _connect_and_try, head.addr, INVITE_PROTOCOL, forged.encode() + b"\n"
    )
    assert error is None
    answer = json.loads(reply)
    assert answer["ok"] is False and answer["reason"] == InviteRefusal.WRONG
    assert closed
    assert _refusals(head)[InviteRefusal.WRONG] == before + 1
    assert not any(p.name == "mallory" for p in head.status().peers)


def test_an_unknown_peer_that_proves_nothing_is_dropped(head: Daemon) -> None:
    _invite(head)
    before = _refusals(head).get(InviteRefusal.TIMEOUT, 0)

    async def idle() -> bool:
        stranger = build_host(create_new_key_pair(), [], lambda _peer: True)
        info = info_from_p2p_addr(multiaddr.Multiaddr(head.addr))
        async with stranger.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            with trio.fail_after(10):
                await stranger.connect(info)
            return await _hung_up(stranger, info.peer_id, PROOF_TIMEOUT + 5)

    assert trio.run(idle), "a peer on probation kept its connection past the deadline"
    wait_for(
        lambda: _refusals(head).get(InviteRefusal.TIMEOUT, 0) == before + 1,
        5,
        "the head to count the silent peer",
    )


def test_an_unknown_peer_gets_one_proof_per_connection(head: Daemon) -> None:
    invite = parse_invite(_invite(head))
    before = _refusals(head).get(InviteRefusal.GARBLED, 0)
    wrong = _refusals(head).get(InviteRefusal.WRONG, 0)

    async def two_streams() -> tuple[bytes, bool]:
        stranger = build_host(create_new_key_pair(), [], lambda _peer: True)
        info = info_from_p2p_addr(multiaddr.Multiaddr(head.addr))
        async with stranger.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            with trio.fail_after(10):
                await stranger.connect(info)
                # The first invite stream stays open, proving nothing yet.
                await stranger.new_stream(info.peer_id, [TProtocol(INVITE_PROTOCOL)])
                guess = {"secret": f"{invite.invite_id}.{'y' * 43}"}
                reply = b""
                try:  # the head resets a second one, during or after negotiation
                    second = await stranger.new_stream(info.peer_id, [TProtocol(INVITE_PROTOCOL)])
                    await second.write(json.dumps(guess).encode() + b"\n")
                    reply = await second.read(4096)
                except Exception:
                    pass
            return reply, await _hung_up(stranger, info.peer_id, 5)

    reply, closed = trio.run(two_streams)
    assert reply == b"" and closed
    assert _refusals(head)[InviteRefusal.GARBLED] == before + 1
    assert _refusals(head).get(InviteRefusal.WRONG, 0) == wrong  # the guess was never checked
