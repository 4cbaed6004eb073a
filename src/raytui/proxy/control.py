"""The control socket: a Unix socket in the runtime dir, mode 0600, newline-delimited JSON.

Request: `{"op": "status", ...args}`. Reply: `{"ok": true, "result": ...}` or
`{"ok": false, "error": "message for the user", "code": 1|2}` (2: bad input).
Ops: ping, status, peers.list, peers.add {multiaddr, name?}, peers.remove {peer},
expose {name, target}, expose.ray_head {share_token}, unexpose {name}, share_token {enabled},
forward {peer, service, bind?}, unforward {bind}, token {peer}, console {peer, member?},
join {peer? | invite? | head?, gpus?, cpus?}, leave, invite.create {expires_s},
invite.redeem {invite}, shutdown.
The client is `raytui.sources.proxy_control`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket as stdsocket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from raytui import locations
from raytui.errors import RaytuiError, UsageError
from raytui.model.invite import DEFAULT_EXPIRES_S, MAX_EXPIRES_S, MIN_EXPIRES_S
from raytui.model.peers import PeerHealth
from raytui.proxy.core import ProxyNode

log = logging.getLogger(__name__)

SOCKET_NAME = locations.SOCKET_NAME
MAX_REQUEST = 64 * 1024


def socket_path() -> Path:
    return locations.runtime_dir() / SOCKET_NAME


def _arg(req: dict[str, Any], key: str) -> str:
    value = req.get(key)
    if not isinstance(value, str) or not value:
        raise UsageError(f"missing or bad {key!r} in the request")
    return value


def _opt(req: dict[str, Any], key: str) -> str | None:
    value = req.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"bad {key!r} in the request")
    return value


def _count(req: dict[str, Any], key: str) -> int | None:
    value = req.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4096:
        raise UsageError(f"bad {key!r} in the request: a whole number from 0")
    return value


def remove_socket(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class ControlServer:
    def __init__(self, node: ProxyNode) -> None:
        self._node = node
        self._ops: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "ping": self._ping,
            "status": self._status,
            "peers.list": self._peers_list,
            "peers.add": self._peers_add,
            "peers.remove": self._peers_remove,
            "expose": self._expose,
            "expose.ray_head": self._expose_ray_head,
            "unexpose": self._unexpose,
            "share_token": self._share_token,
            "forward": self._forward,
            "unforward": self._unforward,
            "token": self._token,
            "console": self._console,
            "join": self._join,
            "leave": self._leave,
            "invite.create": self._invite_create,
            "invite.redeem": self._invite_redeem,
            "shutdown": self._shutdown,
        }

    async def _ping(self, req: dict[str, Any]) -> Any:
        return {"pid": os.getpid(), "peer_id": str(self._node.host.get_id())}

    async def _status(self, req: dict[str, Any]) -> Any:
        return self._node.status().to_dict()

    async def _peers_list(self, req: dict[str, Any]) -> Any:
        return [p.to_dict() for p in self._node.peers.health()]

    async def _peers_add(self, req: dict[str, Any]) -> Any:
        health, error = await self._node.add_peer(_arg(req, "multiaddr"), _opt(req, "name"))
        assert isinstance(health, PeerHealth)
        return {"peer": health.to_dict(), "error": error}

    async def _peers_remove(self, req: dict[str, Any]) -> Any:
        return {"peer_id": await self._node.peers.remove(_arg(req, "peer"))}

    async def _expose(self, req: dict[str, Any]) -> Any:
        return self._node.expose(_arg(req, "name"), _arg(req, "target")).to_dict()

    async def _expose_ray_head(self, req: dict[str, Any]) -> Any:
        services = self._node.expose_ray_head(bool(req.get("share_token")))
        return [s.to_dict() for s in services]

    async def _unexpose(self, req: dict[str, Any]) -> Any:
        return self._node.unexpose(_arg(req, "name")).to_dict()

    async def _share_token(self, req: dict[str, Any]) -> Any:
        self._node.set_share_token(bool(req.get("enabled")))
        return {}

    async def _forward(self, req: dict[str, Any]) -> Any:
        fwd = await self._node.forward(_arg(req, "peer"), _arg(req, "service"), _opt(req, "bind"))
        return fwd.to_dict()

    async def _unforward(self, req: dict[str, Any]) -> Any:
        return (await self._node.unforward(_arg(req, "bind"))).to_dict()

    async def _token(self, req: dict[str, Any]) -> Any:
        return {"token": await self._node.fetch_token(_arg(req, "peer"))}

    async def _console(self, req: dict[str, Any]) -> Any:
        member = req.get("member") is True
        return (await self._node.console(_arg(req, "peer"), member)).to_dict()

    async def _join(self, req: dict[str, Any]) -> Any:
        status = await self._node.join(
            _opt(req, "peer"),
            req.get("head") is True,
            _count(req, "gpus"),
            _count(req, "cpus"),
            invite=_opt(req, "invite"),
        )
        return status.to_dict()

    async def _invite_create(self, req: dict[str, Any]) -> Any:
        value = req.get("expires_s", DEFAULT_EXPIRES_S)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not MIN_EXPIRES_S <= value <= MAX_EXPIRES_S
        ):
            raise UsageError("bad 'expires_s' in the request")
        return self._node.create_invite(float(value)).to_dict()

    async def _invite_redeem(self, req: dict[str, Any]) -> Any:
        return (await self._node.redeem_invite(_arg(req, "invite"))).to_dict()

    async def _leave(self, req: dict[str, Any]) -> Any:
        status = await self._node.leave()
        return None if status is None else status.to_dict()

    async def _shutdown(self, req: dict[str, Any]) -> Any:
        self._node.shutdown.set()
        return {}

    async def handle_request(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise UsageError("request must be a JSON object")
            op = req.get("op")
            handler = self._ops.get(op) if isinstance(op, str) else None
            if handler is None:
                raise UsageError(f"unknown op {op!r}")
            return {"ok": True, "result": await handler(req)}
        except RaytuiError as exc:
            return {"ok": False, "error": str(exc), "code": exc.exit_code}
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}", "code": 2}
        except Exception as exc:
            log.exception("control request failed")
            return {"ok": False, "error": f"internal error: {exc}", "code": 1}

    async def _serve_conn(self, conn: trio.SocketStream) -> None:
        buf = b""
        async with conn:
            try:
                while True:
                    while b"\n" not in buf:
                        if len(buf) > MAX_REQUEST:
                            return
                        data = await conn.receive_some(65536)
                        if not data:
                            return
                        buf += data
                    line, _, buf = buf.partition(b"\n")
                    reply = await self.handle_request(line)
                    await conn.send_all(json.dumps(reply).encode() + b"\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    async def serve(self, path: Path, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        remove_socket(path)
        old_umask = os.umask(0o177)
        try:
            await sock.bind(str(path))
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG or "too long" in str(exc):
                raise RaytuiError(f"control socket path too long: {path}") from exc
            raise
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(64)
        listener = trio.SocketListener(sock)
        task_status.started()
        try:
            await trio.serve_listeners(self._serve_conn, [listener])
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()
            remove_socket(path)
