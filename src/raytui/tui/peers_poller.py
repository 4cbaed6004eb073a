"""Reads the proxy daemon's status for the peers sidebar, and carries out add/remove/start.

A `Poller` (poller.py): every call on the daemon's control socket (`ProxyControl`, blocking) runs
in one of its thread workers and comes back as a message (messages.py), posted on the poller
(it bubbles to whoever mounted it: the peers controller). The next status read is armed only
after the previous one finished, so reads never overlap; `poll_now` during a read asks for
another right after it. Starting the daemon runs `raytui proxy start` as a child process: the
TUI never imports the daemon's trio/libp2p code.

Joining a peer's Ray cluster (`join`, from the add-peer dialog) asks the daemon to start and
supervise a Ray node on this machine's overlay address, as `raytui join` does; it answers once
the node started or failed to (up to ~2 minutes), so it has its own long timeout.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from raytui.errors import RaytuiError, describe
from raytui.model.overlay import JoinStatus
from raytui.sources.proxy_control import DaemonNotRunning, ProxyControl
from raytui.tui.messages import (
    DaemonStartDone,
    PeerAddDone,
    PeerJoinDone,
    PeerRemoveDone,
    PeersStatusReady,
)
from raytui.tui.poller import Poller

POLL_INTERVAL = 2.0
POLL_TIMEOUT = 5.0  # a status read; a daemon slower than this is reported as unreachable
ACTION_TIMEOUT = 30.0  # add dials the peer (up to ~11 s in the daemon)
START_TIMEOUT = 60.0
JOIN_TIMEOUT = 150.0  # as `raytui join`: the daemon waits up to 90 s for `ray start`, plus asking

Starter = Callable[[], str]
"""Blocking: start the daemon detached; returns what to tell the user, raises RaytuiError."""


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


class PeersPoller(Poller):
    """Reads the daemon's status every `interval` s and carries out the sidebar's actions, each
    in its own thread worker. It only reports: what a reading means for the user is decided where
    `PeersStatusReady` arrives."""

    again_when_busy = True

    def __init__(
        self,
        *,
        socket: Path | None = None,
        interval: float = POLL_INTERVAL,
        starter: Starter = start_daemon,
    ) -> None:
        super().__init__(name="raytui-peers", id="peers-poller")
        self.interval = interval
        self.starter = starter
        self._poll_control = ProxyControl(socket, timeout=POLL_TIMEOUT)
        self._control = ProxyControl(socket, timeout=ACTION_TIMEOUT)
        self.join_control = ProxyControl(socket, timeout=JOIN_TIMEOUT)
        self.starting = False  # `raytui proxy start` is under way
        self.reads = 0  # finished status reads

    @property
    def socket(self) -> Path:
        return self._control.path

    # -- status reads -------------------------------------------------------------------------

    def poll_call(self) -> Callable[[], PeersStatusReady]:
        return self._read

    def _read(self) -> PeersStatusReady:
        try:
            status = self._poll_control.status()
        except DaemonNotRunning as exc:
            return PeersStatusReady(
                None, str(exc), running=False, at=time.monotonic(), now=time.time()
            )
        return PeersStatusReady(status, at=time.monotonic(), now=time.time())

    def polled(self, result: Any) -> float | None:
        self.failures = 0
        self.reads += 1
        self.post_message(result)
        return self.interval

    def poll_failed(self, error: BaseException) -> float | None:
        self.reads += 1
        self.post_message(
            PeersStatusReady(None, describe(error), at=time.monotonic(), now=time.time())
        )
        return self.interval

    # -- actions ------------------------------------------------------------------------------

    def add_peer(self, multiaddr: str, name: str | None) -> None:
        """Posts `PeerAddDone`."""

        def done(result: Any, error: BaseException | None) -> None:
            if error is not None:
                self.post_message(PeerAddDone(multiaddr, name, None, describe(error)))
            else:
                peer, dial_error = result
                self.post_message(PeerAddDone(multiaddr, name, peer, dial_error))

        self.in_thread(partial(self._control.add_peer, multiaddr, name), done, name="add")

    def remove_peer(self, peer_id: str, label: str) -> None:
        """Posts `PeerRemoveDone`."""

        def done(removed: Any, error: BaseException | None) -> None:
            if error is not None:
                self.post_message(PeerRemoveDone(label, None, describe(error)))
            else:
                self.post_message(PeerRemoveDone(label, removed, None))

        self.in_thread(partial(self._control.remove_peer, peer_id), done, name="remove")

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

        def work() -> JoinStatus:
            if invite is not None:
                return control.join(None, invite=invite, gpus=gpus)
            return control.join(peer_id, gpus=gpus)

        def done(status: Any, error: BaseException | None) -> None:
            if error is not None:
                self.post_message(PeerJoinDone(label, None, describe(error)))
            else:
                self.post_message(PeerJoinDone(label, status, None))

        self.in_thread(work, done, name="join")

    def start_daemon(self) -> bool:
        """Posts `DaemonStartDone`; False (and nothing posted) when a start is under way."""
        if self.starting:
            return False
        self.starting = True

        def done(text: Any, error: BaseException | None) -> None:
            if error is not None:
                self.post_message(DaemonStartDone(None, describe(error)))
            else:
                self.post_message(DaemonStartDone(text, None))

        self.in_thread(self.starter, done, name="start")
        return True

    def start_finished(self) -> None:
        self.starting = False
        self.poll_now()
