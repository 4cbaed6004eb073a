"""Invites on the wire: the head's book of issued invites, the door it opens for their holders,
and the box's side of `/raytui/invite/1.0.0`. The line format is model/invite.py.

The book (`InviteBook`). `raytui invite` mints a secret `<invite ID>.<key>` (64-bit ID, 256-bit
key); the daemon stores the ID, a random 128-bit salt, HMAC-SHA256(salt, key) and the expiry in
proxy.json, never the secret, and hands the line out once. Redeeming checks, in this order: the
ID is known, the key matches (constant-time), it is unused, it is unexpired; only then is it
marked used (before any await, so two holders racing cannot both win) and saved. Records are
pruned a day after they expire: until then a second use hears "already used" or "expired".

The door (`InviteDoor`). The head checks the allow-list inside the Noise handshake
(proxy/host.py): a box that is not on it cannot connect at all, and the invite is how it gets on
it. So, while the door is open, an unknown peer ID is let in on probation:
- the door is open while an invite is active, and for DOOR_GRACE after the last one was used or
  expired (so a late or second use hears why it is refused); with no invite in that window, an
  unknown peer is refused at the handshake exactly as before;
- at most MAX_PROBATION unknown peers at once and MAX_ADMITS_PER_MINUTE new ones a minute
  (over that: refused at the handshake, counted "rate limited");
- on its connection the peer may negotiate only the invite protocol (handlers.guard_streams):
  the tunnel, token, ray-head, overlay, overlay-info protocols and the library's own ping and
  identify answer "na" as if they did not exist, and their handlers never run (each also checks
  the allow-list itself);
- trying any of those (the library's automatic identify aside: every libp2p host sends one on
  connect) closes the connection and is counted; so does a failed proof; a peer that proves
  nothing within PROOF_TIMEOUT is disconnected and counted ("no proof in time");
- one invite stream per admission (a second one, even concurrent, is refused as a garbled
  proof and drops the peer); a failed proof disconnects it, so every guess costs a new
  handshake under the rate limit (and the key has 256 bits).
A valid proof puts the box's peer ID (authenticated by Noise, so exactly the machine that holds
the secret) on the allow-list under the name it sent (sanitized, made unique), and from then on
it is an ordinary allowed peer. Counts are in `proxy status --json` under `invites`.

The box (`present`). The box's daemon lets the invite's head through its own handshake check
for this one dial (`InviteDoor.dialing`; until the head is on the box's allow-list its streams
to the box are gated to the invite protocol too), dials the invite's addresses, opens the invite
protocol and sends `{"secret": ..., "name": <its host name>}`, only to the invite's peer ID,
which Noise proves, so a machine in the middle never sees the secret. The head answers one line,
`{"ok": true, "name": <the box's name there>, "head": <the head's host name>}` or
`{"ok": false, "reason": <InviteRefusal>, "error": <message>}`. The box then allow-lists the
head under that name.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping

import multiaddr
import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL
from libp2p.identity.identify_push.identify_push import ID_PUSH as IDENTIFY_PUSH_PROTOCOL
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from raytui.errors import RaytuiError
from raytui.model.invite import (
    INVITE_PROTOCOL,
    REFUSAL_MESSAGES,
    Invite,
    InviteRefusal,
    describe_expiry,
    sanitize_name,
    unique_name,
)
from raytui.model.peers import InviteStatus
from raytui.proxy.peers import DIAL_TIMEOUT, PeerManager, describe
from raytui.proxy.store import InviteEntry
from raytui.proxy.tunnel import read_line, reset_stream

log = logging.getLogger(__name__)

Clock = Callable[[], float]

DOOR_GRACE = 15 * 60.0  # the door stays open this long after the last invite ended
RETAIN = 86400.0  # records are kept this long after they expire
PROOF_TIMEOUT = 10.0  # an unknown peer proves an invite within this, or is disconnected
MAX_PROBATION = 16
MAX_ADMITS_PER_MINUTE = 30
MAX_PROOF = 1024  # bytes of the proof line
REPLY_TIMEOUT = 10.0
LINGER = 2.0  # after a refusal, wait this long for the box to read it and hang up
# Sent by every libp2p host on each new connection: refused quietly, not counted, not fatal.
_AUTOMATIC = frozenset({str(IDENTIFY_PROTOCOL), str(IDENTIFY_PUSH_PROTOCOL)})


def _digest(salt: bytes, key: str) -> str:
    return hmac.new(salt, key.encode(), hashlib.sha256).hexdigest()


def own_name() -> str:
    return sanitize_name(socket.gethostname(), "peer")


class InviteBook:
    """The invites this daemon issued, in `entries` (the stored state's list); `save` persists."""

    def __init__(
        self, entries: list[InviteEntry], save: Callable[[], None], clock: Clock = time.time
    ) -> None:
        self._entries = entries
        self._save = save
        self._clock = clock

    def mint(self, ttl: float) -> tuple[str, InviteEntry]:
        """A new invite valid for `ttl` seconds: (secret, its stored record)."""
        self.prune()
        invite_id, key = secrets.token_hex(8), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        entry = InviteEntry(invite_id, salt.hex(), _digest(salt, key), self._clock() + ttl)
        self._entries.append(entry)
        self._save()
        return f"{invite_id}.{key}", entry

    def redeem(self, secret: str, peer_id: str) -> InviteRefusal | None:
        """Consume the invite `secret` names for `peer_id`; None when accepted, else why not."""
        invite_id, dot, key = secret.partition(".")
        entry = next((e for e in self._entries if e.invite_id == invite_id), None)
        if entry is None or not dot:
            return InviteRefusal.UNKNOWN
        try:
            salt = bytes.fromhex(entry.salt)
        except ValueError:
            return InviteRefusal.UNKNOWN  # a hand-edited record
        if not hmac.compare_digest(_digest(salt, key), entry.digest):
            return InviteRefusal.WRONG
        if entry.used_by is not None:
            return InviteRefusal.USED
        now = self._clock()
        if now >= entry.expires:
            return InviteRefusal.EXPIRED
        entry.used_by, entry.used_at = peer_id, now
        self._save()
        return None

    def active(self) -> int:
        now = self._clock()
        return sum(1 for e in self._entries if e.used_by is None and now < e.expires)

    def door_open(self) -> bool:
        """An invite is active, or one ended (used or expired) less than DOOR_GRACE ago."""
        now = self._clock()
        for e in self._entries:
            ended = e.expires if e.used_at is None else min(e.used_at, e.expires)
            if now < ended + DOOR_GRACE:
                return True
        return False

    def prune(self) -> None:
        now = self._clock()
        keep = [e for e in self._entries if now < e.expires + RETAIN]
        if len(keep) != len(self._entries):
            self._entries[:] = keep
            self._save()


class InviteDoor:
    """Lets unknown peers in on probation for the invite protocol (the module docstring), and
    serves that protocol. `dialing` holds heads whose invite this daemon is presenting."""

    def __init__(self, book: InviteBook, peers: PeerManager, clock: Clock = time.monotonic):
        self.book = book
        self._peers = peers
        self._clock = clock
        self._host: IHost | None = None
        self._nursery: trio.Nursery | None = None
        self._probation: dict[str, float] = {}  # peer ID -> deadline
        self._admits: deque[float] = deque()
        self._tried: set[str] = set()  # peers on probation that opened an invite stream
        self.dialing: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.accepted = 0

    # --- the handshake and the stream gate (synchronous, no I/O) -------------------------------

    def admit(self, peer: ID, direction: str) -> bool:
        """proxy.host.Probation.admit: may this peer, not on the allow-list, connect?"""
        key = str(peer)
        if direction == "outbound":
            return key in self.dialing
        if key in self._probation:
            return True  # a second connection of a peer already on probation
        if not self.book.door_open():
            return False
        now = self._clock()
        while self._admits and self._admits[0] < now - 60:
            self._admits.popleft()
        if len(self._probation) >= MAX_PROBATION or len(self._admits) >= MAX_ADMITS_PER_MINUTE:
            self.refused[InviteRefusal.RATE] += 1
            log.warning("invite door: refused peer %s (rate limit)", key)
            return False
        self._admits.append(now)
        self._probation[key] = now + PROOF_TIMEOUT
        self._tried.discard(key)  # a new admission buys one new proof
        log.info("invite door: peer %s on probation (invite protocol only)", key)
        return True

    def stream_refused(self, peer: ID, proposed: tuple[str, ...]) -> None:
        """proxy.host.Probation.refused: a peer not on the list asked for other protocols."""
        if not proposed or set(proposed) <= _AUTOMATIC:
            return
        key = str(peer)
        if key in self.dialing:
            return  # the head we are presenting an invite to: it is about to be allowed
        self.refused[InviteRefusal.PROTOCOL] += 1
        log.warning("invite door: peer %s tried %s before proving an invite", key, proposed)
        self._drop(key)

    def status(self) -> InviteStatus:
        return InviteStatus(
            active=self.book.active(),
            door_open=self.book.door_open(),
            probation=len(self._probation),
            accepted=self.accepted,
            refused=dict(self.refused),
        )

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self, host: IHost) -> None:
        """Disconnect peers on probation whose deadline passed; prune old records."""
        self._host = host
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._sweep(host)

    async def _sweep(self, host: IHost) -> None:
        last_prune = -RETAIN
        while True:
            now = self._clock()
            for key, deadline in list(self._probation.items()):
                if self._peers.allowed(ID.from_base58(key)):
                    del self._probation[key]
                elif now >= deadline:
                    if host.get_network().get_connections(ID.from_base58(key)):
                        self.refused[InviteRefusal.TIMEOUT] += 1
                        log.warning("invite door: peer %s proved nothing in time", key)
                    self._drop(key)
            for key in list(self._tried):
                if key not in self._probation and not host.get_network().get_connections(
                    ID.from_base58(key)
                ):
                    self._tried.discard(key)
            if now - last_prune > 3600:
                self.book.prune()
                last_prune = now
            await trio.sleep(0.5)

    def _drop(self, key: str) -> None:
        """End probation and close the peer's connections (unless it got allowed meanwhile)."""
        self._probation.pop(key, None)
        peer = ID.from_base58(key)
        if self._host is None or self._nursery is None or self._peers.allowed(peer):
            return
        host = self._host

        async def close() -> None:
            with trio.move_on_after(5), contextlib.suppress(Exception):
                await host.disconnect(peer)

        self._nursery.start_soon(close)

    # --- the head's side of the protocol -------------------------------------------------------

    async def handle(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        key = str(peer)
        if not self._peers.allowed(peer):
            if key in self._tried:  # one proof per admission, however many streams it opens
                self.refused[InviteRefusal.GARBLED] += 1
                await reset_stream(stream)
                self._drop(key)
                return
            self._tried.add(key)
        try:
            with trio.fail_after(PROOF_TIMEOUT):
                line, _ = await read_line(stream, max_len=MAX_PROOF)
            msg = json.loads(line)
            secret, name = msg["secret"], msg.get("name")
            if not isinstance(secret, str) or not (name is None or isinstance(name, str)):
                raise ValueError("bad field types")
        except Exception as exc:
            await reset_stream(stream)
            if self._peers.allowed(peer) or key in self._probation:
                log.warning("invite from %s: garbled proof (%s)", key, describe(exc))
                self.refused[InviteRefusal.GARBLED] += 1
                self._drop(key)
            # else the peer was dropped meanwhile, for a reason already counted
            return
        why = self.book.redeem(secret, key)
        if why is not None:
            self.refused[why] += 1
            log.warning("invite from %s refused: %s", key, why.value)
            reply = {"ok": False, "reason": why.value, "error": REFUSAL_MESSAGES[why]}
            await self._reply(stream, reply)
            self._drop(key)
            return
        wanted = unique_name(sanitize_name(name, "box"), self._peers.names())
        entry = self._peers.allow(key, wanted, [])
        self._probation.pop(key, None)
        self.accepted += 1
        log.info("invite accepted: peer %s allow-listed as %s", key, entry.name)
        await self._reply(stream, {"ok": True, "name": entry.name, "head": own_name()})

    async def _reply(self, stream: INetStream, reply: Mapping[str, object]) -> None:
        try:
            await stream.write(json.dumps(reply).encode() + b"\n")
            await stream.close()
            # Give the box time to read the answer before a refusal closes the connection: a
            # socket closed with unread input is reset, which can discard the answer in flight.
            with trio.move_on_after(LINGER):
                while await stream.read(4096):
                    pass
        except Exception:
            await reset_stream(stream)


# --- the box's side ----------------------------------------------------------------------------


def _refused_at_handshake(exc: BaseException) -> bool:
    text = describe(exc)
    return "hung up after the handshake" in text


async def present(host: IHost, invite: Invite, name: str) -> dict[str, object]:
    """Dial the invite's head and prove the invite; the head's accepting reply, or RaytuiError
    with one line saying why not. The caller lets the head through its handshake check."""
    pid = ID.from_base58(invite.peer_id)
    addrs = [multiaddr.Multiaddr(a) for a in invite.transports()]
    unblock = getattr(host.get_network(), "unblock_peer", None)
    if unblock is not None:
        unblock(pid)
    try:
        with trio.fail_after(DIAL_TIMEOUT):
            await host.connect(PeerInfo(pid, addrs))
    except Exception as exc:
        raise RaytuiError(_dial_failure(exc, invite)) from exc
    try:
        with trio.fail_after(REPLY_TIMEOUT):
            stream = await host.new_stream(pid, [TProtocol(INVITE_PROTOCOL)])
            await stream.write(json.dumps({"secret": invite.secret, "name": name}).encode() + b"\n")
            line, _ = await read_line(stream, max_len=4096)
    except Exception as exc:
        raise RaytuiError(
            f"the head did not take the invite: {describe(exc)} (is its raytui older than "
            "this one? then update it and make a new invite)"
        ) from exc
    with contextlib.suppress(Exception):
        await stream.close()
    try:
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise RaytuiError(f"garbled answer from the head: {exc}") from exc
    if reply.get("ok") is not True:
        error = str(reply.get("error") or reply.get("reason") or "no reason given")
        raise RaytuiError(f"the head refused the invite: {error}")
    return reply


def _dial_failure(exc: BaseException, invite: Invite) -> str:
    where = ", ".join(invite.transports())
    if _refused_at_handshake(exc):
        when = ""
        if invite.expires is not None and invite.expires <= time.time():
            when = f"; this invite expired {describe_expiry(invite.expires)}"
        return (
            "the head closed the connection before the invite could be checked: it has no "
            f"invite open (expired, used, or made by another daemon){when}; ask for a new one: "
            "`raytui invite` on the head"
        )
    return f"cannot reach the head at {where}: {describe(exc)}"
