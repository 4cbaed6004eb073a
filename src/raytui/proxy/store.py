"""The daemon's persistent settings: allow-listed peers and their addresses, exposed services,
forwards, listen addresses, token sharing. One JSON file in the config dir, mode 0600, replaced
atomically so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
class StoredState:
    peers: dict[str, PeerEntry] = field(default_factory=dict)  # by peer ID
    services: dict[str, str] = field(default_factory=dict)  # name -> host:port
    forwards: list[ForwardEntry] = field(default_factory=list)
    listen: list[str] = field(default_factory=list)
    share_token: bool = False
    overlay: OverlayEntry = field(default_factory=OverlayEntry)
    join: JoinEntry | None = None

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
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StoredState:
        peers = {}
        for p in raw.get("peers", []):
            addrs = [str(a) for a in p.get("addrs", [])]
            entry = PeerEntry(str(p["peer_id"]), p.get("name"), addrs)
            peers[entry.peer_id] = entry
        return cls(
            peers=peers,
            services={str(k): str(v) for k, v in raw.get("services", {}).items()},
            forwards=[
                ForwardEntry(str(f["peer_id"]), str(f["service"]), str(f["bind"]))
                for f in raw.get("forwards", [])
            ],
            listen=[str(a) for a in raw.get("listen", [])],
            share_token=bool(raw.get("share_token", False)),
            overlay=OverlayEntry(**raw.get("overlay", {})),
            join=None if raw.get("join") is None else JoinEntry(**raw["join"]),
        )


def path() -> Path:
    return locations.config_dir() / FILE_NAME


def load(file: Path | None = None) -> StoredState:
    file = file or path()
    if not file.exists():
        return StoredState()
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
        return StoredState.from_json(raw)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RaytuiError(
            f"{file}: unreadable proxy settings ({exc}); fix or move it away"
        ) from exc


def save(state: StoredState, file: Path | None = None) -> None:
    file = file or path()
    tmp = file.with_name(file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state.to_json(), fh, indent=2)
        fh.write("\n")
    os.replace(tmp, file)
