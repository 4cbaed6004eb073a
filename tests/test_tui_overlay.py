"""The overlay in the TUI: the peers sidebar's overlay, joined-node and path lines, the node list's
PATH column with its link-down flag, and the add-peer dialog's "join its Ray cluster" choice.

Daemon readings are hand-built `DaemonStatus` snapshots (tests/support/overlay_fakes.py) fed
through the very message the peers poller posts; cluster snapshots come from a FAKE connection.
The dialog's join runs against REAL proxy daemons (their overlay is off, so the daemon refuses
with its own message). What cannot exist here is a STAND-IN, named so: a Ray node that starts
over the overlay (needs network namespaces and Ray: tests/test_overlay_join.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from msgspec.structs import replace  # nodes are msgspec Structs
from textual.pilot import Pilot

from raytui.errors import RaytuiError
from raytui.model.cluster import NodeState
from raytui.model.invite import Invite
from raytui.model.node_path import NodePath, OverlayPaths, PathKind
from raytui.model.overlay import JoinState, JoinStatus, OverlayStatus
from raytui.model.peers import short_peer_id
from raytui.proxy.overlay_kernel import PRIVILEGE_MESSAGE
from raytui.sources.proxy_control import ProxyControl
from raytui.tui.app import RaytuiApp
from raytui.tui.messages import PeerJoinDone
from raytui.tui.screens.peer_dialogs import AddPeerScreen
from raytui.tui.widgets.nodes import NodeTable
from raytui.tui.widgets.peers import overlay_details, short_reason
from tests.proxy_support.daemons import Daemon, running, running_allowed_by
from tests.support import overlay_fakes as ov
from tests.support.tui_fakes import (
    FakeConnection,
    connector_for,
    frozen_clock,
    screen_text,
    until,
)

SIZE = (100, 40)


class Host(ov.PeersHost):
    """Stands in for RaytuiApp around the sidebar and the dialog (as in test_tui_peers.py)."""

    def __init__(self, socket: Path | None = None, readonly: bool = False) -> None:
        super().__init__(socket, readonly=readonly, show=True)


# -- pure parts ---------------------------------------------------------------------------------


def test_paths_from_a_daemon_reading() -> None:
    paths = OverlayPaths.from_status(ov.daemon_status(box2_up=False))
    assert paths.path_of(ov.HEAD_IP) == NodePath(PathKind.LOCAL)
    assert paths.path_of(ov.BOX1_IP) == NodePath(PathKind.DIRECT, True, "box-1")
    assert paths.path_of(ov.BOX2_IP) == NodePath(PathKind.DIRECT, False, "box-2")
    home = paths.path_of(ov.HOME_IP)
    assert home == NodePath(PathKind.HUB, True, short_peer_id(ov.HOME), "lab")
    assert home.label == "via lab"
    assert paths.path_of("10.0.0.7") is None
    # Equal readings give equal paths (the app posts a change only when they differ).
    assert paths == OverlayPaths.from_status(ov.daemon_status(box2_up=False))
    assert paths != OverlayPaths.from_status(ov.daemon_status())
    off = ov.daemon_status(overlay=OverlayStatus.from_dict({}))
    assert not OverlayPaths.from_status(off)


def test_overlay_errors_are_shortened_for_the_sidebar() -> None:
    assert short_reason(PRIVILEGE_MESSAGE) == "needs root or CAP_NET_ADMIN"
    assert (
        short_reason("the overlay needs the iptables command, which is not installed (Debian…)")
        == "needs the iptables command, which is not installed"
    )
    assert short_reason("cannot open the intercept port: [Errno 98] in use") == (
        "cannot open the intercept port: [Errno 98] in use"
    )


# -- the sidebar --------------------------------------------------------------------------------


async def test_sidebar_shows_the_overlay_the_joined_node_and_each_peers_path() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        sidebar = app.sidebar
        await ov.feed_daemon(pilot, app.peers, ov.daemon_status())
        text = sidebar.text()
        assert "◆ overlay 100.64.0.1\n  25 open · 214 carried\n  refused 3 port not allowed" in text
        assert "● ray head running 3h00m\n  node a1b2c3d4 · 0 restarts" in text
        assert sidebar.peer_text(ov.LAB).endswith("⇢ 100.97.12.40 · direct")
        assert "⇢ 100.71.3.9 · direct" in sidebar.peer_text(ov.BOX1)
        # home-4090 is not on this daemon's allow-list: reached through lab, it has a row too.
        hub_only = sidebar.peer_text("route:" + ov.HOME)
        assert hub_only == f"◇ {short_peer_id(ov.HOME)}  up\n  ⇢ 100.102.7.77 · via lab"
        assert sidebar.border_title == "Peers [3]"
        # Its row cannot be removed (it is not on the list): d rings the bell, nothing asked.
        sidebar.focus_peers()
        sidebar.peer_list.highlighted = sidebar._order.index("route:" + ov.HOME) * 2
        await pilot.press("d")
        assert app.screen is app.screen_stack[0]

        # A link goes down: the peer's path says so at once; home-4090 is on the list now.
        await ov.feed_daemon(pilot, app.peers, ov.daemon_status(box2_up=False, with_home=True))
        assert "⇢ 100.88.31.4 · direct · down" in sidebar.peer_text(ov.BOX2)
        assert "⇢ 100.102.7.77 · via lab" in sidebar.peer_text(ov.HOME)
        assert "route:" + ov.HOME not in sidebar._order

        # A worker that keeps failing: its state, restarts and the error, cut to the width.
        restarting = JoinStatus(
            "worker", ov.LAB, f"{ov.LAB_IP}:6379", ov.HEAD_IP, JoinState.RESTARTING,
            None, None, ov.NOW - 30, 2,
            "ray start exited with code 1: GCS consider this node to be dead",
        )  # fmt: skip
        await ov.feed_daemon(pilot, app.peers, ov.daemon_status(join=restarting))
        text = sidebar.text()
        assert "↻ ray worker of lab restarting\n  node - · 2 restarts\n  ✗ ray start exited" in text
        failed = ov.head_join(state=JoinState.FAILED, node_id=None, last_error="no head")
        await ov.feed_daemon(pilot, app.peers, ov.daemon_status(join=failed))
        assert "✗ ray head failed\n  node - · 0 restarts\n  ✗ no head" in sidebar.text()


async def test_sidebar_says_why_the_overlay_is_off_and_o_shows_the_full_text() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        sidebar = app.sidebar
        refused = OverlayStatus(True, None, "100.64.0.0/10", PRIVILEGE_MESSAGE, (), 0, 0, {})
        status = ov.daemon_status(overlay=refused)
        await ov.feed_daemon(pilot, app.peers, status)
        text = sidebar.text()
        assert "✗ overlay off · o for why\n  needs root or CAP_NET_ADMIN\n" in text
        assert "sudo" not in text  # the full text is one key away, not in the sidebar
        sidebar.focus_peers()
        await pilot.press("o")
        await until(pilot, lambda: any(n[1] == "Overlay" for n in app.notes), 5, "o's details")
        details = next(n[2] for n in app.notes if n[1] == "Overlay")
        assert details == overlay_details(status, ov.NOW)
        assert f"overlay off: {PRIVILEGE_MESSAGE}" in details
        assert "Ray node: head on 100.64.0.1: running" in details

        never = ov.daemon_status(overlay=OverlayStatus.from_dict({}))
        await ov.feed_daemon(pilot, app.peers, never)
        assert "○ overlay off\n" in sidebar.text()
        starting = OverlayStatus(True, None, "100.64.0.0/10", None, (), 0, 0, {})
        await ov.feed_daemon(pilot, app.peers, ov.daemon_status(overlay=starting))
        assert "◌ overlay starting…" in sidebar.text()


# -- the node list ------------------------------------------------------------------------------


def overlay_app() -> RaytuiApp:
    return RaytuiApp(
        connector_for(FakeConnection([ov.overlay_cluster()]), progress=()),
        refresh=3600,
        clock=frozen_clock,
        target=f"http://{ov.HEAD_IP}:8265",
        nvml_sampler=None,
        local_hostname="gpu-head",
        local_addresses=("127.0.0.1", ov.HEAD_IP),
    )


async def test_node_rows_show_the_path_and_flag_a_link_down_before_ray_does() -> None:
    app = overlay_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.state.generation >= 1, 30, "the first snapshot")
        table = app.cluster_screen.query_one(NodeTable)
        head, box1, box2 = ov.overlay_cluster().nodes[:3]

        # No daemon answers: no PATH column at all.
        await until(pilot, lambda: app.peers.poller.is_mounted, 10, "the peers poller")
        await ov.feed_daemon(pilot, app.peers, None)
        assert "PATH" not in screen_text(app)
        assert "local" not in table.row_text(head.node_id)

        await ov.feed_daemon(pilot, app.peers, ov.daemon_status())
        await until(pilot, lambda: app.state.paths is not None, 5, "the paths")
        await pilot.pause()
        assert "PATH" in screen_text(app)
        assert table.row_text(head.node_id).split()[2:4] == ["local", "ALIVE"]
        assert table.row_text(box1.node_id).split()[2:4] == ["overlay", "ALIVE"]
        assert table.row_text(ov.HOME_NODE_ID).split()[2:5] == ["via", "lab", "ALIVE"]

        # box-2's link drops. Ray still reports it ALIVE (the same cluster snapshot); its row
        # says "link down" with the next daemon reading, without waiting for Ray.
        generation = app.state.generation
        await ov.feed_daemon(pilot, app.peers, ov.daemon_status(box2_up=False))
        await until(
            pilot, lambda: "link down" in table.row_text(box2.node_id), 5, "the link-down flag"
        )
        assert app.state.generation == generation
        assert app.state.snapshot is not None
        assert next(n for n in app.state.snapshot.nodes if n.ip == ov.BOX2_IP).alive
        row = table.row_text(box2.node_id)
        assert "✗ link down" in row and "ALIVE" not in row and "overlay" in row
        assert "✗ link down" in screen_text(app)
        assert "link down" not in table.row_text(box1.node_id)

        # The filter knows paths too.
        await pilot.press("slash", *"via lab")
        await pilot.pause()
        assert table.row_count == 1 and table.cursor_key == ov.HOME_NODE_ID
        await pilot.press("escape")

        # Back up: the flag goes. Then Ray declares box-2 dead: DEAD, its path greyed.
        await ov.feed_daemon(pilot, app.peers, ov.daemon_status())
        await until(pilot, lambda: "ALIVE" in table.row_text(box2.node_id), 5, "link up again")
        nodes = list(ov.overlay_cluster().nodes)
        nodes[2] = replace(box2, state=NodeState.DEAD, death_time=ov.NOW - 5, gpus=())
        app.feed(ov.snapshot(nodes))
        await until(pilot, lambda: "DEAD" in table.row_text(box2.node_id), 5, "box-2 dead")
        assert table.row_text(box2.node_id).split()[2] == "overlay"

        # The daemon goes away: the column goes with it.
        await ov.feed_daemon(pilot, app.peers, None)
        await until(pilot, lambda: app.state.paths is None, 5, "paths gone")
        await pilot.pause()
        assert "PATH" not in screen_text(app)


# -- the add-peer dialog: join its Ray cluster --------------------------------------------------


class RecordingControl(ProxyControl):
    """The real control client, recording each `join` call before making it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, timeout=60)
        self.joins: list[tuple[object, ...]] = []

    def join(self, peer: str | None = None, **kw: Any) -> JoinStatus:
        self.joins.append((peer, kw))
        return super().join(peer, **kw)


