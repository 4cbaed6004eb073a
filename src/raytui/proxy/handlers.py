"""One guard for every inbound libp2p stream: a handler's failure ends that stream, not the daemon.

py-libp2p runs each inbound stream's handler (after protocol negotiation) in the connection's
nursery, so an exception a handler does not catch cancels the swarm and ends the process: every
tunnel of every peer drops. `guard_streams(host)` wraps the swarm's one entry point for inbound
streams, which negotiates the protocol and calls whatever `host.set_stream_handler` registered,
so every handler, today's and any added later, runs under `guarded` without its author doing
anything. A failure is logged with its traceback and the stream is reset: the peer sees a reset,
the daemon keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from libp2p.abc import IHost, INetStream

from raytui.proxy.tunnel import reset_stream

log = logging.getLogger(__name__)

StreamHandler = Callable[[INetStream], Awaitable[None]]

_GUARDED = "_raytui_guarded"


def _describe(stream: INetStream) -> str:
    try:
        protocol = stream.get_protocol()
    except Exception:
        protocol = None
    try:
        peer = str(stream.muxed_conn.peer_id)
    except Exception:
        peer = "?"
    return f"{protocol or 'stream'} from peer {peer}"


def guarded(handler: StreamHandler) -> StreamHandler:
    """`handler`, except that an exception it raises resets the stream and is logged.

    Cancellation (a BaseException) still propagates: the daemon is shutting down."""
    if getattr(handler, _GUARDED, False):
        return handler

    async def run(stream: INetStream) -> None:
        try:
            await handler(stream)
        except Exception:
            log.exception("%s failed; that stream is reset", _describe(stream))
            await reset_stream(stream)

    setattr(run, _GUARDED, True)
    return run


def guard_streams(host: IHost) -> None:
    """Run every inbound stream of `host` (negotiation and handler) under `guarded`."""
    network = host.get_network()
    entry = getattr(network, "common_stream_handler", None)
    if not callable(entry):
        raise RuntimeError("py-libp2p changed: the swarm has no common_stream_handler to guard")
    network.set_stream_handler(guarded(entry))
