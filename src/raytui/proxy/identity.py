"""The daemon's persistent Ed25519 identity: one key file, owner-only, same peer ID every start."""

from __future__ import annotations

import os
from pathlib import Path

from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.serialization import deserialize_private_key
from libp2p.peer.id import ID

from raytui import locations
from raytui.errors import RaytuiError

KEY_FILE_NAME = "peer.key"


def key_path() -> Path:
    return locations.config_dir() / KEY_FILE_NAME


def load_or_create(path: Path | None = None) -> KeyPair:
    """Load the key, or create it (mode 0600, written atomically) on first use.

    A key file readable by others is tightened to 0600 rather than refused: the key is only as
    secret as the account, and refusing would strand a daemon after a careless `cp`.
    """
    path = path or key_path()
    if path.exists():
        try:
            private = deserialize_private_key(path.read_bytes())
        except Exception as exc:
            raise RaytuiError(f"{path}: not a libp2p private key ({exc}); move it away") from exc
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return KeyPair(private, private.get_public_key())
    private = Ed25519PrivateKey.new()
    tmp = path.with_name(path.name + ".tmp")
    fd = locations.open_private(tmp, os.O_WRONLY | os.O_TRUNC)  # 0600 even if tmp existed
    try:
        os.write(fd, private.serialize())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return KeyPair(private, private.get_public_key())


def peer_id_of(key_pair: KeyPair) -> ID:
    return ID.from_pubkey(key_pair.public_key)
