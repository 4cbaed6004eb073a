"""The peers sidebar and its dialogs, driven by Pilot against REAL proxy daemons.

A minimal host app (`PeersHost` with a placeholder body) holds the peers controller and the
dialogs, so these tests do not depend on the rest of the TUI. Daemons run as separate processes
(tests/proxy_support): `own` is the TUI's daemon, `peer` the machine being added. Waits poll the
UI with `pilot.pause()` against a deadline.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Static

from raytui.model.peers import DaemonStatus, LinkState, PeerHealth
from raytui.tui.peer_rates import NO_RATE, Rate, byte_rates, human_rate
from raytui.tui.peers_poller import Starter, start_daemon
from raytui.tui.screens.peer_dialogs import AddPeerScreen, ConfirmRemoveScreen
from tests.proxy_support.daemons import Daemon, free_port, running, running_allowed_by
from tests.support.overlay_fakes import PeersHost
from tests.support.tui_fakes import until as tui_until

pytestmark = pytest.mark.proxy

GOOD_ID = "12D3KooWA73AbUA2dz1hWm1PToPN21piJoqKKoKioTHyCHR5m8jD"
SIZE = (100, 32)


class Host(PeersHost):
    """Stands in for RaytuiApp: a body, a footer, the peers controller, a notification log."""

    def __init__(self, socket: Path | None = None, starter: Starter = start_daemon) -> None:
        super().__init__(socket, starter=starter)


async def until(
    pilot: Pilot[Any], cond: Callable[[], object], what: str, within: float = 20.0
) -> None:
    """tui_fakes.until, failing with the sidebar's text."""
    app = pilot.app
    shown = lambda: app.sidebar.text() if isinstance(app, Host) else ""  # noqa: E731
    await tui_until(pilot, cond, within, what, detail=shown)


async def type_text(pilot: Pilot[Any], text: str) -> None:
    """Key by key, as typed (slow: keep it for short text)."""
    await pilot.press(*text)


async def paste(pilot: Pilot[Any], text: str) -> None:
    """Into the focused widget, as a terminal paste (how a multiaddr usually arrives)."""
    focused = pilot.app.focused
    assert focused is not None
    focused.post_message(events.Paste(text))
    await pilot.pause()


def dialog(app: Host) -> AddPeerScreen:
    screen = app.screen
    assert isinstance(screen, AddPeerScreen), screen
    return screen


async def open_dialog(pilot: Pilot[Any], app: Host) -> AddPeerScreen:
    """`a` acts while the sidebar is shown (`p`)."""
    if not app.sidebar.display:
        await pilot.press("a")
        assert not isinstance(app.screen, AddPeerScreen)
        await pilot.press("p")
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, AddPeerScreen), "the add-peer dialog")
    return dialog(app)


async def retype(pilot: Pilot[Any], screen: AddPeerScreen, text: str) -> None:
    """Clear the field (end, ctrl+u, as a user would) and paste."""
    screen.addr_input.focus()
    await pilot.press("end", "ctrl+u")
    await paste(pilot, text)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def peer() -> Iterator[Daemon]:
    with running("peer") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def own(peer: Daemon) -> Iterator[Daemon]:
    """The TUI's own daemon; the peer already allow-lists it."""
    with running_allowed_by(peer) as daemon:
        yield daemon


def proxy_stop() -> subprocess.CompletedProcess[str]:
    """`raytui proxy stop` for this test's RAYTUI_HOME."""
    return subprocess.run(
        [sys.executable, "-m", "raytui", "proxy", "stop"],
        capture_output=True,
        text=True,
        timeout=30,
    )


# -- the sidebar --------------------------------------------------------------------------------


