"""The daemon's persistent settings: allow-listed peers and their addresses, exposed services,
forwards, listen addresses, token sharing, the overlay, the joined node, issued invites (hashed).
One JSON file in the config dir, mode 0600, replaced atomically so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from raytui import locations
from raytui.errors import RaytuiError

FILE_NAME = "proxy.json"


@dataclass
class PeerEntry:
    peer_id: str
    name: str | None = None
    addrs: list[str] = field(default_factory=list)  # transport multiaddrs, without /p2p/


@dataclass
class ForwardEntry:
    peer_id: str
    service: str
    bind: str  # host:port


@dataclass
class JoinEntry:
    """The Ray node `raytui join` asked for; the daemon starts it again after a restart."""

    role: str  # "worker" or "head"
    peer_id: str | None = None  # the head's daemon, for a worker
    gpus: int | None = None
    cpus: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "peer_id": self.peer_id, "gpus": self.gpus, "cpus": self.cpus}


@dataclass
class OverlayEntry:
    enabled: bool = False
    prefix: str = "100.64.0.0/10"
    index: int = 0  # collision counter of this daemon's overlay address

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "prefix": self.prefix, "index": self.index}


@dataclass
class InviteEntry:
    """One invite this daemon issued (proxy/invite.py): never the secret, only its salted HMAC."""

    invite_id: str
    salt: str  # hex, random per invite
    digest: str  # hex HMAC-SHA256(salt, the secret's key part)
    expires: float  # unix time
    used_by: str | None = None  # peer ID that redeemed it
    used_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "invite_id": self.invite_id,
            "salt": self.salt,
            "digest": self.digest,
            "expires": self.expires,
            "used_by": self.used_by,
            "used_at": self.used_at,
        }


@dataclass
class StoredState:
    peers: dict[str, PeerEntry] = field(default_factory=dict)  # by peer ID
    services: dict[str, str] = field(default_factory=dict)  # name -> host:port
    forwards: list[ForwardEntry] = field(default_factory=list)
    listen: list[str] = field(default_factory=list)
    share_token: bool = False
    overlay: OverlayEntry = field(default_factory=OverlayEntry)
    join: JoinEntry | None = None
    invites: list[InviteEntry] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "peers": [
                {"peer_id": p.peer_id, "name": p.name, "addrs": p.addrs}
                for p in self.peers.values()
            ],
            "services": dict(self.services),
            "forwards": [
                {"peer_id": f.peer_id, "service": f.service, "bind": f.bind} for f in self.forwards
            ],
            "listen": list(self.listen),
            "share_token": self.share_token,
            "overlay": self.overlay.to_json(),
            "join": None if self.join is None else self.join.to_json(),
            "invites": [i.to_json() for i in self.invites],
        }

    @classmethod
    def from_json(cls, raw: object) -> StoredState:
        """Checked key by key: a value of the wrong type is a `BadValue` naming its key, never
        coerced (`"false"` is not False). Unknown keys are ignored. One line per field."""
        top = _object("the top level", raw)
        return cls(
            peers={p.peer_id: p for p in _get(top, "peers", _list(_peer), list[PeerEntry]())},
            services=_get(top, "services", _dict(_str), {}),
            forwards=_get(top, "forwards", _list(_forward), []),
            listen=_get(top, "listen", _list(_str), []),
            share_token=_get(top, "share_token", _bool, False),
            overlay=_get(top, "overlay", _overlay, OverlayEntry()),
            join=_get(top, "join", _join, None),
            invites=_get(top, "invites", _list(_invite), []),
        )


# --- checked reading of the stored JSON ---------------------------------------------------------

T = TypeVar("T")
Check = Callable[[str, object], T]  # (where, value) -> the value, typed; BadValue if not


class BadValue(ValueError):
    """A stored value has the wrong type; `where` is its key path (`peers[0].addrs`)."""

    def __init__(self, where: str, expected: str, value: object, *, missing: bool = False) -> None:
        got = "nothing (the key is missing)" if missing else _kind(value)
        super().__init__(f"{where}: expected {expected}, got {got}")


def _kind(value: object) -> str:
    names = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), type(value).__name__)


def _get(raw: dict[str, object], key: str, check: Check[T], default: T, where: str = "") -> T:
    """`raw[key]` checked by `check`, or `default` when the key is absent."""
    if key not in raw:
        return default
    return check(f"{where}{key}", raw[key])


def _object(where: str, value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise BadValue(where, "a JSON object", value)
    return value


def _str(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise BadValue(where, "a string", value)
    return value


def _opt_str(where: str, value: object) -> str | None:
    return None if value is None else _str(where, value)


def _bool(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise BadValue(where, "true or false", value)
    return value


def _list(item: Check[T]) -> Check[list[T]]:
    def check(where: str, value: object) -> list[T]:
        if not isinstance(value, list):
            raise BadValue(where, "a list", value)
        return [item(f"{where}[{i}]", v) for i, v in enumerate(value)]

    return check


def _dict(item: Check[T]) -> Check[dict[str, T]]:
    def check(where: str, value: object) -> dict[str, T]:
        return {k: item(f"{where}.{k}", v) for k, v in _object(where, value).items()}

    return check


def _required(raw: dict[str, object], key: str, check: Check[T], where: str) -> T:
    if key not in raw:
        raise BadValue(f"{where}.{key}", "a value", None, missing=True)
    return check(f"{where}.{key}", raw[key])


def _peer(where: str, value: object) -> PeerEntry:
    raw = _object(where, value)
    return PeerEntry(
        peer_id=_required(raw, "peer_id", _str, where),
        name=_get(raw, "name", _opt_str, None, f"{where}."),
        addrs=_get(raw, "addrs", _list(_str), [], f"{where}."),
    )


def _int(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(where, "a whole number", value)
    return value


def _opt_int(where: str, value: object) -> int | None:
    return None if value is None else _int(where, value)


def _overlay(where: str, value: object) -> OverlayEntry:
    raw = _object(where, value)
    return OverlayEntry(
        enabled=_get(raw, "enabled", _bool, False, f"{where}."),
        prefix=_get(raw, "prefix", _str, OverlayEntry.prefix, f"{where}."),
        index=_get(raw, "index", _int, 0, f"{where}."),
    )


def _join(where: str, value: object) -> JoinEntry | None:
    if value is None:
        return None
    raw = _object(where, value)
    return JoinEntry(
        role=_required(raw, "role", _str, where),
        peer_id=_get(raw, "peer_id", _opt_str, None, f"{where}."),
        gpus=_get(raw, "gpus", _opt_int, None, f"{where}."),
        cpus=_get(raw, "cpus", _opt_int, None, f"{where}."),
    )


def _time(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValue(where, "a number", value)
    return float(value)


def _opt_time(where: str, value: object) -> float | None:
    return None if value is None else _time(where, value)


def _invite(where: str, value: object) -> InviteEntry:
    raw = _object(where, value)
    return InviteEntry(
        invite_id=_required(raw, "invite_id", _str, where),
        salt=_required(raw, "salt", _str, where),
        digest=_required(raw, "digest", _str, where),
        expires=_required(raw, "expires", _time, where),
        used_by=_get(raw, "used_by", _opt_str, None, f"{where}."),
        used_at=_get(raw, "used_at", _opt_time, None, f"{where}."),
    )


def _forward(where: str, value: object) -> ForwardEntry:
    raw = _object(where, value)
    return ForwardEntry(
        peer_id=_required(raw, "peer_id", _str, where),
        service=_required(raw, "service", _str, where),
        bind=_required(raw, "bind", _str, where),
    )


def path() -> Path:
    return locations.config_dir() / FILE_NAME


def load(file: Path | None = None) -> StoredState:
    file = file or path()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return StoredState()
    except ValueError as exc:  # not UTF-8
        raise RaytuiError(
            f"{file}: unreadable proxy settings ({exc}); fix or move it away"
        ) from exc
    except OSError as exc:  # a directory, no permission
        raise RaytuiError(
            f"{file}: cannot read the proxy settings ({exc.strerror or exc}); fix or move it away"
        ) from exc
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:  # not JSON, or nested beyond reason
        raise RaytuiError(
            f"{file}: unreadable proxy settings ({str(exc)[:200]}); fix or move it away"
        ) from exc
    try:
        return StoredState.from_json(raw)
    except BadValue as exc:
        raise RaytuiError(f"{file}: bad proxy settings, {exc}; fix or move it away") from exc


def save(state: StoredState, file: Path | None = None) -> None:
    file = file or path()
    tmp = file.with_name(file.name + ".tmp")
    try:
        fd = locations.open_private(tmp, os.O_WRONLY | os.O_TRUNC)  # 0600 even if tmp existed
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state.to_json(), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, file)
    except OSError as exc:
        raise RaytuiError(
            f"{file}: cannot save the proxy settings ({exc.strerror or exc})"
        ) from exc
