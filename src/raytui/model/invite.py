"""Invites: one pasted line that lets one machine allow-list itself on a head and join its Ray
cluster (`raytui invite` on the head, `raytui join INVITE` on the box). No I/O.

The line is `raytui1:` followed by the unpadded base64url encoding of a compact JSON object:

    {"peer_id": "12D3KooW…",                      the head's daemon
     "addrs": ["/ip4/…/tcp/4701/p2p/12D3KooW…"],   where to dial it (never overlay addresses)
     "secret": "<16 hex>.<43 base64url>",          invite ID, a dot, 256 random bits
     "expires": 1767225600}                         unix time; informative, the head decides

`raytui1` is the format's version: a later format changes the digit, and an older raytui says
"update raytui" instead of "garbled". The line holds no spaces, quotes or shell characters, so it
survives a paste into a shell unquoted; whitespace inside it (a terminal that wrapped the line)
and surrounding quotes or angle brackets are ignored when it is read back. JSON inside base64 keeps
the line opaque (nobody edits one field) and any cut-short copy fails to decode as a whole,
with one clear message, instead of joining somewhere else.

The head keeps only the invite ID, a per-invite random salt and HMAC-SHA256(salt, key) of the
secret's key part, with the expiry (proxy/invite.py). The key is 256 random bits: a salted
hash cannot be brute-forced, so no slow KDF is needed.

`INVITE_PROTOCOL` is the one protocol a peer that is not on the allow-list may open, and only
while the head has an invite open (proxy/invite.py explains the door).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from raytui.errors import UsageError
from raytui.model.peers import check_peer_id, parse_peer_multiaddr

INVITE_PROTOCOL = "/raytui/invite/1.0.0"
VERSION = 1
PREFIX = f"raytui{VERSION}:"
MAX_LINE = 8192  # characters: a head with many addresses stays far below
MAX_ADDRS = 8
DEFAULT_EXPIRES_S = 3600.0
MIN_EXPIRES_S = 1.0
MAX_EXPIRES_S = 30 * 86400.0
MAX_NAME = 32

_LOOKS = re.compile(r"^\s*['\"<]?\s*raytui\d+:", re.IGNORECASE)
_HEAD = re.compile(r"^raytui(\d+):(.*)$", re.DOTALL)
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_SECRET = re.compile(r"^[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NAME_BAD = re.compile(r"[^A-Za-z0-9._-]+")

GARBLED = (
    "the invite is garbled or cut short: copy the whole line that `raytui invite` printed "
    "on the head (it starts with raytui1:)"
)


class InviteRefusal(StrEnum):
    """Why the head refused an invite or an unknown peer; the keys of `InviteStatus.refused`."""

    UNKNOWN = "unknown invite"  # no such invite ID on this head (forged, or another head's)
    WRONG = "wrong secret"  # the ID exists, the key does not match (forged)
    USED = "already used"
    EXPIRED = "expired"
    GARBLED = "garbled proof"  # not a proof message at all
    TIMEOUT = "no proof in time"  # an unknown peer connected and proved nothing
    PROTOCOL = "other protocol before proof"  # an unknown peer tried a protocol besides invite
    RATE = "rate limited"  # too many unknown peers at once or per minute


# What the box shows after "the head refused the invite: ".
REFUSAL_MESSAGES: dict[InviteRefusal, str] = {
    InviteRefusal.UNKNOWN: "no such invite was made there (forged, made by another daemon, or "
    "expired long ago); ask for a new one: `raytui invite` on the head",
    InviteRefusal.WRONG: "its secret is wrong (forged or altered); copy the whole line again, "
    "or ask for a new one: `raytui invite` on the head",
    InviteRefusal.USED: "it was already used (an invite lets one machine in, once); ask for a "
    "new one: `raytui invite` on the head",
    InviteRefusal.EXPIRED: "it has expired; ask for a new one: `raytui invite` on the head",
    InviteRefusal.GARBLED: "the proof was garbled",
    InviteRefusal.TIMEOUT: "no proof arrived in time",
    InviteRefusal.PROTOCOL: "only the invite protocol is open before an invite is proved",
    InviteRefusal.RATE: "too many unknown peers are trying invites right now; try again later",
}


@dataclass(frozen=True)
class Invite:
    """A parsed invite line. `addrs` are full multiaddrs ending in /p2p/`peer_id`."""

    peer_id: str
    addrs: tuple[str, ...]
    secret: str  # "<invite ID>.<key>": sent as is to the head, over Noise, to its peer ID
    expires: float | None = None

    @property
    def invite_id(self) -> str:
        return self.secret.partition(".")[0]

    def line(self) -> str:
        doc: dict[str, Any] = {"peer_id": self.peer_id, "addrs": list(self.addrs)}
        doc["secret"] = self.secret
        if self.expires is not None:
            doc["expires"] = int(self.expires)
        raw = json.dumps(doc, separators=(",", ":")).encode()
        return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def transports(self) -> list[str]:
        """The addresses without /p2p/ (what a dial and the allow-list store)."""
        return [parse_peer_multiaddr(a).transport for a in self.addrs]


def looks_like_invite(text: str) -> bool:
    """Whether `text` is meant as an invite (then `parse_invite` says what is wrong with it)
    rather than a peer ID, a name or a multiaddr."""
    return bool(_LOOKS.match(text))


def invite_error(text: str) -> str | None:
    """For validate-as-you-type: None when `text` is a readable invite line, else why not."""
    try:
        parse_invite(text)
    except UsageError as exc:
        return str(exc)
    return None


def _compact(text: str) -> str:
    text = "".join(text.split())  # a terminal may have wrapped the line when it was copied
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    return text


def parse_invite(text: str) -> Invite:
    """Read an invite line; every failure is a UsageError with one line saying what to do."""
    if len(text) > MAX_LINE:
        raise UsageError(f"that is not an invite: longer than {MAX_LINE} characters")
    compact = _compact(text)
    head = _HEAD.match(compact)
    if head is None:
        if compact.lower().startswith("raytui"):
            raise UsageError(GARBLED)
        raise UsageError(
            "that is not an invite: an invite is one line starting with raytui1: "
            "(printed by `raytui invite` on the head)"
        )
    version = int(head.group(1))
    if version != VERSION:
        raise UsageError(
            f"this invite has format {version}, this raytui reads format {VERSION}: "
            "update raytui on "
            + ("this machine" if version > VERSION else "the head, then make a new invite")
        )
    payload = head.group(2)
    if not _B64URL.match(payload):
        raise UsageError(GARBLED)
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        doc = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        raise UsageError(GARBLED) from None
    if not isinstance(doc, dict):
        raise UsageError(GARBLED)
    return _from_doc(doc)


def _from_doc(doc: dict[str, Any]) -> Invite:
    peer_id, addrs, secret = doc.get("peer_id"), doc.get("addrs"), doc.get("secret")
    expires = doc.get("expires")
    if not isinstance(peer_id, str) or not isinstance(secret, str) or not _SECRET.match(secret):
        raise UsageError(GARBLED)
    if not isinstance(addrs, list) or not addrs or len(addrs) > MAX_ADDRS:
        raise UsageError(GARBLED)
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
        raise UsageError(GARBLED)
    try:
        check_peer_id(peer_id)
        parsed = [parse_peer_multiaddr(a) if isinstance(a, str) else None for a in addrs]
    except UsageError:
        raise UsageError(GARBLED) from None
    if any(p is None or p.peer_id != peer_id for p in parsed):
        raise UsageError(GARBLED)
    return Invite(peer_id, tuple(p.multiaddr for p in parsed if p), secret, expires)


def parse_duration(text: str) -> float:
    """`30m`, `2h`, `1d`, `90s`, `1h30m` (or bare seconds) -> seconds, within the limits."""
    compact = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(\.\d+)?", compact):
        seconds = float(compact)
    elif compact and _DURATION.sub("", compact) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact))
    if seconds is None:
        raise UsageError(f"bad duration {text!r}: use e.g. 30m, 2h, 1d (s, m, h or d)")
    if not MIN_EXPIRES_S <= seconds <= MAX_EXPIRES_S:
        raise UsageError(f"bad duration {text!r}: from 1s to {MAX_EXPIRES_S / 86400:.0f}d")
    return seconds


def describe_expiry(expires: float, now: float | None = None) -> str:
    """`in 59 min (14:02)` / `2 h ago (14:02)` for messages."""
    now = time.time() if now is None else now
    left = expires - now
    span = abs(left)
    if span < 120:
        amount = f"{span:.0f} s"
    elif span < 7200:
        amount = f"{span / 60:.0f} min"
    elif span < 172800:
        amount = f"{span / 3600:.0f} h"
    else:
        amount = f"{span / 86400:.0f} days"
    clock = time.strftime("%Y-%m-%d %H:%M", time.localtime(expires))
    return f"in {amount} ({clock})" if left >= 0 else f"{amount} ago ({clock})"


def sanitize_name(text: str | None, fallback: str) -> str:
    """A peer name from what the other side sent (its host name): letters, digits, '.', '_'
    and '-', at most MAX_NAME characters; `fallback` when nothing usable is left."""
    cleaned = _NAME_BAD.sub("-", text or "").strip("-._")[:MAX_NAME].strip("-._")
    return cleaned or fallback


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base-2`, `base-3`, ... whichever is not in `taken`."""
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


@dataclass(frozen=True)
class IssuedInvite:
    """What `raytui invite` gets back from the daemon: the line to paste, once."""

    line: str
    invite_id: str
    expires: float
    warnings: tuple[str, ...] = ()  # why a join with it would not work yet (overlay off, ...)

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "invite_id": self.invite_id,
            "expires": self.expires,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IssuedInvite:
        return cls(
            line=str(d["line"]),
            invite_id=str(d["invite_id"]),
            expires=float(d["expires"]),
            warnings=tuple(str(w) for w in d.get("warnings", ())),
        )


@dataclass(frozen=True)
class Redeemed:
    """An invite the head accepted: both daemons have each other allow-listed under these names."""

    peer_id: str  # the head's daemon
    head_name: str  # the name this machine gave the head
    name: str  # the name the head gave this machine

    def to_dict(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id, "head_name": self.head_name, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Redeemed:
        return cls(peer_id=str(d["peer_id"]), head_name=str(d["head_name"]), name=str(d["name"]))
