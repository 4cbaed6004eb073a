"""`raytui` with no subcommand: the Textual console."""

from __future__ import annotations

import argparse
import importlib
import sys
from functools import partial

from raytui import config, debuglog, locations
from raytui.sources.connection import ClusterConnection, ProgressFn


def connect(address: str | None, via: str | None, progress: ProgressFn) -> ClusterConnection:
    """Resolve, start or attach (blocking; the app runs it in a worker)."""
    attach = importlib.import_module("raytui.sources.attach")  # lazily: it pulls in Ray
    conn: ClusterConnection = attach.connect(address, via, progress)
    return conn


def describe_target(address: str | None, via: str | None) -> str:
    if via:
        return f"the head via peer {via}"
    if address == "local":
        return "a new embedded Ray (this takes a few seconds)"
    if address:
        return address
    return "RAY_ADDRESS, a cluster on this machine, or a new embedded Ray"


def run(args: argparse.Namespace) -> int:
    from raytui.tui import keys

    cfg = config.load()
    keys.check_keymap(cfg.keys, f"{locations.config_file()}: [keys]")
    # While the TUI owns the terminal, file descriptor 2 is the debug log (or stderr.log):
    # Ray's C++ core writes its warnings there, past sys.stderr, and would overwrite the screen.
    # Textual draws on sys.__stderr__, which becomes a stream on the terminal's own stderr.
    terminal = debuglog.divert_fd2()
    saved = sys.__stderr__, sys.stderr
    if terminal is not None:
        sys.__stderr__ = sys.stderr = terminal  # type: ignore[misc,assignment]
    try:
        return _run(args, cfg)
    finally:
        if terminal is not None:
            sys.__stderr__, sys.stderr = saved  # type: ignore[misc]
            debuglog.restore_fd2(terminal)


def _run(args: argparse.Namespace, cfg: config.Config) -> int:
    from raytui.backends.history import HistoryStore
    from raytui.backends.service import RayPromptService
    from raytui.tui.app import RaytuiApp

    address = getattr(args, "address", None)
    via = getattr(args, "via", None)
    refresh = getattr(args, "refresh", None) or cfg.refresh
    # The service reaches the cluster through whatever connection the app's poller holds.
    service = RayPromptService(lambda: app.poller.connection, HistoryStore(), cfg)
    app = RaytuiApp(
        partial(connect, address, via),
        refresh=refresh,
        readonly=bool(getattr(args, "readonly", False)),
        keymap=cfg.keys,
        target=describe_target(address, via),
        config_path=str(locations.config_file()),
        prompt_service=service,
        log_max_lines=cfg.log_max_lines,
    )
    try:
        app.run()
    finally:
        service.close()  # cancels runs still streaming, flushes history
        # Killed by a signal or an exception before the close worker ran: still stop Ray.
        app.poller.close_blocking()
    if app.return_code not in (None, 0):
        return int(app.return_code)
    return 0