async def test_sidebar_offers_to_start_the_daemon_then_shows_it(raytui_home: Path) -> None:
    """No daemon: the sidebar says so and how to start one; `P` starts it (detached, through
    `raytui proxy start`); it shows up running; stopping it gives one notification, not one per
    poll."""
    port = free_port()
    app = Host(starter=lambda: start_daemon([f"/ip4/127.0.0.1/tcp/{port}"]))
    try:
        async with app.run_test(size=SIZE) as pilot:
            sidebar = app.sidebar
            assert not sidebar.display
            await pilot.press("p")
            assert sidebar.display and sidebar.has_focus_within
            assert app.screen.has_class("-peers")  # for layouts that adapt to the sidebar
            await until(pilot, lambda: sidebar.running is False, "the first reading")
            assert "proxy daemon not running — press P to start it" in sidebar.text()
            assert app.notes == []  # never running is a state, not news

            await pilot.press("P")
            await until(pilot, lambda: sidebar.starting, "starting", within=2)
            assert "starting the proxy daemon" in sidebar.text()
            await until(pilot, lambda: not sidebar.starting, "`raytui proxy start` to return", 40)
            await until(pilot, lambda: sidebar.status is not None, "the started daemon")
            status = sidebar.status
            assert status is not None
            text = sidebar.text()
            assert "proxy running" in text and f"pid {status.pid}" in text
            assert f"…{status.peer_id[-8:]}" in text
            assert "no peers yet — press a to add one" in text
            assert any("proxy daemon started" in n[2] for n in app.notes), app.notes

            # `p` hides it again and hands focus back.
            await pilot.press("p")
            assert not sidebar.display and not app.screen.has_class("-peers")

            stop = await asyncio.to_thread(proxy_stop)
            assert stop.returncode == 0, stop.stderr
            await until(pilot, lambda: sidebar.running is False, "the daemon gone")
            reads = app.reads
            await until(pilot, lambda: app.reads >= reads + 5, "five more failing reads")
            stopped = [n for n in app.notes if n[1] == "Proxy daemon stopped"]
            assert len(stopped) == 1, app.notes
            assert "proxy daemon not running" in sidebar.text()
    finally:
        await asyncio.to_thread(proxy_stop)


class LateHost(Host):
    """Mounts its sidebar only when told: `p` can come first, as on a slow start."""

    def on_mount(self, event: events.Mount) -> None:
        event.prevent_default()  # Textual would run Host.on_mount (peers_start) as well


async def test_p_pressed_before_the_sidebar_is_mounted_is_not_lost(raytui_home: Path) -> None:
    app = LateHost(socket=raytui_home / "nobody.sock")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        assert not app.sidebar.is_mounted
        app.peers_start()
        sidebar = app.sidebar
        await until(pilot, lambda: sidebar.display and sidebar.has_focus_within, "shown, focused")
        await until(pilot, lambda: sidebar.running is False, "the first reading")
    twice = LateHost(socket=raytui_home / "nobody.sock")
    async with twice.run_test(size=SIZE) as pilot:
        await pilot.press("p", "p")  # shown and hidden again before it was there: nothing
        twice.peers_start()
        await until(pilot, lambda: twice.sidebar.is_mounted, "the sidebar mounted")
        await pilot.pause()
        assert not twice.sidebar.display


# -- the add-peer dialog ------------------------------------------------------------------------


