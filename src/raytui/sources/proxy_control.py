"""Client of the proxy daemon's control socket (`raytui proxy run`), for the CLI and the TUI.

Plain blocking stdlib sockets, one short connection per request: call it directly from the CLI,
or from a thread worker in the TUI. Every method returns `raytui.model.peers` snapshots and raises:
- `DaemonNotRunning` (a `RaytuiError`) when no daemon listens on the socket;
- `UsageError` when the daemon rejected the input (unknown peer, bad multiaddr, …);
- `RaytuiError` for other failures, with a message meant for the user.

Typical use::

    control = ProxyControl()
    status = control.status()            # DaemonStatus: own peer ID, addrs, peers' health
    health, error = control.add_peer("/ip4/203.0.113.7/tcp/4701/p2p/12D3KooW…", name="lab")
    endpoints = connect_console("lab")   # ConsoleEndpoints for `raytui --via lab`
"""

from __future__ import annotations

from pathlib import Path

from raytui.control_socket import (
    NOT_RUNNING,
    SOCKET_NAME,
    ControlSocket,
    DaemonNotRunning,
    is_running,
    socket_path,
)
from raytui.model.invite import DEFAULT_EXPIRES_S, IssuedInvite, Redeemed
from raytui.model.overlay import JoinStatus
from raytui.model.peers import (
    ConsoleEndpoints,
    DaemonStatus,
    Forward,
    PeerHealth,
    Service,
)

__all__ = [
    "NOT_RUNNING",
    "SOCKET_NAME",
    "DaemonNotRunning",
    "ProxyControl",
    "connect_console",
    "is_running",
    "ray_endpoints",
    "socket_path",
]


class ProxyControl(ControlSocket):
    """The daemon's typed requests, returning `raytui.model.peers` snapshots."""

    # --- queries --------------------------------------------------------------------------------

    def status(self) -> DaemonStatus:
        return DaemonStatus.from_dict(self.request("status"))

    def peers(self) -> list[PeerHealth]:
        return [PeerHealth.from_dict(p) for p in self.request("peers.list")]

    # --- peers ----------------------------------------------------------------------------------

    def add_peer(self, multiaddr: str, name: str | None = None) -> tuple[PeerHealth, str | None]:
        """Allow-list and dial. Returns the peer's health and the first dial's error (None when
        it connected). The peer stays on the list either way; the daemon keeps retrying."""
        result = self.request("peers.add", multiaddr=multiaddr, name=name)
        error = result.get("error")
        return PeerHealth.from_dict(result["peer"]), None if error is None else str(error)

    def remove_peer(self, peer: str) -> str:
        """Remove by peer ID or name; returns the peer ID. UsageError if it is not listed."""
        return str(self.request("peers.remove", peer=peer)["peer_id"])

    # --- services and forwards ------------------------------------------------------------------

    def expose(self, name: str, target: str) -> Service:
        return Service.from_dict(self.request("expose", name=name, target=target))

    def expose_ray_head(
        self, share_token: bool = False, targets: dict[str, str] | None = None
    ) -> list[Service]:
        """Expose the Ray head at `targets` (service -> HOST:PORT); None: the head the daemon
        runs itself."""
        result = self.request("expose.ray_head", share_token=share_token, targets=targets)
        return [Service.from_dict(s) for s in result]

    def unexpose(self, name: str) -> Service:
        return Service.from_dict(self.request("unexpose", name=name))

    def set_share_token(self, enabled: bool) -> None:
        self.request("share_token", enabled=enabled)

    def forward(self, peer: str, service: str, bind: str | None = None) -> Forward:
        return Forward.from_dict(self.request("forward", peer=peer, service=service, bind=bind))

    def unforward(self, bind: str) -> Forward:
        return Forward.from_dict(self.request("unforward", bind=bind))

    def token(self, peer: str) -> str | None:
        token = self.request("token", peer=peer)["token"]
        return None if token is None else str(token)

    def console(self, peer: str, member: bool = False) -> ConsoleEndpoints:
        """With `member`, over the overlay this machine becomes a node of the peer's cluster
        (no CPUs or GPUs) so that a driver here can stream; see `ConsoleEndpoints`."""
        return ConsoleEndpoints.from_dict(self.request("console", peer=peer, member=member))

    def join(
        self,
        peer: str | None = None,
        *,
        head: bool = False,
        gpus: int | None = None,
        cpus: int | None = None,
        invite: str | None = None,
    ) -> JoinStatus:
        """Start a Ray node on the overlay (a worker of PEER's head, or of the head that made
        `invite`, a pasted `raytui invite` line, or a head); returns once it started or failed
        to. The daemon keeps it running until `leave`. With an invite the daemon first proves
        it to the head, and both allow-list each other; a refused invite (wrong, used, expired)
        is a RaytuiError with one line saying why, a garbled line a UsageError."""
        return JoinStatus.from_dict(
            self.request("join", peer=peer, head=head, gpus=gpus, cpus=cpus, invite=invite)
        )

    def invite(self, expires_s: float = DEFAULT_EXPIRES_S) -> IssuedInvite:
        """A one-time invite line from this daemon, valid `expires_s` seconds."""
        return IssuedInvite.from_dict(self.request("invite.create", expires_s=expires_s))

    def redeem_invite(self, invite: str) -> Redeemed:
        """Prove an invite line to its head without joining Ray: both daemons allow-list each
        other. Raises as `join` does."""
        return Redeemed.from_dict(self.request("invite.redeem", invite=invite))

    def leave(self) -> JoinStatus | None:
        """Stop the node `join` started; None when there was none."""
        result = self.request("leave")
        return None if result is None else JoinStatus.from_dict(result)


def connect_console(
    peer: str, path: Path | None = None, *, member: bool = False
) -> ConsoleEndpoints:
    """For `raytui --via PEER`: how to reach PEER's Ray head, and its Ray token if it shares it.

    With the overlay up on both daemons and PEER offering its head, the head's own addresses on
    the overlay (`overlay` True); with `member`, this machine also becomes a node of that
    cluster (no CPUs or GPUs) and `driver_address` is the GCS a driver here attaches to, so
    prompts stream. Otherwise forwards on 127.0.0.3 to PEER's `ray-dashboard`, `ray-client` and
    `ray-gcs` services (reused when they exist): watching, and Ray Client (no streaming)."""
    return ProxyControl(path, timeout=150.0 if member else 30.0).console(peer, member)


# The name `raytui.sources.attach` looks up for `--via PEER`.
ray_endpoints = connect_console
