"""The control-socket client tells "the daemon is stopping" from "the daemon is broken"."""

from __future__ import annotations

import shutil
import socket
import struct
import tempfile
import threading
from pathlib import Path

import pytest

from raytui.errors import RaytuiError
from raytui.sources.proxy_control import DaemonNotRunning, ProxyControl


def cut_off_server(path: Path, unlink_first: bool) -> threading.Thread:
    """Accepts one request and resets the connection, as a daemon cancelled mid-request does."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        conn.recv(4096)
        if unlink_first:
            path.unlink()  # what a stopping daemon does before cutting requests
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("unlink_first", [True, False])
def test_request_cut_off_reads_as_not_running_only_when_the_socket_is_gone(
    unlink_first: bool,
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rtc", dir="/tmp"))  # short: the AF_UNIX path limit
    try:
        _cut_off(folder / "proxy.sock", unlink_first)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _cut_off(path: Path, unlink_first: bool) -> None:
    thread = cut_off_server(path, unlink_first)
    expected = DaemonNotRunning if unlink_first else RaytuiError
    with pytest.raises(expected) as caught:
        ProxyControl(path, timeout=5).status()
    thread.join(5)
    if not unlink_first:
        assert not isinstance(caught.value, DaemonNotRunning)
