"""One guard for every inbound libp2p stream: a handler's failure ends that stream, not the daemon.

py-libp2p runs each inbound stream's handler (after protocol negotiation) in the connection's
nursery, so an exception a handler does not catch cancels the swarm and ends the process: every
tunnel of every peer drops. `guard_streams(host)` wraps the swarm's one entry point for inbound
streams, which negotiates the protocol and calls whatever `host.set_stream_handler` registered,
so every handler, today's and any added later, runs under `guarded` without its author doing
anything. A failure is logged with its traceback and the stream is reset: the peer sees a reset,
the daemon keeps serving.

The same entry point gates streams by peer: a peer the allow-list admits negotiates any protocol
the host serves; any other peer (one let in on probation while an invite is open, see
proxy/invite.py) negotiates against a table holding only the protocols open to it (the invite
protocol), so everything else, the library's ping and identify included, is answered "na" as if
it did not exist. Its handler never runs, whatever the handler itself checks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection

from libp2p.abc import IHost, IMultiselectCommunicator, INetStream
from libp2p.custom_types import StreamHandlerFn, TProtocol
from libp2p.peer.id import ID
from libp2p.protocol_muxer.exceptions import MultiselectError
from libp2p.protocol_muxer.multiselect import MULTISELECT_PROTOCOL_ID, Multiselect
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator

from raytui.proxy.tunnel import reset_stream

log = logging.getLogger(__name__)

StreamHandler = Callable[[INetStream], Awaitable[None]]

_GUARDED = "_raytui_guarded"
GATED_NEGOTIATE_TIMEOUT = 5  # seconds an unknown peer gets to name a protocol

Admit = Callable[[ID], bool]
RefusedProtocols = Callable[[ID, tuple[str, ...]], None]


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


class _Recording(IMultiselectCommunicator):
    """A multistream-select communicator that remembers what the remote proposed."""

    def __init__(self, inner: IMultiselectCommunicator) -> None:
        self._inner = inner
        self.proposed: list[str] = []

    async def write(self, msg_str: str) -> None:
        await self._inner.write(msg_str)

    async def read(self) -> str:
        command = await self._inner.read()
        if command != MULTISELECT_PROTOCOL_ID:
            self.proposed.append(command)
        return command


async def _negotiate_open(
    host: IHost, stream: INetStream, open_protocols: Collection[str]
) -> tuple[TProtocol | None, StreamHandlerFn | None, tuple[str, ...]]:
    """Negotiate `stream` against the host's handlers for `open_protocols` only."""
    handlers = host.get_mux().handlers
    table: dict[TProtocol | None, StreamHandlerFn | None] = {
        p: h for p, h in handlers.items() if p is not None and p in open_protocols
    }
    communicator = _Recording(MultiselectCommunicator(stream))
    try:
        protocol, handler = await Multiselect(table).negotiate(
            communicator, GATED_NEGOTIATE_TIMEOUT
        )
    except MultiselectError:
        protocol, handler = None, None
    return protocol, handler, tuple(communicator.proposed)


def guard_streams(
    host: IHost,
    allowed: Admit | None = None,
    open_protocols: Collection[str] = (),
    on_refused: RefusedProtocols | None = None,
) -> None:
    """Run every inbound stream of `host` (negotiation and handler) under `guarded`; with
    `allowed`, a stream from a peer it rejects may negotiate only `open_protocols` (none by
    default: it is reset), and `on_refused(peer, proposed)` hears of every refused attempt."""
    network = host.get_network()
    entry = getattr(network, "common_stream_handler", None)
    if not callable(entry):
        raise RuntimeError("py-libp2p changed: the swarm has no common_stream_handler to guard")
    if allowed is None:
        network.set_stream_handler(guarded(entry))
        return

    async def gated(stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        if allowed(peer):
            await entry(stream)
            return
        protocol: TProtocol | None = None
        handler: StreamHandlerFn | None = None
        proposed: tuple[str, ...] = ()
        if open_protocols:
            protocol, handler, proposed = await _negotiate_open(host, stream, open_protocols)
        if protocol is None or handler is None:
            log.info("refused stream %s from peer %s: not on the allow-list", proposed, peer)
            await reset_stream(stream)
            if on_refused is not None:
                on_refused(peer, proposed)
            return
        stream.set_protocol(protocol)
        await handler(stream)

    network.set_stream_handler(guarded(gated))
