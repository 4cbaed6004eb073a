"""The proxy daemon's control socket, client side: where it is, one request, ping, shutdown.

Plain blocking stdlib sockets and JSON lines, no trio and no Textual, so both the daemon
(`raytui.proxy.daemon`: is one already running, stop it) and the data layer
(`raytui.sources.proxy_control`, for the CLI and the TUI) build on it without either importing
the other. Raises `DaemonNotRunning` when nothing listens, `UsageError` when the daemon rejected
the input, `RaytuiError` for other failures.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from raytui import locations
from raytui.errors import RaytuiError, UsageError

SOCKET_NAME = locations.SOCKET_NAME
NOT_RUNNING = "proxy daemon not running: start it with `raytui proxy start`"


class DaemonNotRunning(RaytuiError):
    """No proxy daemon answers on the control socket."""


def socket_path() -> Path:
    return locations.runtime_dir() / SOCKET_NAME


class ControlSocket:
    """Talks to the daemon whose control socket is at `path` (default: this user's): one short
    blocking connection per request. `raytui.sources.proxy_control.ProxyControl` adds the typed
    requests; the daemon itself needs only these (is one running, its pid, stop it)."""

    def __init__(self, path: Path | None = None, timeout: float = 30.0) -> None:
        self.path = path or socket_path()
        self.timeout = timeout

    def request(self, op: str, **args: Any) -> Any:
        """Send one request, return its `result`; raise as the module docstring says."""
        payload = json.dumps({"op": op, **args}).encode() + b"\n"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError):
                raise DaemonNotRunning(NOT_RUNNING) from None
            except OSError as exc:
                raise RaytuiError(f"cannot reach the proxy daemon at {self.path}: {exc}") from exc
            try:
                sock.sendall(payload)
                buf = b""
                while b"\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        self._raise_if_gone()
                        raise RaytuiError("the proxy daemon closed the control connection")
                    buf += chunk
            except TimeoutError:
                raise RaytuiError(
                    f"the proxy daemon did not answer {op!r} within {self.timeout:g} s"
                ) from None
            except OSError as exc:
                self._raise_if_gone()
                raise RaytuiError(f"control connection to the proxy daemon failed: {exc}") from exc
        finally:
            sock.close()
        try:
            reply = json.loads(buf.partition(b"\n")[0])
        except ValueError as exc:
            raise RaytuiError(f"garbled reply from the proxy daemon: {exc}") from exc
        if not reply.get("ok"):
            message = str(reply.get("error", "unknown error"))
            if reply.get("code") == 2:
                raise UsageError(message)
            raise RaytuiError(message)
        return reply.get("result")

    def _raise_if_gone(self) -> None:
        """A request cut off because the daemon is stopping: it unlinks its socket first."""
        if not self.path.exists():
            raise DaemonNotRunning(NOT_RUNNING)

    def ping(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("ping")
        return result

    def shutdown(self) -> None:
        self.request("shutdown")


def is_running(path: Path | None = None) -> bool:
    try:
        ControlSocket(path, timeout=3.0).ping()
    except RaytuiError:
        return False
    return True
