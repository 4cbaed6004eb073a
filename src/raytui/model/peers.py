"""Peers, tunnels and the proxy daemon's status as frozen snapshots, plus multiaddr validation.

No I/O and no trio/libp2p imports: the TUI, the CLI and the control client all use these.
Every type converts to and from the plain dicts that travel over the control socket
(`to_dict` / `from_dict`), which are also what `--json` prints.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from raytui.errors import UsageError
from raytui.model.overlay import JoinStatus, OverlayStatus

TUNNEL_PROTOCOL = "/raytui/tcp/1.0.0"
TOKEN_PROTOCOL = "/raytui/token/1.0.0"

# The services a Ray head exposes for a remote console (`raytui proxy expose --ray-head`).
RAY_DASHBOARD = "ray-dashboard"
RAY_CLIENT = "ray-client"
RAY_GCS = "ray-gcs"
RAY_HEAD_PORTS: dict[str, int] = {RAY_DASHBOARD: 8265, RAY_CLIENT: 10001, RAY_GCS: 6379}

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class LinkState(StrEnum):
    CONNECTED = "connected"
    CONNECTING = "connecting"
    DOWN = "down"


def short_peer_id(peer_id: str) -> str:
    """`12D3KooW…` ids share their first 8 characters; show the distinctive tail."""
    return peer_id if len(peer_id) <= 12 else f"…{peer_id[-8:]}"


@dataclass(frozen=True)
class PeerHealth:
    peer_id: str
    name: str | None
    addrs: tuple[str, ...]
    state: LinkState
    rtt_ms: float | None
    reconnects: int
    active_streams: int
    bytes_in: int
    bytes_out: int
    last_error: str | None
    since: float | None  # unix time of the last state change

    @property
    def label(self) -> str:
        return self.name or short_peer_id(self.peer_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "name": self.name,
            "addrs": list(self.addrs),
            "state": self.state.value,
            "rtt_ms": self.rtt_ms,
            "reconnects": self.reconnects,
            "active_streams": self.active_streams,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "last_error": self.last_error,
            "since": self.since,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PeerHealth:
        return cls(
            peer_id=str(d["peer_id"]),
            name=d.get("name"),
            addrs=tuple(str(a) for a in d.get("addrs", ())),
            state=LinkState(d.get("state", "down")),
            rtt_ms=None if d.get("rtt_ms") is None else float(d["rtt_ms"]),
            reconnects=int(d.get("reconnects", 0)),
            active_streams=int(d.get("active_streams", 0)),
            bytes_in=int(d.get("bytes_in", 0)),
            bytes_out=int(d.get("bytes_out", 0)),
            last_error=d.get("last_error"),
            since=None if d.get("since") is None else float(d["since"]),
        )


@dataclass(frozen=True)
class Service:
    """A local target this daemon offers to allowed peers under a name."""

    name: str
    target: str  # host:port, chosen on this machine

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Service:
        return cls(name=str(d["name"]), target=str(d["target"]))


@dataclass(frozen=True)
class Forward:
    """A local listener whose connections each become one stream to a peer's service."""

    peer_id: str
    service: str
    bind: str  # host:port actually bound
    active: int = 0
    error: str | None = None  # why the listener is not running, if it is not

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "service": self.service,
            "bind": self.bind,
            "active": self.active,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Forward:
        return cls(
            peer_id=str(d["peer_id"]),
            service=str(d["service"]),
            bind=str(d["bind"]),
            active=int(d.get("active", 0)),
            error=d.get("error"),
        )


@dataclass(frozen=True)
class InviteStatus:
    """The head's invites (model/invite.py): how many are open and what was refused, by reason
    (`InviteRefusal` values: wrong, reused and expired secrets, unknown peers that proved nothing
    or tried other protocols, rate limits)."""

    active: int = 0  # unused and unexpired
    door_open: bool = False  # unknown peers may connect, for the invite protocol only
    probation: int = 0  # unknown peers connected now, given a few seconds to prove an invite
    accepted: int = 0  # invites redeemed since the daemon started
    refused: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "door_open": self.door_open,
            "probation": self.probation,
            "accepted": self.accepted,
            "refused": dict(self.refused),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InviteStatus:
        return cls(
            active=int(d.get("active", 0)),
            door_open=bool(d.get("door_open", False)),
            probation=int(d.get("probation", 0)),
            accepted=int(d.get("accepted", 0)),
            refused={str(k): int(v) for k, v in d.get("refused", {}).items()},
        )


