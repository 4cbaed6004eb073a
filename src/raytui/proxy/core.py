"""The running proxy node: the libp2p host, the peer manager, exposed services, forwards,
Ray-token sharing, the overlay, the joined Ray node and invites (invite.py). The control server
(control.py) calls its methods; daemon.py runs it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost, INetStream
from libp2p.crypto.keys import KeyPair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.utils.address_validation import expand_wildcard_address

from raytui import locations
from raytui.errors import RaytuiError, UsageError
from raytui.model.invite import (
    INVITE_PROTOCOL,
    MAX_ADDRS,
    Invite,
    IssuedInvite,
    Redeemed,
    parse_invite,
    sanitize_name,
    unique_name,
)
from raytui.model.overlay import GCS_PORT, RAY_HEAD_INFO_PROTOCOL, JoinState, JoinStatus
from raytui.model.peers import (
    RAY_CLIENT,
    RAY_DASHBOARD,
    RAY_GCS,
    RAY_HEAD_PORTS,
    TOKEN_PROTOCOL,
    TUNNEL_PROTOCOL,
    ConsoleEndpoints,
    DaemonStatus,
    Forward,
    LinkState,
    Service,
    check_service_name,
    check_target,
    parse_host_port,
    parse_peer_multiaddr,
)
from raytui.proxy import store
from raytui.proxy.host import Probation, build_host
from raytui.proxy.invite import InviteBook, InviteDoor, own_name, present
from raytui.proxy.overlay import Overlay
from raytui.proxy.peers import PeerManager, describe
from raytui.proxy.ray_node import NodePlan, RayNodeSupervisor
from raytui.proxy.tunnel import (
    CONNECT_TIMEOUT,
    LinkCounters,
    forward_connection,
    read_line,
    reset_stream,
    serve_stream,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 4701
DEFAULT_LISTEN = (f"/ip4/0.0.0.0/tcp/{DEFAULT_PORT}",)
# Ray rewrites 127.0.0.1 to the LAN IP; another loopback alias keeps console forwards local.
CONSOLE_BIND_HOST = "127.0.0.3"
START_NODE_TIMEOUT = 90.0  # `ray start` of a worker across the overlay: ~5-10 s


def read_ray_token() -> str | None:
    """The Ray auth token as Ray itself finds it: env, env-named file, ~/.ray/auth_token.
    RaytuiError when the token found cannot be handed on (not UTF-8, or not one line)."""
    token = os.environ.get("RAY_AUTH_TOKEN")
    if token:
        return _one_line(token.strip(), "RAY_AUTH_TOKEN")
    for path, _where in locations.ray_token_files():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            continue
        except UnicodeDecodeError:
            raise RaytuiError(f"the Ray token file {path} is not UTF-8 text") from None
        if text:
            return _one_line(text, f"the Ray token file {path}")
    return None


def _one_line(token: str, where: str) -> str:
    if any(not ch.isprintable() for ch in token):
        raise RaytuiError(f"{where} holds more than one line or control characters")
    return token


def ensure_ray_token() -> str:
    """The token a head started by `raytui join --head` uses: the one Ray would find, else a new
    one written where Ray looks first (0600), so local tools on the head find it too."""
    token = read_ray_token()
    if token:
        return token
    path = locations.ray_token_files()[0][0]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_hex(32)
    with os.fdopen(locations.open_private(path, os.O_WRONLY | os.O_TRUNC), "w") as fh:
        fh.write(token + "\n")
    return token


@dataclass
class _ForwardRuntime:
    entry: store.ForwardEntry
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    active: int = 0
    error: str | None = None
    closed: trio.Event = field(default_factory=trio.Event)  # its listeners are closed

    def model(self) -> Forward:
        return Forward(
            peer_id=self.entry.peer_id,
            service=self.entry.service,
            bind=self.entry.bind,
            active=self.active,
            error=self.error,
        )


class ProxyNode:
    def __init__(self, key_pair: KeyPair, state: store.StoredState, listen: list[str]) -> None:
        self._key_pair = key_pair
        self._state = state
        self._listen = [multiaddr.Multiaddr(a) for a in listen]
        self.peers = PeerManager(state, self.save)
        self.overlay = Overlay(state.overlay, self.peers, self.save)
        self.door = InviteDoor(InviteBook(state.invites, self.save), self.peers)
        self.ray_node: RayNodeSupervisor | None = None
        self._forwards: list[_ForwardRuntime] = []
        self._nursery: trio.Nursery | None = None
        self._host: IHost | None = None
        self._started = time.time()
        self.shutdown = trio.Event()

    def save(self) -> None:
        store.save(self._state)

    @property
    def host(self) -> IHost:
        if self._host is None:
            raise RaytuiError("proxy node not started")
        return self._host

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        probation = Probation(
            self.door.admit, frozenset({INVITE_PROTOCOL}), self.door.stream_refused
        )
        host = build_host(
            self._key_pair, self._listen, self.peers.allowed, self.peers.on_refused, probation
        )
        self._host = host
        try:
            async with host.run(self._listen), trio.open_nursery() as nursery:
                self._nursery = nursery
                host.set_stream_handler(TProtocol(TUNNEL_PROTOCOL), self._on_tunnel_stream)
                host.set_stream_handler(TProtocol(TOKEN_PROTOCOL), self._on_token_stream)
                host.set_stream_handler(TProtocol(RAY_HEAD_INFO_PROTOCOL), self._on_ray_head_stream)
                host.set_stream_handler(TProtocol(INVITE_PROTOCOL), self.door.handle)
                self.overlay.register(host)
                self.peers.start(host, nursery)
                for entry in list(self._state.forwards):
                    await self._start_forward(entry, persist=False)
                nursery.start_soon(self.overlay.run)
                nursery.start_soon(self.door.run, host)
                if self._state.join is not None:
                    nursery.start_soon(self._resume_join)
                task_status.started()
                await self.shutdown.wait()
                if self.ray_node is not None:
                    await self.ray_node.stop()
                self.overlay.stop()
                nursery.cancel_scope.cancel()
        except OSError as exc:
            where = ", ".join(map(str, self._listen))
            raise RaytuiError(f"cannot listen on {where}: {exc}") from exc

    # --- status --------------------------------------------------------------------------------

    def addrs(self) -> list[str]:
        """Full multiaddrs to paste on another machine, wildcards expanded to interfaces."""
        host = self.host
        out: list[str] = []
        for addr in host.get_transport_addrs():
            text = str(addr)
            expanded = (
                expand_wildcard_address(addr)
                if text.startswith(("/ip4/0.0.0.0/", "/ip6/::/"))
                else [addr]
            )
            for a in expanded:
                full = f"{a}/p2p/{host.get_id()}"
                if full not in out and not self.overlay.holds(str(a)):
                    out.append(full)
        # Loopback last: the address a remote machine needs comes first.
        out.sort(key=lambda a: a.startswith(("/ip4/127.", "/ip6/::1/")))
        return out

    def status(self) -> DaemonStatus:
        return DaemonStatus(
            peer_id=str(self.host.get_id()),
            addrs=tuple(self.addrs()),
            pid=os.getpid(),
            uptime_s=time.time() - self._started,
            share_token=self._state.share_token,
            refused=self.peers.refused,
            peers=tuple(self.peers.health()),
            services=tuple(
                Service(name, target) for name, target in sorted(self._state.services.items())
            ),
            forwards=tuple(f.model() for f in self._forwards),
            overlay=self.overlay.status(),
            join=None if self.ray_node is None else self.ray_node.status(),
            invites=self.door.status(),
        )

    # --- services (serving side) -----------------------------------------------------------------

    def expose(self, name: str, target: str) -> Service:
        check_service_name(name)
        host, port = check_target(target)
        self._state.services[name] = f"{host}:{port}"
        self.save()
        return Service(name, self._state.services[name])

    def expose_ray_head(
        self, share_token: bool, targets: dict[str, str] | None = None
    ) -> list[Service]:
        """Offer the Ray head's services at `targets` (service name -> HOST:PORT), which the
        command found where the head really listens (raytui/ray_local.py). Without targets: the
        head this daemon runs itself (`join --head`), or will run, at its overlay address."""
        if not targets:
            if self.ray_node is not None and self.ray_node.plan.role == "head":
                host = self.ray_node.plan.node_ip  # the head join started listens there
            elif self.overlay.address is not None:
                host = self.overlay.address  # where `join --head` will start it
            else:
                raise UsageError(
                    "this daemon runs no Ray head itself and the overlay is off: say where the "
                    "head listens (`raytui proxy expose --ray-head` finds it)"
                )
            targets = {name: f"{host}:{port}" for name, port in RAY_HEAD_PORTS.items()}
        unknown = sorted(set(targets) - set(RAY_HEAD_PORTS))
        if unknown:
            raise UsageError(f"not a Ray head service: {unknown[0]!r}")
        for target in targets.values():
            check_target(target)  # all or nothing: none is stored when one is bad
        out = [self.expose(name, target) for name, target in targets.items()]
        if share_token:
            self.set_share_token(True)
        return out

    def unexpose(self, name: str) -> Service:
        target = self._state.services.pop(name, None)
        if target is None:
            raise UsageError(f"no exposed service named {name!r}")
        self.save()
        return Service(name, target)

    def set_share_token(self, enabled: bool) -> None:
        self._state.share_token = enabled
        self.save()

    def _lookup_service(self, name: str) -> tuple[str, int] | None:
        """The target of service `name`; UsageError (the stream's refusal) when the stored
        target is not one `expose` would accept (the state file was edited by hand)."""
        target = self._state.services.get(name)
        return check_target(target) if target is not None else None

    def _peer_of(self, stream: INetStream) -> str | None:
        peer = stream.muxed_conn.peer_id
        return str(peer) if self.peers.allowed(peer) else None

    async def _on_tunnel_stream(self, stream: INetStream) -> None:
        peer = self._peer_of(stream)
        if peer is None:
            await reset_stream(stream)
            return
        await serve_stream(stream, self._lookup_service, self.peers.counters(peer))

    async def _on_token_stream(self, stream: INetStream) -> None:
        if self._peer_of(stream) is None:
            await reset_stream(stream)
            return
        unusable = None
        try:
            token = read_ray_token() if self._state.share_token else None
        except RaytuiError as exc:
            token, unusable = None, str(exc)
            log.warning("token request refused: %s", unusable)
        if not self._state.share_token:
            reply = b"-this head does not share its Ray token (expose --share-token)\n"
        elif unusable is not None:
            reply = f"-this head cannot hand on its Ray token: {unusable}\n".encode()
        elif token is None:
            reply = b"-this head has no Ray token (auth is off, or the token file is missing)\n"
        else:
            reply = b"+" + token.encode() + b"\n"
        try:
            await stream.write(reply)
            await stream.close()
        except Exception:
            await reset_stream(stream)

    async def _on_ray_head_stream(self, stream: INetStream) -> None:
        """A joiner asks for this head's GCS address on the overlay and its token."""
        if self._peer_of(stream) is None:
            await reset_stream(stream)
            return
        try:
            reply = json.dumps(self._ray_head_offer()).encode() + b"\n"
            await stream.write(reply)
            await stream.close()
        except Exception:
            log.exception("ray-head request failed")
            await reset_stream(stream)

    def _ray_head_offer(self) -> dict[str, str | None]:
        if self.overlay.address is None:
            return {"error": "the overlay is off on the head (raytui proxy start --overlay)"}
        if RAY_GCS not in self._state.services:
            return {
                "error": "this peer does not offer its Ray head to joiners: on it run "
                "`raytui proxy expose --ray-head --share-token`"
            }
        token = read_ray_token()
        if token is not None and not self._state.share_token:
            return {
                "error": "this head does not share its Ray token: on it run "
                "`raytui proxy expose --ray-head --share-token`"
            }
        return {"gcs": f"{self.overlay.address}:{GCS_PORT}", "token": token}

    async def _ask_ray_head(self, peer_id: str) -> tuple[str, str | None]:
        """(GCS host:port, token) of the peer's head, or RaytuiError saying why not."""
        link = self.peers.link(peer_id)
        if link.state != LinkState.CONNECTED:
            await self.peers._first_outcome(link)
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await self.host.new_stream(
                    ID.from_base58(peer_id), [TProtocol(RAY_HEAD_INFO_PROTOCOL)]
                )
                line, _ = await read_line(stream, max_len=4096)
        except Exception as exc:
            raise RaytuiError(f"cannot ask the peer for its Ray head: {describe(exc)}") from exc
        with contextlib.suppress(Exception):
            await stream.close()
        try:
            offer = json.loads(line)
            if offer.get("error"):
                raise RaytuiError(f"the peer offers no Ray head: {offer['error']}")
            return str(offer["gcs"]), None if offer.get("token") is None else str(offer["token"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RaytuiError(f"garbled Ray head offer from the peer: {exc}") from exc

    # --- joining a Ray cluster over the overlay --------------------------------------------------

    async def join(
        self,
        peer_key: str | None,
        head: bool,
        gpus: int | None,
        cpus: int | None,
        invite: str | None = None,
    ) -> JoinStatus:
        """Start (and supervise) a Ray node on this machine's overlay address: a worker of the
        peer's head (named, or the head of an `invite` line, redeemed first), or a head.
        Returns once the node reported started or failed to."""
        if self.ray_node is not None:
            role = self.ray_node.plan.role
            raise UsageError(f"this machine already runs a Ray {role} node; `raytui leave` first")
        if sum((head, peer_key is not None, invite is not None)) != 1:
            raise UsageError("join needs a PEER, an INVITE, or --head")
        redeemed = None
        if invite is not None:
            # What would stop the node from starting here is checked before the invite is
            # spent: it lets one machine in, once.
            self._overlay_address()
            redeemed = await self.redeem_invite(invite)
            peer_key = redeemed.peer_id
        peer_id = None if peer_key is None else self.peers.resolve(peer_key)
        entry = store.JoinEntry("head" if head else "worker", peer_id, gpus, cpus)
        try:
            plan = await self._node_plan(entry)
        except RaytuiError as exc:
            if redeemed is None:
                raise
            raise RaytuiError(
                f"{exc} (the invite was accepted: this machine and the head allow each other "
                f"now; once that is fixed, run `raytui join {redeemed.head_name}`)"
            ) from exc
        self._state.join = entry
        self.save()
        supervisor = self._start_node(plan)
        if head and RAY_GCS in self._state.services:
            self.expose_ray_head(self._state.share_token)  # now at the head's overlay address
        with trio.move_on_after(START_NODE_TIMEOUT):
            await supervisor.started.wait()
        return supervisor.status()

    def _overlay_address(self) -> str:
        address = self.overlay.address
        if address is None:
            raise RaytuiError(
                self.overlay.error
                or "the overlay is off: restart the daemon with `raytui proxy start --overlay`"
                " (as root)"
            )
        return address

    async def _node_plan(self, entry: store.JoinEntry) -> NodePlan:
        address = self._overlay_address()
        if entry.role == "head":
            own = f"{address}:{GCS_PORT}"
            return NodePlan("head", address, own, None, ensure_ray_token(), entry.gpus, entry.cpus)
        assert entry.peer_id is not None
        gcs, shared = await self._ask_ray_head(entry.peer_id)
        return NodePlan("worker", address, gcs, entry.peer_id, shared, entry.gpus, entry.cpus)

    def _start_node(self, plan: NodePlan) -> RayNodeSupervisor:
        assert self._nursery is not None
        head_ip = plan.head_address.rpartition(":")[0]
        reachable = None if plan.role == "head" else (lambda: self.overlay.reaches(head_ip))
        supervisor = RayNodeSupervisor(plan, reachable)
        self.ray_node = supervisor
        self._nursery.start_soon(supervisor.run)
        return supervisor

    async def _resume_join(self) -> None:
        """After a daemon restart: start the node `join` asked for once the overlay is up and,
        for a worker, the head answers; retried until it works or `leave`."""
        delay = 1.0
        while self._state.join is not None and self.ray_node is None:
            try:
                plan = await self._node_plan(self._state.join)
            except RaytuiError as exc:
                log.info("cannot rejoin yet: %s", exc)
                await trio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if self._state.join is not None and self.ray_node is None:
                self._start_node(plan)

    async def leave(self) -> JoinStatus | None:
        """Stop the node `join` started; None when there was none."""
        supervisor, self.ray_node = self.ray_node, None
        self._state.join = None
        self.save()
        if supervisor is None:
            return None
        await supervisor.stop()
        return supervisor.status()

    # --- invites (model/invite.py, invite.py) ---------------------------------------------------

    def create_invite(self, ttl: float) -> IssuedInvite:
        """A one-time invite line for one machine, valid `ttl` seconds, with what would keep a
        join with it from working yet."""
        addrs = self.addrs()
        if not addrs:
            raise RaytuiError("this daemon has no address another machine could dial")
        remote = [a for a in addrs if not a.startswith(("/ip4/127.", "/ip6/::1/"))]
        addrs = (remote or addrs)[:MAX_ADDRS]
        secret, entry = self.door.book.mint(ttl)
        line = Invite(str(self.host.get_id()), tuple(addrs), secret, entry.expires).line()
        warnings = []
        if not remote:
            warnings.append(
                "this daemon listens on loopback only: another machine cannot dial it "
                "(restart it with `--listen /ip4/0.0.0.0/tcp/4701`)"
            )
        if self.overlay.address is None:
            warnings.append(
                "the overlay is off here, so the box can allow-list itself but not join "
                "Ray: `raytui proxy start --overlay` (as root)"
            )
        else:
            try:
                problem = self._ray_head_offer().get("error")
            except RaytuiError as exc:
                problem = str(exc)
            if problem:
                warnings.append(f"the box cannot join Ray yet: {problem}")
        return IssuedInvite(line, entry.invite_id, entry.expires, tuple(warnings))

    async def redeem_invite(self, text: str) -> Redeemed:
        """Present an invite line to its head: afterwards both daemons have each other on their
        allow-lists. RaytuiError with one line when the head refuses or cannot be reached."""
        invite = parse_invite(text)
        if invite.peer_id == str(self.host.get_id()):
            raise UsageError(
                "this invite was made by this daemon: paste it on the machine that should join"
            )
        self.door.dialing.add(invite.peer_id)
        try:
            reply = await present(self.host, invite, own_name())
            known = self.peers.health()
            existing = next((p.name for p in known if p.peer_id == invite.peer_id), None)
            wanted = sanitize_name(str(reply.get("head") or ""), "head")
            head_name = existing or unique_name(wanted, self.peers.names())
            self.peers.allow(invite.peer_id, head_name, invite.transports())
        except Exception:
            if not self.peers.allowed(ID.from_base58(invite.peer_id)):
                with trio.move_on_after(5), contextlib.suppress(Exception):
                    await self.host.disconnect(ID.from_base58(invite.peer_id))
            raise
        finally:
            self.door.dialing.discard(invite.peer_id)
        await self.peers._first_outcome(self.peers.link(invite.peer_id))
        return Redeemed(invite.peer_id, head_name, str(reply.get("name", "")))

    # --- forwards (dialing side) -----------------------------------------------------------------

    async def forward(self, peer_key: str, service: str, bind: str | None) -> Forward:
        peer_id = self.peers.resolve(peer_key)
        check_service_name(service)
        if bind is None:
            for f in self._forwards:
                if f.entry.peer_id == peer_id and f.entry.service == service and f.error is None:
                    return f.model()
            bind = "127.0.0.1:0"
        host, port = parse_host_port(bind, default_host="127.0.0.1")
        for f in self._forwards:
            if f.entry.bind == f"{host}:{port}" and port != 0:
                raise UsageError(f"already forwarding {f.entry.bind} to {f.entry.service}")
        runtime = await self._start_forward(
            store.ForwardEntry(peer_id, service, f"{host}:{port}"), persist=True
        )
        if runtime.error:
            raise RaytuiError(runtime.error)
        return runtime.model()

    async def unforward(self, bind: str) -> Forward:
        host, port = parse_host_port(bind, default_host="127.0.0.1")
        key = f"{host}:{port}"
        for f in list(self._forwards):
            if f.entry.bind == key:
                f.scope.cancel()
                with trio.move_on_after(5):
                    await f.closed.wait()  # the port is free when the reply goes out
                self._forwards.remove(f)
                if f.entry in self._state.forwards:
                    self._state.forwards.remove(f.entry)
                self.save()
                return f.model()
        raise UsageError(f"no forward bound to {key}")

    async def _start_forward(self, entry: store.ForwardEntry, persist: bool) -> _ForwardRuntime:
        assert self._nursery is not None
        runtime = _ForwardRuntime(entry)
        try:  # a stored bind may be anything: that forward is broken, not the daemon
            host, port = parse_host_port(entry.bind)
            listeners = await trio.open_tcp_listeners(port, host=host)
        except (OSError, ValueError, RaytuiError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            runtime.error = f"cannot listen on {entry.bind!r}: {why}"
            runtime.closed.set()
            if not persist:
                self._forwards.append(runtime)  # restored from disk: show why it is not running
            return runtime
        bound = listeners[0].socket.getsockname()
        entry.bind = f"{host}:{bound[1]}"
        self._forwards.append(runtime)
        if persist:
            self._state.forwards.append(entry)
            self.save()
        self._nursery.start_soon(self._serve_forward, runtime, listeners)
        return runtime

    async def _serve_forward(
        self, runtime: _ForwardRuntime, listeners: list[trio.SocketListener]
    ) -> None:
        entry = runtime.entry

        async def handle(sock: trio.SocketStream) -> None:
            try:
                peer_id = ID.from_base58(entry.peer_id)
            except Exception:
                return
            counters = (
                self.peers.counters(entry.peer_id)
                if self.peers.allowed(peer_id)
                else LinkCounters()
            )

            async def open_stream() -> INetStream:
                if not self.peers.allowed(peer_id):
                    raise RaytuiError("peer is no longer on the allow-list")
                return await self.host.new_stream(peer_id, [TProtocol(TUNNEL_PROTOCOL)])

            runtime.active += 1
            try:
                why = await forward_connection(sock, open_stream, entry.service, counters)
            finally:
                runtime.active -= 1
            if why:
                log.info("forward %s -> %s: %s", entry.bind, entry.service, why)
                if entry.peer_id in {p.peer_id for p in self.peers.health()}:
                    self.peers.link(entry.peer_id).last_error = f"{entry.service}: {why}"

        with runtime.scope:
            try:
                await trio.serve_listeners(handle, listeners)
            finally:
                for listener in listeners:
                    with trio.CancelScope(shield=True):
                        await listener.aclose()
                runtime.closed.set()

    # --- token and remote console ----------------------------------------------------------------

    async def fetch_token(self, peer_key: str) -> str | None:
        """The peer's Ray token, or None when it does not share one (the reason is logged)."""
        peer_id = ID.from_base58(self.peers.resolve(peer_key))
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await self.host.new_stream(peer_id, [TProtocol(TOKEN_PROTOCOL)])
                line, _ = await read_line(stream)
        except Exception as exc:
            raise RaytuiError(f"cannot ask the peer for its Ray token: {describe(exc)}") from exc
        with contextlib.suppress(Exception):
            await stream.close()
        text = line.decode("utf-8", "replace")
        if text.startswith("+"):
            return text[1:]
        log.info("peer %s shares no token: %s", peer_key, text[1:])
        return None

    async def console(self, peer_key: str, member: bool = False) -> ConsoleEndpoints:
        """Endpoints for a console of `peer_key`'s Ray cluster. Over the overlay when it is up
        and the peer offers its head: the head's own addresses, and with `member` this machine
        joins as a node with no CPUs or GPUs (reused if it already is a node of that cluster),
        so a driver here can stream results. Otherwise forwards to the peer's exposed head
        services (watching, and Ray Client)."""
        peer_id = self.peers.resolve(peer_key)
        link = self.peers.link(peer_id)
        if link.state != LinkState.CONNECTED:
            await self.peers._first_outcome(link)
        if self.overlay.up and link.state == LinkState.CONNECTED:
            try:
                gcs, token = await self._ask_ray_head(peer_id)
            except RaytuiError as exc:
                log.info("console for %s through forwards: %s", peer_key, exc)
            else:
                return await self._overlay_console(peer_id, gcs, token, member)
        binds: dict[str, str] = {}
        for service in (RAY_DASHBOARD, RAY_CLIENT, RAY_GCS):
            existing = next(
                (
                    f
                    for f in self._forwards
                    if f.entry.peer_id == peer_id and f.entry.service == service and not f.error
                ),
                None,
            )
            if existing is not None:
                binds[service] = existing.entry.bind
                continue
            try:
                fwd = await self.forward(peer_id, service, f"{CONSOLE_BIND_HOST}:0")
            except RaytuiError:
                fwd = await self.forward(peer_id, service, "127.0.0.1:0")
            binds[service] = fwd.bind
        token = None
        if link.state == LinkState.CONNECTED:
            token = await self.fetch_token(peer_id)
        return ConsoleEndpoints(
            peer_id=peer_id,
            dashboard_url=f"http://{binds[RAY_DASHBOARD]}",
            gcs_address=binds[RAY_GCS],
            client_address=f"ray://{binds[RAY_CLIENT]}",
            token=token,
        )

    async def _overlay_console(
        self, peer_id: str, gcs: str, token: str | None, member: bool
    ) -> ConsoleEndpoints:
        head_ip = gcs.rpartition(":")[0]
        driver = node_ip = None
        if member:
            node = self.ray_node
            if node is None:
                entry = store.JoinEntry("worker", peer_id, gpus=0, cpus=0)
                plan = await self._node_plan(entry)
                self._state.join = entry
                self.save()
                node = self._start_node(plan)
            elif node.plan.head_address != gcs:
                raise RaytuiError(
                    f"this machine is a Ray node of another cluster ({node.plan.head_address});"
                    " `raytui leave` first to send prompts to this one"
                )
            with trio.move_on_after(START_NODE_TIMEOUT):
                await node.started.wait()
            if node.status().state != JoinState.RUNNING:
                raise RaytuiError(
                    f"this machine could not join {gcs} as a console node: "
                    f"{node.status().last_error or 'no answer'}"
                )
            driver, node_ip = gcs, node.plan.node_ip
        return ConsoleEndpoints(
            peer_id=peer_id,
            dashboard_url=f"http://{head_ip}:{RAY_HEAD_PORTS[RAY_DASHBOARD]}",
            gcs_address=gcs,
            client_address=f"ray://{head_ip}:{RAY_HEAD_PORTS[RAY_CLIENT]}",
            token=token,
            driver_address=driver,
            node_ip=node_ip,
            overlay=True,
        )

    async def add_peer(self, text: str, name: str | None) -> tuple[object, str | None]:
        address = parse_peer_multiaddr(text)
        health, error = await self.peers.add(address, name)
        return health, error
