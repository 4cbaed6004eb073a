"""The allow-list and one supervisor per allowed peer.

A supervisor keeps the link to its peer: it dials (clearing the library's negative dial cache
first, which would otherwise refuse a redial for 60 s), pings every PING_INTERVAL seconds, and
redials with jittered exponential backoff.

Pings reuse one stream, and when the peer has ended that stream the same ping is sent again at
once on a fresh one (`Pinger`): js-libp2p aborts an incoming ping stream after 10 s, which cost
a "ping failed" every ~11 s when a closed stream counted as a failed ping. A fresh stream for
every ping is no cure: under load (100 busy tunnels) opening a stream took over PING_TIMEOUT,
three pings failed in a row and the link was dropped with every tunnel on it. It records health
(state, RTT, reconnects, last error); the tunnel code adds traffic counters.

States: `connecting` until the first dial after start/add has an outcome; `connected` while a
connection is up; `down` after a loss or a failed dial, while retrying.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.custom_types import TProtocol
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from raytui import errors
from raytui.errors import UsageError
from raytui.model.peers import LinkState, PeerAddress, PeerHealth, check_peer_name
from raytui.proxy.store import PeerEntry, StoredState
from raytui.proxy.tunnel import LinkCounters

log = logging.getLogger(__name__)

PING_INTERVAL = 1.5
PING_TIMEOUT = 5.0
PING_FAILURES_BEFORE_DROP = 3
DIAL_TIMEOUT = 10.0
MIN_BACKOFF = 0.5
MAX_BACKOFF = 8.0
ADDR_TTL = 10**9  # the peerstore forgets addresses after their TTL; ours come from the user


def describe(exc: BaseException) -> str:
    """The most specific message in an exception chain: `raytui.errors.describe`'s "chain"."""
    return errors.describe(exc, "chain")


class RefusalLog:
    """Refused handshakes in the log without flooding it: at most BURST lines per WINDOW
    seconds; the rest are counted and said in one line when the window ends (a peer that
    retries every second, or a scan with fresh keys, costs one line a minute)."""

    WINDOW = 60.0
    BURST = 5
    MAX_PEERS = 10_000  # distinct peer IDs remembered per window (fresh keys cost no memory)

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()
        self._lines = 0
        self._suppressed = 0
        self._peers: set[str] = set()

    def refused(self, peer: str, direction: str) -> None:
        self.flush()
        if self._lines < self.BURST:
            self._lines += 1
            log.warning(
                "refused %s connection from peer %s: not on the allow-list", direction, peer
            )
            if self._lines == self.BURST:
                log.warning(
                    "more refusals are counted, not logged: one line every %.0f s", self.WINDOW
                )
            return
        self._suppressed += 1
        if len(self._peers) < self.MAX_PEERS:
            self._peers.add(peer)

    def flush(self) -> None:
        """End the window if it is over: one line with what it counted."""
        now = self._clock()
        if now - self._start < self.WINDOW:
            return
        if self._suppressed:
            log.warning(
                "refused %d more connection(s) from %d peer(s) not on the allow-list in %.0f s",
                self._suppressed,
                len(self._peers),
                now - self._start,
            )
        self._start, self._lines, self._suppressed = now, 0, 0
        self._peers.clear()

    async def flush_every(self) -> None:
        while True:
            await trio.sleep(self.WINDOW / 4)
            self.flush()


@dataclass
class Link:
    entry: PeerEntry
    state: LinkState = LinkState.CONNECTING
    rtt_ms: float | None = None
    reconnects: int = 0
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    counters: LinkCounters = field(default_factory=LinkCounters)
    ever_connected: bool = False
    wake: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def set_state(self, state: LinkState) -> None:
        if state != self.state:
            log.info("peer %s: %s -> %s", self.entry.peer_id, self.state, state)
            self.state = state
            self.since = time.time()

    def poke(self) -> None:
        self.wake.set()

    def health(self) -> PeerHealth:
        return PeerHealth(
            peer_id=self.entry.peer_id,
            name=self.entry.name,
            addrs=tuple(self.entry.addrs),
            state=self.state,
            rtt_ms=self.rtt_ms if self.state == LinkState.CONNECTED else None,
            reconnects=self.reconnects,
            active_streams=self.counters.active_streams,
            bytes_in=self.counters.bytes_in,
            bytes_out=self.counters.bytes_out,
            last_error=self.last_error,
            since=self.since,
        )


class _Notifee(INotifee):
    """Wakes a supervisor as soon as its peer connects or disconnects."""

    def __init__(self, manager: PeerManager) -> None:
        self._manager = manager

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._manager.poke(str(conn.muxed_conn.peer_id))

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._manager.poke(str(conn.muxed_conn.peer_id))

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