class StandInJoin(ProxyControl):
    """STAND-IN for a daemon whose Ray node starts (that needs namespaces and Ray, see
    tests/test_overlay_join.py): `join` answers `answer` (a JoinStatus, or an exception raised)
    and records its arguments; it accepts `invite=` as the invite branch's client will."""

    def __init__(self, answer: JoinStatus | Exception) -> None:
        super().__init__(Path("/nonexistent/stand-in.sock"))
        self.answer = answer
        self.joins: list[tuple[object, ...]] = []

    def join(self, peer: str | None = None, **kw: Any) -> JoinStatus:
        self.joins.append((peer, kw))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture(scope="module")
def peer_daemon() -> Iterator[Daemon]:
    with running("peer") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def own_daemon(peer_daemon: Daemon) -> Iterator[Daemon]:
    """The TUI's own daemon; the peer already allow-lists it."""
    with running_allowed_by(peer_daemon) as daemon:
        yield daemon


async def open_dialog(pilot: Pilot[Any], app: Host) -> AddPeerScreen:
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, AddPeerScreen), 5, "the add-peer dialog")
    screen = app.screen
    assert isinstance(screen, AddPeerScreen)
    return screen


async def fill(pilot: Pilot[Any], screen: AddPeerScreen, addr: str, name: str, gpus: str) -> None:
    """Address pasted, name typed, the join box ticked (space), a GPU count typed."""
    screen.addr_input.value = addr
    await pilot.press("tab", *name, "tab", "space", "tab", *gpus)
    await pilot.pause()


