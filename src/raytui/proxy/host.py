"""Building the libp2p host: TCP, Noise only, Yamux only, and an allow-list checked at handshake.

`libp2p.new_host()` by default also offers `/plaintext/2.0.0` (where a dialer may claim any peer
ID), TLS and SECIO, and falls back to Mplex (which deadlocks when one task reads while another
writes the same stream). Here the upgrader knows exactly one security protocol and one muxer, on
both the dialing and the listening side.

The allow-list is enforced inside the security step: right after the Noise handshake has proved
the remote's peer ID, a peer that is not allowed gets its connection closed before any muxer or
stream exists. Stream handlers check again (defence in depth).

One exception, `Probation` (proxy/invite.py): a peer not on the list may be let in by
`Probation.admit(peer, direction)`: inbound while this daemon has an invite open (rate-limited,
with a short deadline), outbound to the head whose invite this daemon is presenting. On such a
connection the stream gate (handlers.guard_streams) lets the peer negotiate only
`Probation.protocols` and reports every other attempt to `Probation.refused`.

Every inbound stream runs under `handlers.guarded`: a handler's exception resets that stream and
is logged; it never ends the daemon.

Yamux flow control is tuned through the knobs py-libp2p reads from the environment at call time
(`PY_YAMUX_*`, its scripts/perf/README.md): see `YAMUX_TUNING`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import multiaddr
from libp2p import new_host
from libp2p.abc import IHost, IRawConnection, ISecureConn, ISecureTransport
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.security.exceptions import HandshakeFailure
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from raytui.proxy.handlers import guard_streams

AllowPredicate = Callable[[ID], bool]

# py-libp2p's Yamux by default sends a WINDOW_UPDATE for every read ("release on read"). A relay
# reads about one frame per call, so every other frame on the wire was a window update (1,310
# updates for 1,294 data frames over 64 MiB). Without it the receiver credits the sender in
# batches of half the window, as go-yamux does: 230 updates, and bench/bench_tunnel.py moves
# 1.21x the MB/s of the library default (same run). A value set in the environment wins.
YAMUX_TUNING: Mapping[str, str] = {"PY_YAMUX_RELEASE_ON_READ": "0"}


def tune_yamux(environ: MutableMapping[str, str] = os.environ) -> None:
    """Apply `YAMUX_TUNING` unless the environment already says otherwise (py-libp2p reads these
    at call time, so this works after import)."""
    for name, value in YAMUX_TUNING.items():
        environ.setdefault(name, value)


RefusedCallback = Callable[[ID, str], None]
DirectedPredicate = Callable[[ID, str], bool]  # (peer, "inbound" | "outbound")


@dataclass(frozen=True)
class Probation:
    """How a peer that is not on the allow-list may still connect."""

    admit: DirectedPredicate  # at the handshake: let this unknown peer in? (no I/O)
    protocols: frozenset[str]  # the only protocols it may open
    refused: Callable[[ID, tuple[str, ...]], None]  # it proposed others (refused)


class AllowListNoise(ISecureTransport):
    """Noise, then refuse any authenticated peer ID the predicate does not allow (unless
    `probation` admits it)."""

    def __init__(
        self,
        key_pair: KeyPair,
        allowed: AllowPredicate,
        on_refused: RefusedCallback | None = None,
        probation: DirectedPredicate | None = None,
    ) -> None:
        self._noise = NoiseTransport(key_pair, noise_privkey=new_x25519_key_pair().private_key)
        self._allowed = allowed
        self._on_refused = on_refused
        self._probation = probation

    async def _check(self, conn: ISecureConn, direction: str) -> ISecureConn:
        peer = conn.get_remote_peer()
        if self._allowed(peer):
            return conn
        if self._probation is not None and self._probation(peer, direction):
            return conn
        if self._on_refused is not None:
            self._on_refused(peer, direction)
        try:
            await conn.close()
        finally:
            pass
        raise HandshakeFailure(f"peer {peer} is not on the allow-list")

    async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
        return await self._check(await self._noise.secure_inbound(conn), "inbound")

    async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
        return await self._check(await self._noise.secure_outbound(conn, peer_id), "outbound")


def security_options(
    key_pair: KeyPair,
    allowed: AllowPredicate,
    on_refused: RefusedCallback | None = None,
    probation: DirectedPredicate | None = None,
) -> dict[TProtocol, ISecureTransport]:
    noise = AllowListNoise(key_pair, allowed, on_refused, probation)
    return {TProtocol(NOISE_PROTOCOL_ID): noise}


def muxer_options() -> dict[TProtocol, Any]:
    return {TProtocol(YAMUX_PROTOCOL_ID): Yamux}


def build_host(
    key_pair: KeyPair,
    listen: Sequence[multiaddr.Multiaddr],
    allowed: AllowPredicate,
    on_refused: RefusedCallback | None = None,
    probation: Probation | None = None,
) -> IHost:
    """A TCP host speaking only Noise + Yamux, refusing peers `allowed` rejects (except those
    `probation` admits, for its protocols only); a stream handler's failure resets its stream
    only (`handlers.guard_streams`)."""
    tune_yamux()
    admit = None if probation is None else probation.admit
    host = new_host(
        key_pair=key_pair,
        sec_opt=security_options(key_pair, allowed, on_refused, admit),
        muxer_opt=muxer_options(),
        listen_addrs=list(listen),
        enable_mDNS=False,
        enable_upnp=False,
    )
    if probation is None:
        guard_streams(host, allowed)
    else:
        guard_streams(host, allowed, probation.protocols, probation.refused)
    return host