class PeerManager:
    """Owns the allow-list (in `state.peers`) and the supervisors. `save` persists `state`."""

    def __init__(self, state: StoredState, save: Callable[[], None]) -> None:
        self._state = state
        self._save = save
        self._links: dict[str, Link] = {pid: Link(entry) for pid, entry in state.peers.items()}
        self._host: IHost | None = None
        self._nursery: trio.Nursery | None = None
        self.refused = 0
        self._refusals = RefusalLog()

    # --- used by the host's security step (synchronous, no I/O) -------------------------------

    def allowed(self, peer: ID) -> bool:
        return str(peer) in self._links

    def on_refused(self, peer: ID, direction: str) -> None:
        self.refused += 1
        self._refusals.refused(str(peer), direction)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, host: IHost, nursery: trio.Nursery) -> None:
        self._host = host
        self._nursery = nursery
        network = host.get_network()
        network.register_notifee(_Notifee(self))
        # The supervisors below are the only dialers. The library's auto-connector would dial
        # every peer with an address in the peerstore, removed ones included, forever.
        connector = getattr(network, "auto_connector", None)
        if connector is not None and hasattr(connector, "stop"):
            nursery.start_soon(connector.stop)
        nursery.start_soon(self._refusals.flush_every)
        for link in self._links.values():
            nursery.start_soon(self._supervise, link)

    def poke(self, peer_id: str) -> None:
        link = self._links.get(peer_id)
        if link is not None:
            link.poke()

    # --- queries --------------------------------------------------------------------------------

    def health(self) -> list[PeerHealth]:
        return [link.health() for link in self._links.values()]

    def counters(self, peer_id: str) -> LinkCounters:
        link = self._links.get(peer_id)
        return link.counters if link is not None else LinkCounters()

    def resolve(self, key: str) -> str:
        """Peer ID for a peer ID or name on the list; UsageError otherwise."""
        if key in self._links:
            return key
        for pid, link in self._links.items():
            if link.entry.name == key:
                return pid
        raise UsageError(f"no peer {key!r} on the allow-list (see `raytui peers list`)")

    def link(self, peer_id: str) -> Link:
        return self._links[peer_id]

    # --- changes --------------------------------------------------------------------------------

    async def add(self, address: PeerAddress, name: str | None) -> tuple[PeerHealth, str | None]:
        """Allow-list and dial. Returns the health after the first dial and its error, if any."""
        if self._host is not None and address.peer_id == str(self._host.get_id()):
            raise UsageError("that address is this daemon's own peer ID")
        if name is not None:
            check_peer_name(name)
            for pid, other in self._links.items():
                if other.entry.name == name and pid != address.peer_id:
                    raise UsageError(f"the name {name!r} is already used by peer {pid}")
        link = self._links.get(address.peer_id)
        if link is None:
            entry = PeerEntry(address.peer_id, name, [address.transport])
            link = Link(entry)
            self._links[entry.peer_id] = link
            self._state.peers[entry.peer_id] = entry
            if self._nursery is not None:
                self._nursery.start_soon(self._supervise, link)
        else:
            if name is not None:
                link.entry.name = name
            if address.transport in link.entry.addrs:
                link.entry.addrs.remove(address.transport)
            link.entry.addrs.insert(0, address.transport)
            link.poke()
        self._save()
        error = await self._first_outcome(link)
        return link.health(), error

    def allow(self, peer_id: str, name: str, addrs: list[str]) -> PeerEntry:
        """Allow-list `peer_id` at once, without waiting for a dial (the other side of an
        invite, model/invite.py). A peer already listed keeps its name (or gets `name` if it had
        none); `addrs` are added first. `name` must be unused (the caller makes it unique)."""
        link = self._links.get(peer_id)
        if link is None:
            entry = PeerEntry(peer_id, name, list(addrs))
            link = Link(entry)
            self._links[peer_id] = link
            self._state.peers[peer_id] = entry
            if self._nursery is not None:
                self._nursery.start_soon(self._supervise, link)
        else:
            link.entry.name = link.entry.name or name
            fresh = [a for a in addrs if a not in link.entry.addrs]
            link.entry.addrs[:0] = fresh
            link.poke()
        self._save()
        return link.entry

    def names(self) -> set[str]:
        return {link.entry.name for link in self._links.values() if link.entry.name}

    async def _first_outcome(self, link: Link) -> str | None:
        """Wait (bounded) until the supervisor has connected or failed once."""
        with trio.move_on_after(DIAL_TIMEOUT + 1):
            while True:
                if link.state == LinkState.CONNECTED:
                    return None
                if link.state == LinkState.DOWN and link.last_error:
                    return link.last_error
                await trio.sleep(0.05)
        return link.last_error or "no answer yet"

    async def remove(self, key: str) -> str:
        peer_id = self.resolve(key)
        link = self._links.pop(peer_id)
        self._state.peers.pop(peer_id, None)
        self._save()
        link.scope.cancel()
        if self._host is not None:
            with trio.move_on_after(5):
                try:
                    pid = ID.from_base58(peer_id)
                    # Forget its addresses first: nothing may dial a peer that is off the list.
                    self._host.get_peerstore().clear_addrs(pid)
                    await self._host.disconnect(pid)
                except Exception:
                    log.debug("disconnect %s failed", peer_id, exc_info=True)
        return peer_id

    # --- the supervisor -------------------------------------------------------------------------

    def _connected(self, pid: ID) -> bool:
        assert self._host is not None
        return bool(self._host.get_network().get_connections(pid))

    async def _wait(self, link: Link, seconds: float) -> None:
        with trio.move_on_after(seconds):
            await link.wake.wait()
        link.wake = trio.Event()

    async def _supervise(self, link: Link) -> None:
        with link.scope:
            try:
                await self._supervise_loop(link)
            except Exception:
                log.exception("supervisor for %s crashed", link.entry.peer_id)
                link.set_state(LinkState.DOWN)
                link.last_error = "supervisor crashed; see the daemon log"

    async def _supervise_loop(self, link: Link) -> None:
        assert self._host is not None
        host = self._host
        pid = ID.from_base58(link.entry.peer_id)
        backoff = MIN_BACKOFF
        failures = 0
        pinger = Pinger(host, pid)
        while True:
            if self._connected(pid):
                if link.state != LinkState.CONNECTED:
                    if link.ever_connected:
                        link.reconnects += 1
                    link.ever_connected = True
                    link.set_state(LinkState.CONNECTED)
                    link.last_error = None  # the health line shows the present
                    backoff = MIN_BACKOFF
                    failures = 0
                try:
                    with trio.fail_after(PING_TIMEOUT):
                        link.rtt_ms = await pinger.ping()
                    failures = 0
                    if link.last_error and link.last_error.startswith("ping failed"):
                        link.last_error = None  # the health line shows the present
                except Exception as exc:
                    failures += 1
                    link.last_error = f"ping failed: {describe(exc)}"
                    if failures >= PING_FAILURES_BEFORE_DROP:
                        log.warning("peer %s: %d pings failed, dropping", pid, failures)
                        with trio.move_on_after(5):
                            await host.disconnect(pid)
                await self._wait(link, PING_INTERVAL)
                continue
            await pinger.forget()
            if link.state == LinkState.CONNECTED:
                link.last_error = "connection lost"
                link.set_state(LinkState.DOWN)
            error = await self._dial(host, pid, link)
            if error is None:
                continue
            link.last_error = error
            link.set_state(LinkState.DOWN)
            await self._wait(link, backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _dial(self, host: IHost, pid: ID, link: Link) -> str | None:
        addrs = []
        for text in link.entry.addrs:
            try:
                addrs.append(multiaddr.Multiaddr(text))
            except Exception as exc:
                return f"bad stored address {text!r}: {exc}"
        if not addrs:
            return "no known address; waiting for the peer to dial in"
        network = host.get_network()
        unblock = getattr(network, "unblock_peer", None)
        if unblock is not None:
            unblock(pid)
        # Dial only the addresses the user gave. Identify fills the peerstore with what the peer
        # listens on, loopback and overlay addresses included: with every daemon on port 4701,
        # a redial of the peer's 127.0.0.1:4701 reached this very daemon and failed the
        # handshake (found when a box's link came back after an outage).
        host.get_peerstore().clear_addrs(pid)
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            # The peer may dial in meanwhile (a box behind NAT after an outage): stop waiting
            # for our own dial as soon as a connection exists.
            nursery.start_soon(self._cancel_when_connected, pid, link, nursery.cancel_scope)
            try:
                with trio.fail_after(DIAL_TIMEOUT):
                    await host.connect(PeerInfo(pid, addrs))
            except Exception as exc:  # inside the nursery: never mixed with a cancellation
                failure = exc
            nursery.cancel_scope.cancel()
        if failure is None or self._connected(pid):
            return None
        return f"dial failed: {describe(failure)}"

    async def _cancel_when_connected(self, pid: ID, link: Link, scope: trio.CancelScope) -> None:
        while not self._connected(pid):
            await link.wake.wait()
            link.wake = trio.Event()
        scope.cancel()


class Pinger:
    """Pings one peer over a reused stream; a reused stream that fails (the peer ended it, as
    js-libp2p does after 10 s) is replaced by a fresh one for the same ping. Failures on a fresh
    stream are the caller's (they count towards dropping the link)."""

    def __init__(self, host: IHost, pid: ID) -> None:
        self._host = host
        self._pid = pid
        self._stream: INetStream | None = None

    async def ping(self) -> float:
        """The RTT of one 32-byte echo, in milliseconds."""
        if self._stream is not None:
            try:
                return await _echo(self._stream)
            except Exception:  # the peer ended it: the same ping on a fresh stream
                await self.forget()
            except BaseException:  # cancelled (timed out): a late answer must not linger
                await self.forget()
                raise
        self._stream = await self._host.new_stream(self._pid, [TProtocol(PING_PROTOCOL)])
        try:
            return await _echo(self._stream)
        except BaseException:
            await self.forget()
            raise

    async def forget(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(1),
                contextlib.suppress(Exception),
            ):
                await stream.reset()


async def _echo(stream: INetStream) -> float:
    payload = secrets.token_bytes(32)
    start = time.perf_counter()
    await stream.write(payload)
    got = b""
    while len(got) < len(payload):
        chunk = await stream.read(len(payload) - len(got))
        if not chunk:
            raise EOFError("ping stream closed")
        got += chunk
    if got != payload:
        raise ValueError("ping answer does not match")
    return (time.perf_counter() - start) * 1000.0