@pytest.mark.proxy
async def test_join_choice_joins_after_the_add_and_keeps_the_text_on_failure(
    own_daemon: Daemon, peer_daemon: Daemon
) -> None:
    peer_id = peer_daemon.status().peer_id
    app = Host(socket=own_daemon.control.path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.sidebar.status is not None, 20, "the own daemon")
        poller = app.peers.poller
        recording = RecordingControl(own_daemon.control.path)
        poller.join_control = recording

        screen = await open_dialog(pilot, app)
        assert not screen.join_checkbox.value and screen.gpus_input.disabled
        await fill(pilot, screen, peer_daemon.addr, "lab", "2")
        assert screen.join_checkbox.value and screen.gpus_input.value == "2"
        await pilot.press("enter")
        await until(pilot, lambda: screen.joining or not screen.busy, 30, "the add")
        await until(pilot, lambda: not screen.busy, 60, "the daemon's answer to join")

        # The peer was added and connected, then join was asked for with the GPUs typed...
        assert recording.joins == [(peer_id, {"gpus": 2})]
        assert own_daemon.status().peer(peer_id) is not None
        # ...and the daemon's own refusal shows, with everything typed kept.
        assert app.screen is screen
        assert screen.outcome.startswith("✗ joining failed: the overlay is off"), screen.outcome
        assert "raytui proxy start --overlay" in screen.outcome
        assert screen.addr_input.value == peer_daemon.addr
        assert screen.name_input.value == "lab"
        assert screen.join_checkbox.value and screen.gpus_input.value == "2"
        assert not screen.addr_input.disabled and screen.addr_input.has_focus

        # Again, with a daemon whose node starts (STAND-IN): the dialog closes, the node ID shows.
        started = JoinStatus(
            "worker", peer_id, f"{ov.LAB_IP}:6379", ov.BOX1_IP, JoinState.RUNNING,
            ov.BOX1_NODE_ID, 777, ov.NOW, 0, None,
        )  # fmt: skip
        stand_in = StandInJoin(started)
        poller.join_control = stand_in
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is not screen, 60, "the dialog to close")
        assert stand_in.joins == [(peer_id, {"gpus": 2})]
        joined = [n for n in app.notes if n[1] == "Joined lab"]
        assert joined and ov.BOX1_NODE_ID in joined[0][2], app.notes
        assert joined[0][2] == f"joined: Ray worker node {ov.BOX1_NODE_ID} on {ov.BOX1_IP}"
        own_daemon.control.remove_peer(peer_id)