@dataclass(frozen=True)
class DaemonStatus:
    peer_id: str
    addrs: tuple[str, ...]  # full multiaddrs ending in /p2p/<peer_id>, ready to paste
    pid: int
    uptime_s: float
    share_token: bool
    refused: int  # connections refused because the peer is not on the allow-list
    peers: tuple[PeerHealth, ...]
    services: tuple[Service, ...]
    forwards: tuple[Forward, ...]
    overlay: OverlayStatus = field(default_factory=lambda: OverlayStatus.from_dict({}))
    join: JoinStatus | None = None  # the Ray node `raytui join` started, if any
    invites: InviteStatus = field(default_factory=InviteStatus)

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "addrs": list(self.addrs),
            "pid": self.pid,
            "uptime_s": self.uptime_s,
            "share_token": self.share_token,
            "refused": self.refused,
            "peers": [p.to_dict() for p in self.peers],
            "services": [s.to_dict() for s in self.services],
            "forwards": [f.to_dict() for f in self.forwards],
            "overlay": self.overlay.to_dict(),
            "join": None if self.join is None else self.join.to_dict(),
            "invites": self.invites.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DaemonStatus:
        return cls(
            peer_id=str(d["peer_id"]),
            addrs=tuple(str(a) for a in d.get("addrs", ())),
            pid=int(d.get("pid", 0)),
            uptime_s=float(d.get("uptime_s", 0.0)),
            share_token=bool(d.get("share_token", False)),
            refused=int(d.get("refused", 0)),
            peers=tuple(PeerHealth.from_dict(p) for p in d.get("peers", ())),
            services=tuple(Service.from_dict(s) for s in d.get("services", ())),
            forwards=tuple(Forward.from_dict(f) for f in d.get("forwards", ())),
            overlay=OverlayStatus.from_dict(d.get("overlay") or {}),
            join=None if d.get("join") is None else JoinStatus.from_dict(d["join"]),
            invites=InviteStatus.from_dict(d.get("invites") or {}),
        )

    def peer(self, key: str) -> PeerHealth | None:
        """The peer whose ID or name is `key`."""
        for p in self.peers:
            if key in (p.peer_id, p.name):
                return p
        return None


@dataclass(frozen=True)
class ConsoleEndpoints:
    """Local ends of the forwards to a remote Ray head, for `raytui --via PEER`.

    `token` is the head's Ray auth token when the head shares it (`expose --share-token`),
    else None (then the user supplies `RAY_AUTH_TOKEN` themselves, or the head has no auth).
    """

    peer_id: str
    dashboard_url: str  # http://127.0.0.3:PORT
    gcs_address: str  # 127.0.0.3:PORT
    client_address: str  # ray://127.0.0.3:PORT
    token: str | None
    # The GCS to attach a driver to, when this machine is a node of that cluster over the
    # overlay (results stream); None: only Ray Client, which cannot stream.
    driver_address: str | None = None
    node_ip: str | None = None  # this machine's node in that cluster (for the driver to find)
    overlay: bool = False  # the addresses are the head's own, reached over the overlay

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "dashboard_url": self.dashboard_url,
            "gcs_address": self.gcs_address,
            "client_address": self.client_address,
            "token": self.token,
            "driver_address": self.driver_address,
            "node_ip": self.node_ip,
            "overlay": self.overlay,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConsoleEndpoints:
        return cls(
            peer_id=str(d["peer_id"]),
            dashboard_url=str(d["dashboard_url"]),
            gcs_address=str(d["gcs_address"]),
            client_address=str(d["client_address"]),
            token=d.get("token"),
            driver_address=d.get("driver_address"),
            node_ip=d.get("node_ip"),
            overlay=d.get("overlay") is True,
        )