async def test_add_dialog_validates_as_you_type_and_keeps_the_text(raytui_home: Path) -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_dialog(pilot, app)
        assert screen.addr_input.has_focus
        assert "paste an address" in screen.check_text  # empty: a hint, not an error

        await type_text(pilot, "hello world")
        assert "is not a multiaddr" in screen.check_text
        assert screen.addr_input.has_class("-invalid")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and not screen.busy
        assert screen.addr_input.value == "hello world"

        await retype(pilot, screen, "/ip4/10.0.0.5/tcp/4701")
        assert "has no /p2p/PEER_ID at the end" in screen.check_text
        await pilot.press("enter")
        assert app.screen is screen and screen.addr_input.value == "/ip4/10.0.0.5/tcp/4701"

        await retype(pilot, screen, "/ip4/10.0.0.5/tcp/4701/p2p/12D3KooW0OIl")
        assert "is not base58" in screen.check_text
        await retype(pilot, screen, f"/ip4/10.0.0.5/tcp/4701/p2p/{GOOD_ID[:-3]}")
        assert "not a valid libp2p peer ID" in screen.check_text
        await retype(pilot, screen, "/ip4/10.0.0.300/tcp/4701/p2p/" + GOOD_ID)
        assert "not an IPv4 address" in screen.check_text

        good = f"/ip4/10.0.0.5/tcp/4701/p2p/{GOOD_ID}"
        await retype(pilot, screen, good)
        assert screen.check_text.startswith("✓ peer …")
        assert not screen.addr_input.has_class("-invalid")

        # Valid, but no daemon runs here: the daemon's error shows, nothing typed is lost.
        await pilot.press("tab")
        await type_text(pilot, "lab")
        await pilot.press("enter")
        await until(pilot, lambda: not screen.busy and screen.outcome, "the daemon's answer")
        assert app.screen is screen
        assert "proxy daemon not running" in screen.outcome
        assert screen.addr_input.value == good and screen.name_input.value == "lab"
        assert screen.addr_input.has_focus

        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, AddPeerScreen), "the dialog closed")


async def test_add_a_peer_it_connects_then_remove_it_with_confirmation(
    own: Daemon, peer: Daemon
) -> None:
    peer_id = peer.status().peer_id
    app = Host(socket=own.control.path)
    async with app.run_test(size=SIZE) as pilot:
        sidebar = app.sidebar
        await pilot.press("p")
        await until(pilot, lambda: sidebar.status is not None, "the own daemon's status")
        assert "proxy running" in sidebar.text()

        screen = await open_dialog(pilot, app)
        await paste(pilot, peer.addr)
        assert screen.check_text.startswith("✓ peer")
        await pilot.press("tab")
        await type_text(pilot, "lab")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is not screen, "the dialog to close", 20)
        assert any(n[2].startswith("added lab: connected") for n in app.notes), app.notes

        def row() -> str:
            return sidebar.peer_text(peer_id) if peer_id in sidebar._order else ""

        await until(pilot, lambda: "connected · rtt" in row() and " ms" in row(), "connected+RTT")
        await until(pilot, lambda: " B/s" in row(), "a rate, from the next reading")
        text = row()
        assert text.startswith("● lab  connected · rtt ")
        assert "↓ " in text and " B/s" in text  # a rate once two readings exist
        assert "0 streams · 0 reconnects" in text
        assert sidebar.highlighted_peer is not None
        assert sidebar.highlighted_peer.peer_id == peer_id
        assert own.peer_state(peer_id) == LinkState.CONNECTED

        # Tunnel health under the daemon: each forward, and what this daemon offers.
        peer.control.expose("web", "127.0.0.1:9")
        own.control.expose("notes", "127.0.0.1:9")
        fwd = own.control.forward("lab", "web")
        await until(pilot, lambda: "→ lab:web" in sidebar.text(), "the forward in the sidebar")
        port = fwd.bind.rpartition(":")[2]
        assert f"⇄ :{port} → lab:web · 0 active" in sidebar.text()  # 127.0.0.1 left out
        assert "offers notes" in sidebar.text()
        own.control.unforward(fwd.bind)
        await until(pilot, lambda: "→ lab:web" not in sidebar.text(), "the forward gone")

        # d, then n: kept.
        sidebar.focus_peers()
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmRemoveScreen), "confirm")
        assert peer_id in str(app.screen.query_one("#confirm-question", Static).render())
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmRemoveScreen), "closed")
        reads = app.reads  # two more reads: one began after the dialog closed and saw the peer
        await until(pilot, lambda: app.reads >= reads + 2, "two more reads of the daemon")
        assert own.status().peer(peer_id) is not None and peer_id in sidebar._order

        # d, then y: removed, from the daemon and from the sidebar.
        await pilot.press("delete")
        await until(pilot, lambda: isinstance(app.screen, ConfirmRemoveScreen), "confirm")
        await pilot.press("y")
        await until(pilot, lambda: ("information", "Peers", "removed lab") in app.notes, "removed")
        await until(pilot, lambda: peer_id not in sidebar._order, "the peer gone")
        assert own.status().peer(peer_id) is None
        assert "no peers yet" in sidebar.text()


