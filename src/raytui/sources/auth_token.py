"""The Ray auth token, looked up like Ray does: `RAY_AUTH_TOKEN`, else the file named by
`RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`; and handed to Ray's own clients in this process.
"""

from __future__ import annotations

import os

from raytui import locations
from raytui.errors import AuthenticationFailed
from raytui.sources.dashboard_client import token_hint


def find_token() -> tuple[str | None, str | None]:
    """(token, where it came from) as Ray looks it up; (None, None) when there is none."""
    value = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if value:
        return value, "RAY_AUTH_TOKEN"
    for path, where in locations.ray_token_files():
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if token:
            return token, f"{where} ({path})"
    return None, None


def require_token_if_token_mode(address: str) -> None:
    """With RAY_AUTH_MODE=token and no token anywhere, Ray's own clients do not fail: they end
    the process (a failed RAY_CHECK, exit 1, a C++ stack on fd 2). Say it first, in one line."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() != "token":
        return
    if find_token()[0] is None:
        raise AuthenticationFailed(
            f"RAY_AUTH_MODE=token but no Ray auth token was found for {address}: {token_hint()}"
        )


def export_token(token: str | None) -> None:
    """Make the token visible to Ray's own clients (GcsClient, ray.init) in this process."""
    if token:
        os.environ.setdefault("RAY_AUTH_TOKEN", token)
        os.environ.setdefault("RAY_AUTH_MODE", "token")
