"""The overlay: Ray's TCP connections between allow-listed peers, one libp2p stream each.

Each daemon holds an overlay address on `lo` (overlay_kernel.py). The kernel hands every outgoing
TCP connection to another overlay address to this daemon's intercept port (NAT REDIRECT), where
`SO_ORIGINAL_DST` names where it was going. The daemon opens one stream (`/raytui/overlay/1.0.0`)
to the peer that owns that address, or to a hub that reaches it, and splices it with the
connection; the far daemon connects to its own overlay address and port. As in sshuttle, each TCP
connection is carried on its own stream, never IP packets over one stream (TCP-in-TCP measured
2-22 MB/s over py-libp2p, NOTES.md).

Wire format of a carried stream, dialer first: `SRC DST PORT\\n`, then the answer `+\\n` or
`-REASON\\n`, then the bytes (as the tunnel, tunnel.py). A hub that relays passes the header on
unchanged and relays the rest.

What belongs (checked on the serving side, counted in `refused`):
- only peers on the allow-list open streams at all (the host refuses others at the handshake);
- only Ray's ports (model.overlay.ray_port_allowed), on both the dialing and the serving side;
- a stream from peer P may claim only P's own overlay address as its source, or, when P relays
  as a hub, an address P reaches directly; a hub relays only its direct sender's own traffic.

Addresses and routes: every INFO_INTERVAL seconds, and as soon as a link comes up, each daemon
swaps a small JSON document with each connected peer (`/raytui/overlay-info/1.0.0`): its overlay
address and the overlay peers it reaches directly. A claim must be the claimant's derived
address (model.overlay.claim_index).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from raytui import locations
from raytui.errors import RaytuiError
from raytui.model.overlay import (
    OVERLAY_INFO_PROTOCOL,
    OVERLAY_PROTOCOL,
    OverlayRoute,
    OverlayStatus,
    RouteState,
    claim_index,
    derive_address,
    parse_prefix,
    ray_port_allowed,
    resolve_collision,
)
from raytui.model.peers import LinkState
from raytui.proxy import overlay_kernel
from raytui.proxy.peers import PeerManager, describe
from raytui.proxy.store import OverlayEntry
from raytui.proxy.tunnel import (
    CONNECT_TIMEOUT,
    LinkCounters,
    connect_and_splice,
    forward_connection,
    read_header,
    read_line,
    refuse,
    relay_streams,
    reset_socket,
    reset_stream,
)

log = logging.getLogger(__name__)

# Each peer's info is refreshed every INFO_INTERVAL, and at once when its link (re)connects;
# the loop looks every INFO_POLL. A 2 s refresh was half a joined daemon's idle CPU and grew with
# the peers (bench/RESULTS-overlay.md). Route state follows the link, not this exchange.
INFO_INTERVAL = 10.0
INFO_POLL = 1.0
INFO_TIMEOUT = 5.0
MAX_INFO = 64 * 1024
RECORD_NAME = "overlay-kernel.json"

# Reasons in `refused`.
REFUSED_PORT = "port not allowed"
REFUSED_SPOOF = "source not the peer's"
REFUSED_ROUTE = "no route"
REFUSED_CLAIM = "bad address claim"


def record_path() -> Path:
    return locations.runtime_dir() / RECORD_NAME


@dataclass
class _PeerInfo:
    """What one directly connected peer told us in its last overlay-info exchange."""

    address: str
    reaches: dict[str, str] = field(default_factory=dict)  # peer ID -> address, its direct peers
    seen: float = field(default_factory=time.time)


class Overlay:
    """The overlay of one daemon. `start` brings it up (or records why it cannot)."""

    def __init__(
        self,
        entry: OverlayEntry,
        peers: PeerManager,
        save: Callable[[], None],
    ) -> None:
        self._entry = entry
        self._peers = peers
        self._save = save
        self._host: IHost | None = None
        self._my_id = ""
        self.address: str | None = None
        self.error: str | None = None
        self._info: dict[str, _PeerInfo] = {}
        self._refused: Counter[str] = Counter()
        self._carried = 0
        self._active = 0
        self._scope = trio.CancelScope()
        self._intercept_port = 0
        self._needs_readdress = False  # our address collided: re-apply the kernel side
        self._asked: dict[str, float] = {}  # peer ID -> time of the last info exchange

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._entry.enabled

    @property
    def up(self) -> bool:
        return self.address is not None

    def register(self, host: IHost) -> None:
        """Stream handlers exist whether the overlay is up or not: a daemon without it refuses
        carried streams with a reason instead of leaving the peer to time out."""
        self._host = host
        self._my_id = str(host.get_id())
        host.set_stream_handler(TProtocol(OVERLAY_PROTOCOL), self._on_carried_stream)
        host.set_stream_handler(TProtocol(OVERLAY_INFO_PROTOCOL), self._on_info_stream)

    async def run(self) -> None:
        """Bring the overlay up and serve it until cancelled; the kernel changes are undone on
        the way out. Errors are recorded in `error`, never raised: the rest of the daemon works
        without the overlay."""
        if not self._entry.enabled:
            return
        problem = overlay_kernel.missing_privilege()
        if problem is not None:
            self.error = problem
            log.warning("overlay off: %s", problem)
            return
        try:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        except OSError as exc:
            self.error = f"cannot open the intercept port: {exc}"
            return
        self._intercept_port = int(listeners[0].socket.getsockname()[1])
        with self._scope:
            try:
                await self._apply_kernel()
            except RaytuiError as exc:
                self.error = str(exc)
                log.warning("overlay off: %s", exc)
                for listener in listeners:
                    await listener.aclose()
                return
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._exchange_loop)
                    nursery.start_soon(trio.serve_listeners, self._on_intercepted, listeners)
            finally:
                with trio.CancelScope(shield=True):
                    await self._undo_kernel()

    async def _apply_kernel(self) -> None:
        prefix = parse_prefix(self._entry.prefix)
        address = derive_address(self._my_id, prefix, self._entry.index)
        removed = await trio.to_thread.run_sync(overlay_kernel.undo, record_path())
        if removed:
            log.info("removed overlay changes left by an earlier run: %s", ", ".join(removed))
        plan = overlay_kernel.KernelPlan(
            ipaddress.IPv4Address(address), prefix, self._intercept_port
        )
        await trio.to_thread.run_sync(overlay_kernel.apply, plan, record_path())
        self.address = address
        self.error = None
        log.info("overlay up: %s in %s", address, prefix)

    async def _undo_kernel(self) -> None:
        self.address = None
        try:
            removed = await trio.to_thread.run_sync(overlay_kernel.undo, record_path())
        except Exception:
            log.exception("could not undo the overlay's kernel changes")
            return
        log.info("overlay down; removed: %s", ", ".join(removed) or "nothing")

    def stop(self) -> None:
        self._scope.cancel()

    def holds(self, multiaddr: str) -> bool:
        """Whether a listen multiaddr is on this daemon's overlay address: never one to give
        another machine (it would dial into the overlay, not to this daemon)."""
        return self.address is not None and multiaddr.startswith(f"/ip4/{self.address}/")

    # --- state -----------------------------------------------------------------------------------

    def routes(self) -> list[OverlayRoute]:
        out: list[OverlayRoute] = []
        known: set[str] = set()
        for pid, info in self._info.items():
            state = RouteState.UP if self._connected(pid) else RouteState.DOWN
            out.append(OverlayRoute(pid, info.address, None, state))
            known.add(pid)
        for hub, info in self._info.items():
            for pid, address in info.reaches.items():
                if pid in known or pid == self._my_id:
                    continue
                state = RouteState.UP if self._connected(hub) else RouteState.DOWN
                out.append(OverlayRoute(pid, address, hub, state))
                known.add(pid)
        return out

    def status(self) -> OverlayStatus:
        return OverlayStatus(
            enabled=self._entry.enabled,
            address=self.address,
            prefix=self._entry.prefix,
            error=self.error,
            routes=tuple(self.routes()),
            carried=self._carried,
            active=self._active,
            refused=dict(self._refused),
        )

    def peer_address(self, peer_id: str) -> str | None:
        info = self._info.get(peer_id)
        return None if info is None else info.address

    def _connected(self, peer_id: str) -> bool:
        try:
            return self._peers.link(peer_id).state == LinkState.CONNECTED
        except KeyError:
            return False

    def reaches(self, address: str) -> bool:
        """Whether a connection to `address` would be carried now (its route is up)."""
        return self.up and self._route(address) is not None

    def _route(self, address: str) -> str | None:
        """The peer to open a stream to for `address`: its owner if connected, else a hub."""
        for pid, info in self._info.items():
            if info.address == address and self._connected(pid):
                return pid
        for pid, info in self._info.items():
            if address in info.reaches.values() and self._connected(pid):
                return pid
        return None

    # --- addresses and routes: the info exchange ----------------------------------------------

    def _my_info(self) -> dict[str, Any]:
        reaches = {
            pid: info.address
            for pid, info in self._info.items()
            if self._connected(pid) and pid != self._my_id
        }
        return {
            "address": self.address,
            "prefix": self._entry.prefix,
            "reaches": reaches,
        }

    def _learn(self, peer_id: str, raw: Any) -> dict[str, Any]:
        """Record a peer's info (validated); returns what to tell it back (a collision)."""
        if not isinstance(raw, dict):
            raise ValueError("overlay info must be a JSON object")
        address, prefix_text = raw.get("address"), raw.get("prefix")
        if address is None:
            self._info.pop(peer_id, None)  # its overlay is off
            return {}
        if prefix_text != self._entry.prefix:
            raise ValueError(f"overlay prefix {prefix_text!r} differs from ours")
        prefix = parse_prefix(self._entry.prefix)
        if not isinstance(address, str) or claim_index(peer_id, address, prefix) is None:
            self._refused[REFUSED_CLAIM] += 1
            raise ValueError(f"address {address!r} is not one peer {peer_id} may claim")
        reaches: dict[str, str] = {}
        raw_reaches = raw.get("reaches", {})
        if isinstance(raw_reaches, dict):
            for pid, addr in raw_reaches.items():
                if (
                    isinstance(pid, str)
                    and isinstance(addr, str)
                    and claim_index(pid, addr, prefix) is not None
                ):
                    reaches[pid] = addr
        reply: dict[str, Any] = {}
        for other, info in self._info.items():
            if other != peer_id and info.address == address:
                self._refused["address collision"] += 1
                if peer_id > other:
                    reply["collision"] = other
        if address == self.address:
            self._refused["address collision"] += 1
            if peer_id > self._my_id:
                reply["collision"] = self._my_id
            else:
                self._collide(peer_id)
        self._info[peer_id] = _PeerInfo(address, reaches)
        return reply

    def _collide(self, other: str) -> None:
        """Our address collides with `other`'s: move on to the next counter when the rule says
        we are the one to move; the kernel is re-applied by restarting the overlay."""
        index = resolve_collision(self._my_id, other, self._entry.index)
        if index != self._entry.index:
            log.warning("overlay address %s collides with peer %s: moving on", self.address, other)
            self._entry.index = index
            self._save()
            self._needs_readdress = True

    async def _on_info_stream(self, stream: INetStream) -> None:
        peer = str(stream.muxed_conn.peer_id)
        if not self._peers.allowed(stream.muxed_conn.peer_id):
            await reset_stream(stream)
            return
        self._asked[peer] = time.time()
        try:
            with trio.fail_after(INFO_TIMEOUT):
                line, _ = await read_line(stream, max_len=MAX_INFO)
                reply = {**self._my_info(), **self._learn(peer, json.loads(line))}
                await stream.write(json.dumps(reply).encode() + b"\n")
                await stream.close()
        except Exception as exc:
            log.info("overlay info from %s refused: %s", peer, describe(exc))
            await reset_stream(stream)

    async def _exchange(self, peer_id: str) -> None:
        assert self._host is not None
        self._asked[peer_id] = time.time()
        try:
            with trio.fail_after(INFO_TIMEOUT):
                stream = await self._host.new_stream(
                    ID.from_base58(peer_id), [TProtocol(OVERLAY_INFO_PROTOCOL)]
                )
                try:
                    await stream.write(json.dumps(self._my_info()).encode() + b"\n")
                    line, _ = await read_line(stream, max_len=MAX_INFO)
                finally:
                    with contextlib.suppress(Exception):
                        await stream.close()
            raw = json.loads(line)
            collision = raw.get("collision") if isinstance(raw, dict) else None
            self._learn(peer_id, raw)
            if isinstance(collision, str):
                self._collide(collision)
        except Exception as exc:
            log.debug("overlay info exchange with %s failed: %s", peer_id, describe(exc))

    def _stale(self, peer_id: str, link_since: float | None) -> bool:
        """Time to ask `peer_id` again: INFO_INTERVAL since the last exchange either way (also
        one that failed, or told us its overlay is off), or its link came up since."""
        asked = self._asked.get(peer_id, 0.0)
        return time.time() - asked >= INFO_INTERVAL or (link_since or 0.0) > asked

    async def _exchange_loop(self) -> None:
        while True:
            async with trio.open_nursery() as nursery:
                for health in self._peers.health():
                    if health.state == LinkState.CONNECTED and self._stale(
                        health.peer_id, health.since
                    ):
                        nursery.start_soon(self._exchange, health.peer_id)
            for pid in list(self._info):
                if not self._peers_has(pid):
                    del self._info[pid]  # removed from the allow-list
                    self._asked.pop(pid, None)
            if self._needs_readdress:
                self._needs_readdress = False
                await self._undo_kernel()
                await self._apply_kernel()
            await trio.sleep(INFO_POLL)

    def _peers_has(self, peer_id: str) -> bool:
        try:
            self._peers.link(peer_id)
        except KeyError:
            return False
        return True

    # --- carrying: the dialing side --------------------------------------------------------------

    async def _on_intercepted(self, sock: trio.SocketStream) -> None:
        try:
            with socket.fromfd(sock.socket.fileno(), socket.AF_INET, socket.SOCK_STREAM) as dup:
                dst, port = overlay_kernel.original_destination(dup)
        except OSError:
            reset_socket(sock)  # connected to the intercept port directly: nothing to carry
            return
        if not ray_port_allowed(port):
            self._refused[REFUSED_PORT] += 1
            log.info("overlay: refused a local connection to %s:%d (not a Ray port)", dst, port)
            reset_socket(sock)
            return
        hop = self._route(dst)
        if hop is None or self.address is None:
            self._refused[REFUSED_ROUTE] += 1
            log.info("overlay: no route to %s", dst)
            reset_socket(sock)
            return
        assert self._host is not None
        host, peer = self._host, ID.from_base58(hop)

        async def open_stream() -> INetStream:
            return await host.new_stream(peer, [TProtocol(OVERLAY_PROTOCOL)])

        self._carried += 1
        self._active += 1
        try:
            why = await forward_connection(
                sock, open_stream, f"{self.address} {dst} {port}", self._peers.counters(hop)
            )
        finally:
            self._active -= 1
        if why:
            log.info("overlay connection to %s:%d ended: %s", dst, port, why)

    # --- carrying: the serving side (and the hub) ------------------------------------------------

    async def _on_carried_stream(self, stream: INetStream) -> None:
        sender_id = stream.muxed_conn.peer_id
        sender = str(sender_id)
        if not self._peers.allowed(sender_id):
            await reset_stream(stream)
            return
        header = await read_header(stream)
        if header is None:
            return
        text, rest = header
        if self.address is None:
            await refuse(stream, "the overlay is off on this peer")
            return
        try:
            src, dst, port_text = text.split(" ")
            port = int(port_text)
            ipaddress.IPv4Address(src)
            ipaddress.IPv4Address(dst)
        except ValueError:
            await refuse(stream, "bad overlay header")
            return
        if not ray_port_allowed(port):
            self._refused[REFUSED_PORT] += 1
            await refuse(stream, f"port {port} is not a Ray port")
            return
        if sender not in self._info:
            await self._exchange(sender)
        info = self._info.get(sender)
        own = info is not None and src == info.address
        relayed_for = info is not None and src in info.reaches.values()
        counters = self._peers.counters(sender)
        if dst == self.address:
            if not (own or relayed_for):
                self._refused[REFUSED_SPOOF] += 1
                log.warning("overlay: peer %s claimed source %s; refused", sender, src)
                await refuse(stream, f"source {src} is not yours")
                return
            self._carried += 1
            self._active += 1
            try:
                await connect_and_splice(
                    stream, (dst, port), rest, counters, label=f"overlay port {port}"
                )
            finally:
                self._active -= 1
            return
        if not own:
            self._refused[REFUSED_SPOOF] += 1
            await refuse(stream, f"source {src} is not yours (a hub relays only its sender's)")
            return
        await self._relay(stream, sender, text, rest, dst, counters)

    async def _relay(
        self,
        inbound: INetStream,
        sender: str,
        header: str,
        rest: bytes,
        dst: str,
        counters: LinkCounters,
    ) -> None:
        target = next(
            (
                pid
                for pid, info in self._info.items()
                if info.address == dst and pid != sender and self._connected(pid)
            ),
            None,
        )
        if target is None:
            self._refused[REFUSED_ROUTE] += 1
            await refuse(inbound, f"no route to {dst} from this hub")
            return
        assert self._host is not None
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                outbound = await self._host.new_stream(
                    ID.from_base58(target), [TProtocol(OVERLAY_PROTOCOL)]
                )
        except Exception as exc:
            await refuse(inbound, f"hub cannot reach {dst}: {describe(exc)}")
            return
        self._carried += 1
        self._active += 1
        try:
            why = await relay_streams(
                inbound, outbound, counters, initial=header.encode() + b"\n" + rest
            )
        finally:
            self._active -= 1
        if why:
            log.info("overlay relay %s -> %s ended: %s", sender, dst, why)