async def test_daemon_errors_show_in_the_dialog_and_keep_the_text(own: Daemon) -> None:
    """Valid addresses the daemon cannot use: its own (refused, nothing added) and one where
    nothing listens (allow-listed, not reachable yet)."""
    app = Host(socket=own.control.path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.sidebar.status is not None, "the own daemon's status")
        screen = await open_dialog(pilot, app)

        await paste(pilot, own.addr)
        await pilot.press("enter")
        await until(pilot, lambda: not screen.busy and screen.outcome, "the daemon's answer")
        assert "this daemon's own peer ID" in screen.outcome
        assert screen.outcome.startswith("✗")
        assert screen.addr_input.value == own.addr
        assert own.status().peers == ()

        nowhere = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{GOOD_ID}"
        await retype(pilot, screen, nowhere)
        await pilot.press("tab")
        await type_text(pilot, "ghost")
        await pilot.press("enter")
        assert screen.busy and screen.addr_input.disabled
        assert "dialing" in screen.outcome
        await until(pilot, lambda: not screen.busy, "the dial to fail", 20)
        assert app.screen is screen
        assert "ghost is on the allow-list but not reachable yet" in screen.outcome
        assert "keeps retrying" in screen.outcome
        assert screen.addr_input.value == nowhere and screen.name_input.value == "ghost"
        assert not screen.addr_input.disabled and screen.addr_input.has_focus

        # The sidebar lists it, down, with the dial error.
        await pilot.press("escape")

        def ghost() -> str:
            return app.sidebar.peer_text(GOOD_ID) if GOOD_ID in app.sidebar._order else ""

        await until(pilot, lambda: "✗" in ghost(), "the ghost's error in the sidebar")
        assert ghost().startswith("○ ghost  down") or ghost().startswith("◌ ghost  connecting")
        own.control.remove_peer(GOOD_ID)
        await until(pilot, lambda: GOOD_ID not in app.sidebar._order, "the ghost removed")


# -- bytes per second ---------------------------------------------------------------------------


def _peer(peer_id: str, bytes_in: int, bytes_out: int) -> PeerHealth:
    return PeerHealth(
        peer_id, None, (), LinkState.CONNECTED, 1.0, 0, 0, bytes_in, bytes_out, None, None
    )


def _status(pid: int, *peers: PeerHealth) -> DaemonStatus:
    return DaemonStatus("me", (), pid, 1.0, False, 0, peers, (), ())


def test_byte_rates_from_successive_readings() -> None:
    a0, a1 = _peer("a", 1_000, 0), _peer("a", 3_000_000, 500)
    b1 = _peer("b", 10, 10)
    rates = byte_rates(_status(1, a0), 10.0, _status(1, a1, b1), 12.0)
    assert rates == {"a": Rate(1_499_500.0, 250.0), "b": NO_RATE}
    assert byte_rates(None, 0.0, _status(1, a1), 1.0) == {"a": NO_RATE}
    assert byte_rates(_status(1, a0), 5.0, _status(1, a1), 5.0) == {"a": NO_RATE}
    assert byte_rates(_status(1, a0), 1.0, _status(2, a1), 2.0) == {"a": NO_RATE}  # restarted
    assert byte_rates(_status(1, a1), 1.0, _status(1, a0), 2.0) == {"a": Rate(None, None)}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (0.0, "0 B/s"),
        (812.0, "812 B/s"),
        (12_345.0, "12.3 kB/s"),
        (104_000_000.0, "104 MB/s"),
        (2.5e9, "2.5 GB/s"),
    ],
)
def test_human_rate(value: float | None, text: str) -> None:
    assert human_rate(value) == text
