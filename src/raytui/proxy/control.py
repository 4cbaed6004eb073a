"""The control socket: a Unix socket in the runtime dir, mode 0600, newline-delimited JSON.

Request: `{"op": "status", ...args}`. Reply: `{"ok": true, "result": ...}` or
`{"ok": false, "error": "message for the user", "code": 1|2}` (2: bad input).
Ops: ping, status, peers.list, peers.add {multiaddr, name?}, peers.remove {peer},
expose {name, target}, expose.ray_head {share_token?, targets?}, unexpose {name},
share_token {enabled},
forward {peer, service, bind?}, unforward {bind}, token {peer}, console {peer, member?},
join {peer? | invite? | head?, gpus?, cpus?}, leave, invite.create {expires_s},
invite.redeem {invite}, shutdown. Every field is checked against `SCHEMA` before an op runs:
a wrong type or an unknown field is a code-2 error, never a traceback.
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
from raytui.model.peers import RAY_HEAD_PORTS, PeerHealth
from raytui.proxy.core import ProxyNode

log = logging.getLogger(__name__)

SOCKET_NAME = locations.SOCKET_NAME
MAX_REQUEST = 64 * 1024


def socket_path() -> Path:
    return locations.runtime_dir() / SOCKET_NAME


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Each field of a request is checked by one of these: (what it must be, the check).
Check = Callable[[object], bool]
_TEXT: tuple[str, Check] = ("non-empty text", lambda v: isinstance(v, str) and bool(v))
_BOOL: tuple[str, Check] = ("true or false", lambda v: isinstance(v, bool))
_COUNT: tuple[str, Check] = (
    "a whole number from 0 to 4096",
    lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 4096,
)
_EXPIRES: tuple[str, Check] = (
    f"a number of seconds from {MIN_EXPIRES_S:g} to {MAX_EXPIRES_S:g}",
    lambda v: (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and MIN_EXPIRES_S <= v <= MAX_EXPIRES_S
    ),
)
_TARGETS: tuple[str, Check] = (
    f"an object mapping some of {sorted(RAY_HEAD_PORTS)} to HOST:PORT text",
    lambda v: (
        isinstance(v, dict)
        and bool(v)
        and all(k in RAY_HEAD_PORTS and isinstance(t, str) for k, t in v.items())
    ),
)

# op -> {field: (required, (what, check))}. Optional fields may be absent or null; a field not
# listed is refused (a newer client's field must not be ignored silently by an older daemon).
Spec = dict[str, tuple[bool, tuple[str, Check]]]
SCHEMA: dict[str, Spec] = {
    "ping": {},
    "status": {},
    "peers.list": {},
    "peers.add": {"multiaddr": (True, _TEXT), "name": (False, _TEXT)},
    "peers.remove": {"peer": (True, _TEXT)},
    "expose": {"name": (True, _TEXT), "target": (True, _TEXT)},
    "expose.ray_head": {"share_token": (False, _BOOL), "targets": (False, _TARGETS)},
    "unexpose": {"name": (True, _TEXT)},
    "share_token": {"enabled": (True, _BOOL)},
    "forward": {"peer": (True, _TEXT), "service": (True, _TEXT), "bind": (False, _TEXT)},
    "unforward": {"bind": (True, _TEXT)},
    "token": {"peer": (True, _TEXT)},
    "console": {"peer": (True, _TEXT), "member": (False, _BOOL)},
    "join": {
        "peer": (False, _TEXT),
        "invite": (False, _TEXT),
        "head": (False, _BOOL),
        "gpus": (False, _COUNT),
        "cpus": (False, _COUNT),
    },
    "leave": {},
    "invite.create": {"expires_s": (False, _EXPIRES)},
    "invite.redeem": {"invite": (True, _TEXT)},
    "shutdown": {},
}


def parse_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """(op, its fields) from one request line, every field checked against SCHEMA (absent and
    null optional fields are left out); UsageError saying what is wrong otherwise."""
    try:
        req = json.loads(line)
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep
        why = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        raise UsageError(f"bad request: not one JSON object ({why})") from None
    if not isinstance(req, dict):
        raise UsageError("bad request: it must be a JSON object")
    op = req.pop("op", None)
    spec = SCHEMA.get(op) if isinstance(op, str) else None
    if spec is None:
        raise UsageError(f"unknown op {_short(op)}")
    unknown = sorted(set(req) - set(spec))
    if unknown:
        raise UsageError(f"bad request: {op!r} takes no field {_short(unknown[0])}")
    args: dict[str, Any] = {}
    for key, (required, (what, check)) in spec.items():
        value = req.get(key)
        if value is None:
            if required:
                raise UsageError(f"bad request: {op!r} needs {key!r} ({what})")
            continue
        if not check(value):
            raise UsageError(f"bad request: {key!r} must be {what}, not {_short(value)}")
        args[key] = value
    return op, args


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
        health, error = await self._node.add_peer(req["multiaddr"], req.get("name"))
        assert isinstance(health, PeerHealth)
        return {"peer": health.to_dict(), "error": error}

    async def _peers_remove(self, req: dict[str, Any]) -> Any:
        return {"peer_id": await self._node.peers.remove(req["peer"])}

    async def _expose(self, req: dict[str, Any]) -> Any:
        return self._node.expose(req["name"], req["target"]).to_dict()

    async def _expose_ray_head(self, req: dict[str, Any]) -> Any:
        services = self._node.expose_ray_head(req.get("share_token", False), req.get("targets"))
        return [s.to_dict() for s in services]

    async def _unexpose(self, req: dict[str, Any]) -> Any:
        return self._node.unexpose(req["name"]).to_dict()

    async def _share_token(self, req: dict[str, Any]) -> Any:
        self._node.set_share_token(req["enabled"])
        return {}

    async def _forward(self, req: dict[str, Any]) -> Any:
        fwd = await self._node.forward(req["peer"], req["service"], req.get("bind"))
        return fwd.to_dict()

    async def _unforward(self, req: dict[str, Any]) -> Any:
        return (await self._node.unforward(req["bind"])).to_dict()

    async def _token(self, req: dict[str, Any]) -> Any:
        return {"token": await self._node.fetch_token(req["peer"])}

    async def _console(self, req: dict[str, Any]) -> Any:
        return (await self._node.console(req["peer"], req.get("member", False))).to_dict()

    async def _join(self, req: dict[str, Any]) -> Any:
        status = await self._node.join(
            req.get("peer"),
            req.get("head", False),
            req.get("gpus"),
            req.get("cpus"),
            invite=req.get("invite"),
        )
        return status.to_dict()

    async def _invite_create(self, req: dict[str, Any]) -> Any:
        return self._node.create_invite(float(req.get("expires_s", DEFAULT_EXPIRES_S))).to_dict()

    async def _invite_redeem(self, req: dict[str, Any]) -> Any:
        return (await self._node.redeem_invite(req["invite"])).to_dict()

    async def _leave(self, req: dict[str, Any]) -> Any:
        status = await self._node.leave()
        return None if status is None else status.to_dict()

    async def _shutdown(self, req: dict[str, Any]) -> Any:
        self._node.shutdown.set()
        return {}

    async def handle_request(self, line: bytes) -> dict[str, Any]:
        try:
            op, args = parse_request(line)
            return {"ok": True, "result": await self._ops[op](args)}
        except RaytuiError as exc:
            return {"ok": False, "error": str(exc), "code": exc.exit_code}
        except Exception as exc:
            log.exception("control request failed")
            return {"ok": False, "error": f"internal error: {_short(str(exc))}", "code": 1}

    async def _serve_conn(self, conn: trio.SocketStream) -> None:
        """Requests one per line, each answered with one line. A request longer than
        MAX_REQUEST is answered with an error and the connection closed; a last request without
        its newline is answered when the client half-closes."""
        buf = b""
        async with conn:
            try:
                while True:
                    eof = False
                    while b"\n" not in buf and not eof:
                        if len(buf) > MAX_REQUEST:
                            error = f"request longer than {MAX_REQUEST} bytes"
                            reply = {"ok": False, "error": error, "code": 2}
                            await conn.send_all(json.dumps(reply).encode() + b"\n")
                            return
                        data = await conn.receive_some(65536)
                        eof = not data
                        buf += data
                    if eof and not buf.strip():
                        return
                    line, _, buf = buf.partition(b"\n")
                    reply = await self.handle_request(line)
                    await conn.send_all(json.dumps(reply).encode() + b"\n")
                    if eof and not buf:
                        return
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
