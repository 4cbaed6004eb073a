"""Who may connect: only allow-listed peer IDs, only over Noise; files are owner-only."""

from __future__ import annotations

import stat
from collections.abc import Iterator

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair, PrivateKey, PublicKey
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from raytui.model.peers import TUNNEL_PROTOCOL, LinkState
from raytui.proxy.host import build_host
from tests.proxy_support.daemons import Daemon, pair_up
from tests.support.waiting import wait_for

pytestmark = pytest.mark.proxy


@pytest.fixture(scope="module")
def linked() -> Iterator[tuple[Daemon, Daemon]]:
    a, b = Daemon("a"), Daemon("b")
    try:
        a.start()
        b.start()
        pair_up(a, b)
        yield a, b
    finally:
        a.cleanup()
        b.cleanup()


async def _try_dial(host: object, target: str) -> str | None:
    """Dial and open a tunnel stream; None if that worked, else the failure."""
    info = info_from_p2p_addr(multiaddr.Multiaddr(target))
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with host.run(listen):  # type: ignore[attr-defined]
        try:
            with trio.fail_after(10):
                await host.connect(info)  # type: ignore[attr-defined]
                stream = await host.new_stream(  # type: ignore[attr-defined]
                    info.peer_id, [TProtocol(TUNNEL_PROTOCOL)]
                )
                await stream.write(b"echo\n")
                reply = await stream.read(100)
                if not reply:
                    return "empty reply"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
    return None


def _plaintext_host(claimed: KeyPair) -> object:
    """Offers only /plaintext/2.0.0 and presents `claimed`'s public key (hence its peer ID)."""
    return new_host(
        key_pair=create_new_key_pair(),
        sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(claimed)},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
    )


class _ClaimingKey:
    """A private key that reports someone else's public key. Plaintext never signs anything,
    so this is all a dialer needs to claim that peer ID; Noise would need the real key."""

    def __init__(self, real: PrivateKey, claimed: PublicKey) -> None:
        self._real = real
        self._claimed = claimed

    def get_public_key(self) -> PublicKey:
        return self._claimed

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


def _impersonating(peer_id: str) -> KeyPair:
    """`peer_id`'s public key (readable from an Ed25519 peer ID) with an unrelated private key."""
    public = ID.from_base58(peer_id).extract_public_key()
    assert public is not None
    return KeyPair(_ClaimingKey(create_new_key_pair().private_key, public), public)  # type: ignore[arg-type]


def test_peer_not_on_allow_list_is_refused(linked: tuple[Daemon, Daemon]) -> None:
    _, b = linked
    refused_before = b.status().refused
    stranger = build_host(create_new_key_pair(), [], lambda _peer: True)
    error = trio.run(_try_dial, stranger, b.addr)
    assert error is not None, "a peer that is not on the allow-list got a tunnel stream"
    wait_for(lambda: b.status().refused > refused_before, 10, "b to count the refusal")


def test_plaintext_dialer_claiming_allowed_id_is_refused(linked: tuple[Daemon, Daemon]) -> None:
    a, b = linked
    a_id = a.status().peer_id
    attacker = _plaintext_host(_impersonating(a_id))
    error = trio.run(_try_dial, attacker, b.addr)
    assert error is not None, "a plaintext dialer claiming an allowed peer ID was accepted"
    # The real a is unaffected.
    assert b.peer_state(a_id) == LinkState.CONNECTED


def test_the_impersonation_works_against_library_defaults() -> None:
    """Guards the test above: the same attacker does get in where plaintext is accepted."""
    victim_keys = create_new_key_pair()
    victim_id = str(ID.from_pubkey(victim_keys.public_key))
    attacker = _plaintext_host(_impersonating(victim_id))
    server = new_host(key_pair=create_new_key_pair())  # library default security options
    seen: list[str] = []

    async def handler(stream: object) -> None:
        seen.append(str(stream.muxed_conn.peer_id))  # type: ignore[attr-defined]
        await stream.write(b"+\n")  # type: ignore[attr-defined]
        await stream.close()  # type: ignore[attr-defined]

    async def main() -> str | None:
        server.set_stream_handler(TProtocol(TUNNEL_PROTOCOL), handler)
        async with server.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            target = str(server.get_addrs()[0])
            return await _try_dial(attacker, target)

    assert trio.run(main) is None
    assert seen == [victim_id]


def test_key_file_and_control_socket_are_owner_only(linked: tuple[Daemon, Daemon]) -> None:
    a, _ = linked
    key = a.home / "config" / "peer.key"
    sock = a.home / "run" / "proxy.sock"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE((a.home / "config" / "proxy.json").stat().st_mode) == 0o600


def test_identity_is_stable_across_restarts() -> None:
    d = Daemon("i")
    try:
        first = d.start().status().peer_id
        d.stop()
        assert d.start().status().peer_id == first
    finally:
        d.cleanup()