# --- validation -------------------------------------------------------------------------------


def check_service_name(name: str) -> str:
    """Service names travel in the tunnel header: short, no spaces or newlines."""
    if not _SERVICE_NAME.match(name):
        raise UsageError(
            f"bad service name {name!r}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


MAX_PEER_NAME = 64


def check_peer_name(name: str) -> str:
    """A peer's name shows in tables and goes on command lines (`--via NAME`): one line of
    printable characters, no leading or trailing space, at most MAX_PEER_NAME characters."""
    if not name or name != name.strip():
        raise UsageError(f"bad peer name {_shown(name)}: empty, or spaces at either end")
    if len(name) > MAX_PEER_NAME:
        raise UsageError(f"bad peer name {_shown(name)}: longer than {MAX_PEER_NAME} characters")
    if any(not ch.isprintable() for ch in name):
        raise UsageError(
            f"bad peer name {_shown(name)}: control characters, line breaks or invisible "
            "formatting characters"
        )
    return name


def parse_host_port(text: str, *, default_host: str | None = None) -> tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT`, or `PORT` alone when `default_host` is given."""
    text = text.strip()
    host: str | None
    if text.startswith("["):
        host, sep, port_s = text[1:].partition("]:")
        if not sep:
            raise UsageError(f"bad address {text!r}: expected [IPV6]:PORT")
    elif ":" in text:
        host, _, port_s = text.rpartition(":")
    else:
        host, port_s = default_host, text
    if not host:
        raise UsageError(f"bad address {text!r}: expected HOST:PORT")
    if not (port_s.isascii() and port_s.isdigit()) or not 0 <= int(port_s) <= 65535:
        raise UsageError(f"bad address {text!r}: port must be a number from 0 to 65535")
    return host, int(port_s)


MAX_HOSTNAME = 253  # characters, as DNS allows
_HOSTNAME_ASCII = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _shown(text: str, limit: int = 60) -> str:
    """`text` for a one-line message: repr (control characters escaped), shortened."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text)} characters)"


def check_target(text: str) -> tuple[str, int]:
    """A service target, `HOST:PORT` or `[IPV6]:PORT`: an IP address or a hostname that can be
    resolved as written (at most 253 characters, letters, digits, '.', '_' and '-', IDNA-encodable
    when not ASCII, no empty label), port 1-65535. Anything else is a UsageError saying why.

    The serving side checks a stored target again before it connects, so a bad one in the
    state file refuses that service's streams instead of failing somewhere in the resolver."""
    if len(text) > MAX_HOSTNAME + 10:
        raise UsageError(f"bad target {_shown(text)}: longer than a HOST:PORT can be")
    host, port = parse_host_port(text)
    if not 1 <= port <= 65535:
        raise UsageError(f"bad target {_shown(text)}: port must be a number from 1 to 65535")
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        pass
    why = None
    if len(host) > MAX_HOSTNAME:
        why = f"the host is longer than {MAX_HOSTNAME} characters"
    elif any(not ch.isprintable() or ch.isspace() for ch in host):
        why = "the host contains spaces or control characters"
    else:
        try:
            encoded = host.encode("idna").decode("ascii")
        except UnicodeError:
            why = "the host has an empty or over-long label (at most 63 characters between dots)"
        else:
            if len(encoded) > MAX_HOSTNAME or not _HOSTNAME_ASCII.match(encoded):
                why = "a host is an IP address or a name of letters, digits, '.', '_' and '-'"
    if why:
        raise UsageError(f"bad target {_shown(text)}: {why}")
    return host, port


@dataclass(frozen=True)
class PeerAddress:
    """A validated `/ip4|ip6|dns*/HOST/tcp/PORT/p2p/PEER_ID` multiaddr."""

    multiaddr: str  # normalised, with /p2p/
    transport: str  # without /p2p/
    peer_id: str


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def _b58decode(text: str) -> bytes | None:
    num = 0
    for ch in text:
        digit = _B58_INDEX.get(ch)
        if digit is None:
            return None
        num = num * 58 + digit
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\x00" * pad + body


def check_peer_id(text: str) -> str:
    """A base58btc multihash peer ID (`12D3KooW…` for Ed25519 keys, `Qm…` for hashed keys)."""
    if not text:
        raise UsageError("missing peer ID after /p2p/")
    if text.startswith(("bafz", "k51")):
        raise UsageError(
            f"peer ID {text!r} is in CID form; paste the base58 form (12D3KooW… or Qm…) "
            "that `raytui proxy status` prints"
        )
    raw = _b58decode(text)
    if raw is None:
        bad = sorted({c for c in text if c not in _B58_INDEX})
        raise UsageError(
            f"peer ID {text!r} is not base58 (bad characters: {''.join(bad)!r}); "
            "copy it again from `raytui proxy status` on the other machine"
        )
    ok = (len(raw) >= 2 and raw[0] == 0x00 and raw[1] == len(raw) - 2 and raw[1] <= 42) or (
        len(raw) == 34 and raw[0] == 0x12 and raw[1] == 0x20
    )
    if not ok:
        raise UsageError(
            f"peer ID {text!r} is not a valid libp2p peer ID (wrong length or hash); "
            "was it cut short when copying?"
        )
    return text


def parse_peer_multiaddr(text: str) -> PeerAddress:
    """Validate what a user pasted; every failure is a UsageError saying what to fix."""
    text = text.strip()
    example = "/ip4/203.0.113.7/tcp/4701/p2p/12D3KooW…"
    if not text:
        raise UsageError(f"empty address; expected a multiaddr like {example}")
    if not text.startswith("/"):
        raise UsageError(f"{text!r} is not a multiaddr; expected one like {example}")
    parts = text.split("/")[1:]
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if len(parts) < 2:
        raise UsageError(f"{text!r} is incomplete; expected one like {example}")
    kind, host = parts[0], parts[1]
    if kind == "ip4":
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise UsageError(f"{host!r} is not an IPv4 address (in {text!r})") from None
    elif kind == "ip6":
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"{host!r} is not an IPv6 address (in {text!r})") from None
    elif kind in ("dns", "dns4", "dns6"):
        if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$", host):
            raise UsageError(f"{host!r} is not a host name (in {text!r})")
    else:
        raise UsageError(
            f"{text!r} must start with /ip4/, /ip6/ or /dns/ (got /{kind}/); "
            f"expected one like {example}"
        )
    rest = parts[2:]
    if len(rest) < 2 or rest[0] != "tcp":
        raise UsageError(f"{text!r} has no /tcp/PORT; expected one like {example}")
    if not (rest[1].isascii() and rest[1].isdigit()) or not 1 <= int(rest[1]) <= 65535:
        raise UsageError(f"bad TCP port {rest[1]!r} in {text!r}")
    rest = rest[2:]
    if not rest:
        raise UsageError(
            f"{text!r} has no /p2p/PEER_ID at the end: without it the peer cannot be "
            "authenticated; copy the full address from `raytui proxy status`"
        )
    if rest[0] not in ("p2p", "ipfs"):
        raise UsageError(
            f"unsupported part /{rest[0]}/ in {text!r}: only TCP addresses ending in "
            "/p2p/PEER_ID are supported"
        )
    if len(rest) == 1:
        raise UsageError(f"missing peer ID after /p2p/ in {text!r}")
    if len(rest) != 2:
        raise UsageError(f"{text!r} must end right after /p2p/PEER_ID")
    peer_id = check_peer_id(rest[1])
    transport = f"/{kind}/{host}/tcp/{int(parts[3])}"
    return PeerAddress(multiaddr=f"{transport}/p2p/{peer_id}", transport=transport, peer_id=peer_id)


def multiaddr_error(text: str) -> str | None:
    """For validate-as-you-type: None when `text` is a usable peer multiaddr, else why not."""
    try:
        parse_peer_multiaddr(text)
    except UsageError as exc:
        return str(exc)
    return None