async def test_a_node_that_does_not_start_yet_keeps_the_dialog_open() -> None:
    """The daemon answered, but its node is restarting: the state and last error show."""
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_dialog(pilot, app)
        screen.joining, screen.busy = True, True
        slow = ov.head_join(
            role="worker", state=JoinState.RESTARTING, node_id=None, last_error="GCS unreachable"
        )
        app.peers.post_message(PeerJoinDone("lab", slow, None))
        await until(pilot, lambda: not screen.busy, 5, "the answer")
        assert screen.outcome.startswith("! the Ray node did not start yet (restarting)")
        assert "GCS unreachable" in screen.outcome and "keeps trying" in screen.outcome
        assert app.screen is screen


HEAD_ID = str(ID.from_pubkey(create_new_key_pair().public_key))
INVITE = Invite(
    peer_id=HEAD_ID,
    addrs=(f"/ip4/203.0.113.5/tcp/4701/p2p/{HEAD_ID}",),
    secret="0123456789abcdef." + "k" * 43,
).line()


async def test_an_invite_always_joins_and_a_refusal_keeps_it() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        poller = app.peers.poller
        stand_in = StandInJoin(RaytuiError("this invite was already used"))
        poller.join_control = stand_in
        screen = await open_dialog(pilot, app)

        screen.addr_input.value = INVITE
        await pilot.pause()
        assert screen.check_text.startswith("✓ invite")
        assert screen.join_checkbox.value and screen.join_checkbox.disabled  # locked on
        assert not screen.gpus_input.disabled
        screen.gpus_input.value = "1"
        await pilot.press("enter")
        await until(pilot, lambda: not screen.busy, 10, "the daemon's answer")
        assert stand_in.joins == [(None, {"invite": INVITE, "gpus": 1})]
        assert screen.outcome.startswith("✗ joining failed: this invite was already used")
        assert screen.addr_input.value == INVITE and screen.gpus_input.value == "1"

        # Back to a multiaddr: the user's own choice (unticked) comes back.
        screen.addr_input.value = "/ip4/10.0.0.5/tcp/4701"
        await pilot.pause()
        assert not screen.join_checkbox.value and not screen.join_checkbox.disabled
        assert screen.gpus_input.disabled


async def test_a_garbled_invite_says_what_is_wrong_and_is_not_sent() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_dialog(pilot, app)
        screen.addr_input.value = INVITE[:-12]
        await pilot.pause()
        assert screen.check_text.startswith("✗ ")
        assert "invite" in screen.check_text


async def test_read_only_consoles_cannot_join() -> None:
    app = Host(readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        await pilot.pause()
        assert not isinstance(app.screen, AddPeerScreen)  # no dialog at all
        # Even a dialog opened by hand offers no join.
        app.push_screen(AddPeerScreen(join_disabled="read-only"))
        await until(pilot, lambda: isinstance(app.screen, AddPeerScreen), 5, "the dialog")
        screen = app.screen
        assert isinstance(screen, AddPeerScreen)
        assert screen.join_checkbox.disabled and screen.gpus_input.disabled
