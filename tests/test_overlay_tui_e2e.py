"""End to end, the way a person does it: a GPU box behind NAT joins a head from the TUI's add-peer
dialog with an invite line, and the head's TUI shows the new node and how it is reached.

Real parts only: network namespaces with a real NAT (tests/support/netns.py), real
`raytui proxy run --overlay` daemons (tests/support/overlay_world.py), real `ray start` nodes, and
the installed `raytui` binary in tmux (tests/support/tmux.py), each copy running inside its
machine's namespace (`ip netns exec`) with that machine's daemon home in its environment, driven
by keystrokes and a bracketed paste. GPUs are logical (the dialog's GPU count): no NVIDIA
hardware here.

1. The head (public) starts its daemon with the overlay, offers its Ray head and token
   (`raytui proxy expose --ray-head --share-token`), starts that head (`raytui join --head`) and
   prints an invite (`raytui invite`).
2. On the box (behind NAT), `raytui --via HEAD`: no such peer yet, so it is disconnected. `p`
   opens the peers sidebar, `a` the add-peer dialog; the invite line is pasted, the join choice
   shows checked (an invite always joins), GPUs 1, Enter. The TUI reports the join with the
   node's ID, and the sidebar shows the worker running with that node.
3. On the head, `raytui --address HEAD_OVERLAY:6379`: the box's node is in the Nodes view,
   ALIVE, with PATH `overlay` (the head's own node: `local`), and the sidebar shows the box's
   overlay address reached `direct`.
4. Back on the box, its TUI reaches the cluster `--via` the head over the overlay now (it
   retries by itself; `r` hurries it): the box's own node is `local`, the head's `overlay`.

On failure (and with `pytest -s`) the screens of each step and the time to reach it are printed.
Every tmux session is killed, then the daemons (and the Ray nodes they started) are stopped and
the namespaces removed with everything still running in them, the TUIs included.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raytui.model.overlay import JoinState
from raytui.tui.screens.peer_dialogs import JOIN_LABEL
from tests.support.netns import Topology, require_netns
from tests.support.overlay_world import NsDaemon
from tests.support.tmux import TmuxSession
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.timeout(900)]

RAYTUI = str(Path(sys.executable).parent / "raytui")
SIZE = (120, 36)
# Each machine's host name (its own UTS namespace): the invite names each daemon's peer after
# the other machine's host name, and Ray's nodes report theirs.
HEAD_NAME, BOX_NAME = "gpu-head", "gpu-box"


@dataclass
class World:
    topo: Topology
    head: NsDaemon
    box: NsDaemon
    token: str
    invite: str
    terms: list[TmuxSession] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    phases: list[tuple[str, float]] = field(default_factory=list)
    screens: list[tuple[str, str]] = field(default_factory=list)

    def phase(self, what: str, screen: str | None = None) -> None:
        """Note how long it took to get here (and the screen that showed it), for the report
        printed at the end (`pytest -s`, or with a failure)."""
        self.phases.append((what, time.monotonic() - self.started))
        if screen is not None:
            self.screens.append((what, screen))

    def tui(self, d: NsDaemon, *args: str) -> TmuxSession:
        """The `raytui` binary in tmux, inside `d`'s namespace, with `d`'s daemon home (its
        control socket), a HOME of its own (no stray ~/.ray/auth_token) and nothing else."""
        keep = ("PATH", "LANG", "LC_ALL", "USER", "LOGNAME")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        home = Path(tempfile.mkdtemp(prefix="tui", dir=d.home))
        env.update(
            HOME=str(home),
            TERM="xterm-256color",
            RAYTUI_HOME=str(d.home),
            RAYTUI_RAY_TEMP_DIR=str(d.home / "ray"),
            RAY_AUTH_TOKEN_PATH=str(d.home / "ray_token"),
        )
        if d is self.head:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        term = TmuxSession(d.host.argv([RAYTUI, *args]), env, *SIZE)
        self.terms.append(term)
        return term


@pytest.fixture
def world() -> Iterator[World]:
    require_netns()
    with Topology() as topo:
        daemons: list[NsDaemon] = []
        world: World | None = None
        try:
            head = NsDaemon(topo.public("head", hostname=HEAD_NAME))
            box = NsDaemon(topo.behind_nat("box", hostname=BOX_NAME))
            daemons += [head, box]
            for d in daemons:
                d.start("--overlay")
            done = head.cli("proxy", "expose", "--ray-head", "--share-token")
            assert done.returncode == 0, done.stderr
            done = head.cli("join", "--head", "--cpus", "1", "--gpus", "0")
            assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{head.node_log_tail()}"
            done = head.cli("invite", "--expires", "15m")
            assert done.returncode == 0, done.stderr
            invite = done.stdout.strip()
            assert invite.startswith("raytui1:") and "\n" not in invite, done.stdout
            world = World(topo, head, box, head.token(), invite)
            world.phase("head up, invite printed")
            yield world
        finally:
            if world is not None:
                for term in world.terms:
                    term.kill()
                for what, screen in world.screens:
                    print(f"--- {what}\n{screen}")
                print("\n".join(f"{t:6.1f} s  {what}" for what, t in world.phases))
            for d in daemons:  # both stop their Ray nodes at once, then are waited for
                if d.proc is not None and d.proc.poll() is None:
                    d.proc.terminate()
            for d in daemons:
                d.cleanup()


def _row(screen: str, short_id: str) -> str:
    """The node list's row of the node whose ID starts with `short_id` ('' when not shown): the
    line that starts with it, inside the table's border (panel titles name nodes too)."""
    rows = (line for line in screen.splitlines() if line.lstrip("│┃ ").startswith(short_id))
    return next(rows, "")


