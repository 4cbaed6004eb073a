"""Reads the proxy daemon's status for the peers sidebar, and carries out add/remove/start.

Every call on the daemon's control socket (`ProxyControl`, blocking) runs in a thread worker and
comes back as a message below; the app hands those back to this object on the event loop. The
next status read is armed only after the previous one finished, so reads never overlap; `poll_now`
during a read asks for another right after it.

A daemon that goes away gives one notification, not one per poll; a daemon that was never
running gives none (the sidebar offers to start it). Starting the daemon runs
`raytui proxy start` as a child process: the TUI never imports the daemon's trio/libp2p code.

Joining a peer's Ray cluster (`join`, from the add-peer dialog) asks the daemon to start and
supervise a Ray node on this machine's overlay address, as `raytui join` does; it answers once
the node started or failed to (up to ~2 minutes), so it has its own long timeout.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from textual.app import App
from textual.message import Message
from textual.timer import Timer

from raytui import debuglog
from raytui.errors import RaytuiError
from raytui.model.overlay import JoinStatus
from raytui.model.peers import DaemonStatus, PeerHealth
from raytui.sources.proxy_control import DaemonNotRunning, ProxyControl
from raytui.tui.pollers import describe

POLL_INTERVAL = 2.0
POLL_TIMEOUT = 5.0  # a status read; a daemon slower than this is reported as unreachable
ACTION_TIMEOUT = 30.0  # add dials the peer (up to ~11 s in the daemon)
START_TIMEOUT = 60.0
JOIN_TIMEOUT = 150.0  # as `raytui join`: the daemon waits up to 90 s for `ray start`, plus asking

Starter = Callable[[], str]
"""Blocking: start the daemon detached; returns what to tell the user, raises RaytuiError."""


# -- messages -----------------------------------------------------------------------------------


class PeersStatusReady(Message):
    """One reading: `status`, or None and `error` (`running` False: no daemon listens).

    `at` is `time.monotonic()` of the reading (for bytes/s), `now` the wall clock (for ages).
    A newer reading replaces an unhandled older one.
    """

    def __init__(
        self,
        status: DaemonStatus | None,
        error: str | None = None,
        *,
        running: bool = True,
        at: float = 0.0,
        now: float = 0.0,
    ) -> None:
        super().__init__()
        self.status = status
        self.error = error
        self.running = running
        self.at = at
        self.now = now

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PeersStatusReady)


class PeersPollFinished(Message):
    """A status read ended (after its `PeersStatusReady`); the poller re-arms its timer."""

    def __init__(self, error: str | None, running: bool) -> None:
        super().__init__()
        self.error = error
        self.running = running


class PeerAddDone(Message):
    """`peers.add` answered. `peer` is None when the daemon refused (nothing was added);
    with `peer` set, `error` is the first dial's error (allow-listed, not reachable yet)."""

    def __init__(
        self, multiaddr: str, name: str | None, peer: PeerHealth | None, error: str | None
    ) -> None:
        super().__init__()
        self.multiaddr = multiaddr
        self.name = name
        self.peer = peer
        self.error = error


class PeerRemoveDone(Message):
    def __init__(self, label: str, peer_id: str | None, error: str | None) -> None:
        super().__init__()
        self.label = label
        self.peer_id = peer_id
        self.error = error


class PeerJoinDone(Message):
    """`join` answered. `status` is the node the daemon started (running, or not yet: then its
    `last_error` says why and the daemon keeps trying); None with `error` when the daemon
    refused (nothing was started). `label` names the peer (or the invite) for messages."""

    def __init__(self, label: str, status: JoinStatus | None, error: str | None) -> None:
        super().__init__()
        self.label = label
        self.status = status
        self.error = error


class DaemonStartDone(Message):
    """`raytui proxy start` returned: `text` to show, or `error`."""

    def __init__(self, text: str | None, error: str | None) -> None:
        super().__init__()
        self.text = text
        self.error = error


# -- starting the daemon ------------------------------------------------------------------------


def start_daemon(listen: Sequence[str] = ()) -> str:
    """`raytui proxy start [--listen ADDR]...` in a child process (it detaches the daemon and
    waits until its control socket answers). Blocking; for a thread worker."""
    cmd = [sys.executable, "-m", "raytui", "proxy", "start"]
    for addr in listen:
        cmd += ["--listen", addr]
    try:
        out = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RaytuiError(
            f"`raytui proxy start` did not finish within {START_TIMEOUT:g} s"
        ) from None
    except OSError as exc:
        raise RaytuiError(f"cannot run `raytui proxy start`: {exc}") from exc
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        detail = "\n".join(lines[-6:]) or f"exit code {out.returncode}"
        raise RaytuiError(f"could not start the proxy daemon: {detail}")
    first = out.stdout.strip().splitlines()
    return first[0] if first else "proxy daemon started"


# -- the poller ---------------------------------------------------------------------------------


