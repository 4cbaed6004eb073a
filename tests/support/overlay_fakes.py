"""Hand-built peer-daemon readings with an overlay, and cluster snapshots whose nodes sit on it.

The console is the head's machine (gpu-head, overlay 100.64.0.1). Its daemon reaches box-1 and
box-2 (each behind a NAT, they dialled the head) directly, lab directly, and home-4090 only
through lab (home-4090 allow-lists lab alone). Node IPs are overlay addresses, as `raytui join`
starts them. Fed to the peers controller through the very message the peers poller posts
(`PeersStatusReady`); no daemon, no Ray. `PeersHost` stands in for RaytuiApp around the
controller.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from msgspec.structs import replace as replace_struct
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.pilot import Pilot
from textual.widgets import Footer, Static

from raytui.model.cluster import ClusterSnapshot
from raytui.model.overlay import (
    JoinState,
    JoinStatus,
    OverlayRoute,
    OverlayStatus,
    RouteState,
)
from raytui.model.peers import DaemonStatus, LinkState, PeerHealth
from raytui.tui import peers_controller
from raytui.tui.messages import PeersStatusReady
from raytui.tui.peers_controller import PeersController
from raytui.tui.peers_poller import Starter, start_daemon
from raytui.tui.widgets.peers import PeersSidebar
from tests.support.tui_fakes import NOW, gpu2_node, head_node, snapshot, until

ME = "12D3KooWHeadHeadHeadHeadHeadHeadHeadHeadHeadHead1111"
LAB = "12D3KooWLabLabLabLabLabLabLabLabLabLabLabLabLab2222"
BOX1 = "12D3KooWBoxOneBoxOneBoxOneBoxOneBoxOneBoxOne3333"
BOX2 = "12D3KooWBoxTwoBoxTwoBoxTwoBoxTwoBoxTwoBoxTwo4444"
HOME = "12D3KooWHomeHomeHomeHomeHomeHomeHomeHomeHome5555"

HEAD_IP, LAB_IP, BOX1_IP, BOX2_IP, HOME_IP = (
    "100.64.0.1",
    "100.97.12.40",
    "100.71.3.9",
    "100.88.31.4",
    "100.102.7.77",
)
HOME_NODE_ID = "d4e5f60718293a4b5c6d7e8f9001122334455667788990aabbccddee"
BOX1_NODE_ID = "e5f60718293a4b5c6d7e8f9001122334455667788990aabbccddeeff"


def peer(
    peer_id: str, name: str, state: LinkState = LinkState.CONNECTED, tick: int = 0, **kw: Any
) -> PeerHealth:
    """`tick`: how many 2-second readings into its traffic (bytes grow with it, for rates)."""
    connected = state is LinkState.CONNECTED
    rate = kw.pop("rate", 0)
    return PeerHealth(
        peer_id=peer_id,
        name=name,
        addrs=(f"/ip4/203.0.113.{len(name)}/tcp/4701/p2p/{peer_id}",),
        state=state,
        rtt_ms=kw.pop("rtt_ms", 4.2 if connected else None),
        reconnects=kw.pop("reconnects", 0),
        active_streams=kw.pop("active_streams", 3 if connected else 0),
        bytes_in=5_000_000 + tick * rate * 2,
        bytes_out=700_000 + tick * rate // 4,
        last_error=kw.pop("last_error", None),
        since=kw.pop("since", NOW - 600),
    )


def routes(*, box2_up: bool = True, home_up: bool = True) -> tuple[OverlayRoute, ...]:
    up, down = RouteState.UP, RouteState.DOWN
    return (
        OverlayRoute(LAB, LAB_IP, None, up),
        OverlayRoute(BOX1, BOX1_IP, None, up),
        OverlayRoute(BOX2, BOX2_IP, None, up if box2_up else down),
        OverlayRoute(HOME, HOME_IP, LAB, up if home_up else down),
    )


def head_join(**changes: Any) -> JoinStatus:
    join = JoinStatus(
        role="head",
        peer_id=None,
        head_address=f"{HEAD_IP}:6379",
        node_ip=HEAD_IP,
        state=JoinState.RUNNING,
        node_id="a1b2c3d4e5f60718293a4b5c6d7e8f9001122334455667788990aabb",
        pid=4321,
        since=NOW - 3 * 3600,
        restarts=0,
        last_error=None,
    )
    return replace(join, **changes)


def daemon_status(
    *,
    box2_up: bool = True,
    home_up: bool = True,
    overlay: OverlayStatus | None = None,
    join: JoinStatus | None = None,
    with_home: bool = False,
    tick: int = 0,
) -> DaemonStatus:
    """The head's daemon. `with_home`: home-4090 is on the allow-list too (but never dialled
    directly: its row then shows "via lab"); without it, it appears only as a hub route.
    `tick`: readings so far (peers' byte counters grow with it, so two readings give rates)."""
    peers = [
        peer(LAB, "lab", tick=tick, rtt_ms=11.8, rate=180_000),
        peer(BOX1, "box-1", tick=tick, rtt_ms=23.5, active_streams=9, rate=41_000_000),
        peer(
            BOX2,
            "box-2",
            LinkState.CONNECTED if box2_up else LinkState.DOWN,
            rtt_ms=31.0 if box2_up else None,
            since=NOW - 4,
            last_error=None if box2_up else "ping timed out",
        ),
    ]
    if with_home:
        peers.append(peer(HOME, "home-4090", LinkState.DOWN, last_error="dial failed: timed out"))
    if overlay is None:
        overlay = OverlayStatus(
            enabled=True,
            address=HEAD_IP,
            prefix="100.64.0.0/10",
            error=None,
            routes=routes(box2_up=box2_up, home_up=home_up),
            carried=214,
            active=25,
            refused={"port not allowed": 3},
        )
    return DaemonStatus(
        peer_id=ME,
        addrs=(f"/ip4/203.0.113.5/tcp/4701/p2p/{ME}",),
        pid=2718,
        uptime_s=3 * 3600 + 120,
        share_token=True,
        refused=0,
        peers=tuple(peers),
        services=(),
        forwards=(),
        overlay=overlay,
        join=head_join() if join is None else join,
    )


def overlay_cluster() -> ClusterSnapshot:
    """The head's cluster: itself, box-1 and box-2 (2 GPUs each) and home-4090 (1 GPU), all
    started on their overlay addresses."""
    head = head_node(ip=HEAD_IP)
    box1 = gpu2_node(node_id=BOX1_NODE_ID, hostname="box-1", ip=BOX1_IP)
    box2 = gpu2_node(hostname="box-2", ip=BOX2_IP)
    home = replace_struct(
        head_node(),
        node_id=HOME_NODE_ID,
        hostname="home-4090",
        ip=HOME_IP,
        is_head=False,
        cpu_percent=12.0,
    )
    return replace(snapshot([head, box1, box2, home]), address=f"http://{HEAD_IP}:8265")


@peers_controller.serve_keys
class PeersHost(App[None]):
    """Stands in for RaytuiApp around the peers controller: a body, a footer, the controller
    (held and served keys as RaytuiApp does), a notification log and a count of readings."""

    BINDINGS: ClassVar[list[BindingType]] = peers_controller.BINDINGS

    def __init__(
        self,
        socket: Path | None = None,
        *,
        starter: Starter = start_daemon,
        readonly: bool = False,
        show: bool = False,
    ) -> None:
        super().__init__()
        self.peers = PeersController(
            socket=socket, interval=0.25, starter=starter, readonly=readonly, show=show
        )
        self.notes: list[tuple[str, str, str]] = []  # (severity, title, message)
        self.reads = 0

    def compose(self) -> ComposeResult:
        yield Static("cluster view", id="body")
        yield Footer()

    def on_mount(self) -> None:
        self.peers_start()

    def peers_start(self) -> None:
        self.screen.mount(self.peers)

    def notify(
        self, message: str, *, title: str = "", severity: Any = "information", **kw: Any
    ) -> None:
        self.notes.append((str(severity), title, message))
        super().notify(message, title=title, severity=severity, **kw)

    def on_peers_status_ready(self, message: PeersStatusReady) -> None:
        self.reads += 1  # it bubbled up from the controller

    @property
    def sidebar(self) -> PeersSidebar:
        return self.peers.sidebar


async def feed_daemon(
    pilot: Pilot[Any], peers: PeersController, status: DaemonStatus | None, at: float | None = None
) -> None:
    """Hand the peers controller one reading of its daemon, as the peers poller posts it. The
    first call waits for the poller's own first reading (there is no daemon here) and stops it,
    so the fed readings are the only ones. `at`: the reading's monotonic time (for byte rates)."""
    poller = peers.poller
    if not poller.stopped:
        await until(pilot, lambda: poller.reads > 0 and not poller.busy, 10.0)
        poller.stop()
    sidebar = peers.sidebar
    running = status is not None
    at = time.monotonic() if at is None else at
    error = None if running else "not running"
    peers.post_message(PeersStatusReady(status, error, running=running, at=at, now=NOW))
    await until(pilot, lambda: sidebar.status is status, 10.0, "the fed daemon reading")