def _path(screen: str, short_id: str) -> str:
    """The PATH cell of that node's row: the text under the header's PATH, up to STATE."""
    header = next((line for line in screen.splitlines() if "PATH" in line and "STATE" in line), "")
    row = _row(screen, short_id)
    if not header or not row:
        return ""
    return row[header.index("PATH") : header.index("STATE")].strip()


def _join_ticked(screen: str) -> bool:
    """The dialog's join checkbox shows ticked (`▐X▌` before its label)."""
    line = next((x for x in screen.splitlines() if JOIN_LABEL in x), "")
    return "X" in line.partition(JOIN_LABEL)[0]


def _screen_diag(term: TmuxSession, d: NsDaemon) -> str:
    return f"\n--- screen\n{term.screen()}\n--- daemon log\n{d.log_tail()}\n{d.node_log_tail()}"


def test_box_joins_from_the_dialog_and_the_head_tui_shows_its_overlay_path(world: World) -> None:
    head, box = world.head, world.box
    head_ip = head.overlay_address
    box_ip = box.overlay_address
    head_name = HEAD_NAME
    assert head.host.dial(box.host.address, 4701) != "connected"  # the NAT is real

    # -- the box: its TUI, the peers sidebar, the add-peer dialog, the invite pasted ----------
    on_box = world.tui(box, "--via", head_name, "--refresh", "1")
    on_box.wait_for(
        lambda s: f"no peer '{head_name}' on the allow-list" in s, 60, "the box's TUI, disconnected"
    )
    on_box.send("p")
    on_box.wait_for(lambda s: "proxy running" in s, 30, "the sidebar: the box's daemon running")
    on_box.wait_for(lambda s: f"overlay {box_ip}" in s, 30, "the sidebar: the box's overlay")
    on_box.send("a")
    on_box.wait_for(lambda s: "Add a peer" in s, 15, "the add-peer dialog")
    on_box.paste(world.invite)
    screen = on_box.wait_for(lambda s: "✓ invite from" in s, 15, "the invite recognised")
    world.phase("box: invite pasted", screen)
    assert _join_ticked(screen), screen  # an invite always joins: ticked (and locked)
    on_box.send("Tab", "Tab")  # name -> (the join box is locked on) -> GPUs
    on_box.send("-l", "1")
    on_box.wait_for(lambda s: re.search(r"GPUs\s+1\b", s) is not None, 10, "GPUs 1 typed")
    world.phase("box: GPUs 1", on_box.screen())
    on_box.send("Enter")
    on_box.wait_for(
        lambda s: "joining its Ray cluster" in s or "starting a Ray worker here" in s,
        15,
        "the dialog saying it joins",
    )

    # The daemon's answer: a running worker with a node ID.
    def joined() -> bool:
        status = box.join_status()
        return status is not None and status.state is JoinState.RUNNING and bool(status.node_id)

    try:
        wait_for(joined, 180, "the box's node running", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}{_screen_diag(on_box, box)}") from None
    status = box.join_status()
    assert status is not None and status.node_id is not None
    node_id = status.node_id
    assert status.node_ip == box_ip and status.role == "worker"
    world.phase("box: joined (daemon says running)")
    screen = on_box.wait_for(
        lambda s: "Joined" in s and node_id in s,
        30,
        f"the TUI reporting the join with node {node_id}",
    )
    assert "Add a peer" not in screen, screen  # the dialog closed on success
    world.phase("box: the join reported", screen)
    screen = on_box.wait_for(
        lambda s: f"ray worker of {head_name} running" in s and f"node {node_id[:8]}" in s,
        30,
        "the sidebar: the worker running with its node",
    )
    assert f"⇢ {head_ip} · direct" in screen, screen
    world.phase("box: TUI shows the join", screen)

    # -- the head: its TUI attached to the head on the overlay --------------------------------
    on_head = world.tui(head, "--address", f"{head_ip}:6379", "--refresh", "1")
    head_node = head.join_status().node_id  # type: ignore[union-attr]
    assert head_node is not None
    # Its host name once its agent reported (a moment after the node registered).
    screen = on_head.wait_for(
        lambda s: (
            _path(s, node_id[:8]) == "overlay"
            and "ALIVE" in _row(s, node_id[:8])
            and BOX_NAME in _row(s, node_id[:8])
        ),
        90,
        f"the box's node {node_id[:8]} ({BOX_NAME}) ALIVE with PATH overlay on the head",
    )
    assert _path(screen, head_node[:8]) == "local", screen
    assert HEAD_NAME in _row(screen, head_node[:8]), screen
    assert re.search(r"GPU\s+0/1\b", screen), screen  # the box's one (logical) GPU
    assert "PATH" in screen and "Traceback" not in screen, screen
    world.phase("head: Nodes view shows the box, PATH overlay", screen)
    on_head.send("p")
    screen = on_head.wait_for(
        lambda s: f"⇢ {box_ip} · direct" in s, 30, "the head's sidebar: the box direct"
    )
    assert f"overlay {head_ip}" in screen and "ray head running" in screen, screen
    world.phase("head: sidebar shows the box direct", screen)

    # -- the box again: reconnect --via the head over the overlay -----------------------------
    on_box.send("r")
    screen = on_box.wait_for(
        lambda s: _path(s, node_id[:8]) == "local" and _path(s, head_node[:8]) == "overlay",
        90,
        "the box's TUI: its own node local, the head's overlay",
    )
    world.phase("box: Nodes view via the head", screen)
    for where, term in (("box", on_box), ("head", on_head)):
        term.send("q")
        code = term.wait_exit(60)
        assert code == 0, f"the {where}'s TUI exited {code}:\n{term.screen()}"
    world.phase("both TUIs quit")