class PeersPoller:
    """Owns the reads of the daemon. Methods run on the event loop except the `_work_*` ones,
    which run in thread workers and only post messages."""

    def __init__(
        self,
        app: App[Any],
        *,
        socket: Path | None = None,
        interval: float = POLL_INTERVAL,
        starter: Starter = start_daemon,
    ) -> None:
        self.app = app
        self.interval = interval
        self.starter = starter
        self._poll_control = ProxyControl(socket, timeout=POLL_TIMEOUT)
        self._control = ProxyControl(socket, timeout=ACTION_TIMEOUT)
        self.join_control = ProxyControl(socket, timeout=JOIN_TIMEOUT)
        self.busy = False  # a status read is under way
        self.starting = False  # `raytui proxy start` is under way
        self.stopped = False
        self.reachable: bool | None = None  # None until the first read
        self._again = False
        self._alerted = False  # the user was told the daemon is unreachable
        self._timer: Timer | None = None

    @property
    def socket(self) -> Path:
        return self._control.path

    # -- status reads -------------------------------------------------------------------------

    def start(self) -> None:
        self.stopped = False
        self.poll_now()

    def stop(self) -> None:
        self.stopped = True
        self._cancel_timer()

    def poll_now(self) -> None:
        if self.stopped:
            return
        if self.busy:
            self._again = True
            return
        self._cancel_timer()
        self.busy = True
        self._again = False
        self.app.run_worker(
            self._work_poll,
            thread=True,
            name="peers-status",
            group="raytui-peers",
            exit_on_error=False,
        )

    def _work_poll(self) -> None:
        post = self.app.post_message
        error: str | None = None
        running = True
        try:
            status = self._poll_control.status()
        except DaemonNotRunning as exc:
            error, running = str(exc), False
            post(PeersStatusReady(None, error, running=False, at=time.monotonic(), now=time.time()))
        except Exception as exc:  # every failure becomes a visible state
            debuglog.report("peers_poller._work_poll", exc)
            error = describe(exc)
            post(PeersStatusReady(None, error, at=time.monotonic(), now=time.time()))
        else:
            post(PeersStatusReady(status, at=time.monotonic(), now=time.time()))
        post(PeersPollFinished(error, running))

    def poll_finished(self, error: str | None, running: bool) -> None:
        """On the event loop: tell the user about a change (once), arm the next read."""
        self.busy = False
        was = self.reachable
        self.reachable = error is None
        if error is None:
            if self._alerted:
                self._alerted = False
                self.app.notify("The proxy daemon answers again", title="Peers")
        elif was is not False and (was is True or running) and not self._alerted:
            # It went away, or it is there but broken. Never running at all is not news.
            self._alerted = True
            headline = "Proxy daemon stopped" if not running else "Proxy daemon unreachable"
            self.app.notify(error, title=headline, severity="warning", timeout=8)
        if self.stopped:
            return
        if self._again:
            self.poll_now()
        else:
            self._arm()

    def _arm(self) -> None:
        self._cancel_timer()
        self._timer = self.app.set_timer(self.interval, self.poll_now, name="raytui-peers")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    # -- actions ------------------------------------------------------------------------------

    def add_peer(self, multiaddr: str, name: str | None) -> None:
        """Posts `PeerAddDone`."""

        def work() -> None:
            try:
                peer, error = self._control.add_peer(multiaddr, name)
            except Exception as exc:
                debuglog.report("peers_poller.work", exc)
                self.app.post_message(PeerAddDone(multiaddr, name, None, describe(exc)))
            else:
                self.app.post_message(PeerAddDone(multiaddr, name, peer, error))

        self._run(work, "peers-add")

    def remove_peer(self, peer_id: str, label: str) -> None:
        """Posts `PeerRemoveDone`."""

        def work() -> None:
            try:
                removed = self._control.remove_peer(peer_id)
            except Exception as exc:
                debuglog.report("peers_poller.work", exc)
                self.app.post_message(PeerRemoveDone(label, None, describe(exc)))
            else:
                self.app.post_message(PeerRemoveDone(label, removed, None))

        self._run(work, "peers-remove")

    def join(
        self,
        peer_id: str | None,
        label: str,
        *,
        invite: str | None = None,
        gpus: int | None = None,
    ) -> None:
        """Join `peer_id`'s Ray cluster, or the one `invite` opens (then `peer_id` is None), with
        `gpus` of this machine's GPUs (None: all). Posts `PeerJoinDone`."""
        control = self.join_control

        def work() -> None:
            try:
                if invite is not None:
                    status = control.join(None, invite=invite, gpus=gpus)
                else:
                    status = control.join(peer_id, gpus=gpus)
            except Exception as exc:
                self.app.post_message(PeerJoinDone(label, None, describe(exc)))
            else:
                self.app.post_message(PeerJoinDone(label, status, None))

        self._run(work, "peers-join")

    def start_daemon(self) -> bool:
        """Posts `DaemonStartDone`; False (and nothing posted) when a start is under way."""
        if self.starting:
            return False
        self.starting = True
        starter = self.starter

        def work() -> None:
            try:
                text = starter()
            except Exception as exc:
                debuglog.report("peers_poller.work", exc)
                self.app.post_message(DaemonStartDone(None, describe(exc)))
            else:
                self.app.post_message(DaemonStartDone(text, None))

        self._run(work, "peers-start")
        return True

    def start_finished(self) -> None:
        self.starting = False
        self.poll_now()

    def _run(self, work: Callable[[], None], name: str) -> None:
        self.app.run_worker(
            work, thread=True, name=name, group="raytui-peers-actions", exit_on_error=False
        )
