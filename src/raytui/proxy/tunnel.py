"""TCP over libp2p: protocol `/raytui/tcp/1.0.0`, one stream per TCP connection.

Wire format, on a freshly negotiated stream:
  dialer  -> `SERVICE_NAME\\n`, then the TCP bytes
  serving -> `+\\n` (connected to the target) or `-REASON\\n` then FIN; then the TCP bytes
The serving side maps names to targets it chose (`expose`); a dialer can never name a host:port.

Ending: a FIN on either side (TCP `shutdown(SHUT_WR)` or a Yamux FIN) is passed on as a FIN, so
half-closed protocols work. Anything abnormal — a TCP RST, a stream reset, the libp2p connection
dying — resets both sides: local sockets are closed with SO_LINGER 0 so the application sees
ECONNRESET, never an EOF that would look like complete data.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import trio
from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF, StreamError

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
EOF_SETTLE_S = 0.05  # see _eof_is_clean_after_settling
MAX_HEADER = 256
CONNECT_TIMEOUT = 10.0


@dataclass
class LinkCounters:
    """Traffic through tunnels with one peer; the peer manager reads these for health."""

    bytes_in: int = 0
    bytes_out: int = 0
    active_streams: int = 0


class TunnelRefused(Exception):
    """The serving side answered `-REASON`."""


def reset_socket(sock: trio.SocketStream) -> None:
    """Close with an RST (SO_LINGER 0): the application must not mistake this for EOF."""
    with contextlib.suppress(OSError):
        sock.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.socket.close()


def _eof_is_clean(stream: INetStream) -> bool:
    """py-libp2p reports a dead connection as EOF too; tell a real FIN from that.

    When the link dies in the middle of a data frame, Yamux marks the stream closed for reading
    (and fully closed) before it notices the connection is gone; a peer's FIN only closes our
    read side. So a stream closed while our write side is still open did not end with a FIN.
    """
    muxed = getattr(stream, "muxed_stream", None)
    if getattr(muxed, "reset_received", False):
        return False
    if getattr(muxed, "closed", False) and not getattr(muxed, "send_closed", True):
        return False
    conn = stream.muxed_conn
    if getattr(conn, "is_closed", False):
        return False
    shutting = getattr(conn, "event_shutting_down", None)
    return not (shutting is not None and shutting.is_set())


async def _read_chunk(stream: INetStream) -> bytes | None:
    """The stream's next data; b"" at a clean end (the peer's FIN); None when the link was lost
    (py-libp2p reads a dead link as a FIN first: see `_eof_is_clean_after_settling`)."""
    try:
        data = await stream.read(CHUNK)
    except StreamEOF:
        data = b""
    if data or await _eof_is_clean_after_settling(stream):
        return data
    return None


async def _eof_is_clean_after_settling(stream: INetStream) -> bool:
    """The same check after a short wait: a link cut mid-frame is seen as a shutdown within
    microseconds (the next frame header cannot be read); a real FIN stays clean."""
    if not _eof_is_clean(stream):
        return False
    await trio.sleep(EOF_SETTLE_S)
    return _eof_is_clean(stream)


async def _drain(
    src: INetStream,
    write: Callable[[bytes], Awaitable[object]],
    write_eof: Callable[[], Awaitable[object]],
    counters: LinkCounters,
) -> bool:
    """Copy `src` into `write` until its FIN, passed on with `write_eof` (True), or until the
    link is lost (False). Errors of either side propagate."""
    while True:
        data = await _read_chunk(src)
        if data is None:
            return False
        if not data:
            await write_eof()
            return True
        await write(data)
        counters.bytes_in += len(data)


async def _close_write(stream: INetStream) -> None:
    """Half-close: a Yamux FIN; the read side stays open."""
    close_write = getattr(stream, "close_write", None)
    if close_write is not None:
        await close_write()
    else:
        await stream.close()


async def reset_stream(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(2):
        try:
            await stream.reset()
        except Exception:
            log.debug("stream reset failed", exc_info=True)


async def read_line(
    stream: INetStream, initial: bytes = b"", max_len: int = MAX_HEADER
) -> tuple[bytes, bytes]:
    """One `\\n`-terminated header line and whatever arrived after it."""
    buf = initial
    while b"\n" not in buf:
        if len(buf) > max_len:
            raise ValueError("tunnel header too long")
        data = await stream.read(CHUNK)
        if not data:
            raise StreamEOF()
        buf += data
    line, _, rest = buf.partition(b"\n")
    return line, rest


async def splice(
    sock: trio.SocketStream,
    stream: INetStream,
    counters: LinkCounters,
    *,
    expect_status: bool = False,
    initial: bytes = b"",
) -> str | None:
    """Relay both ways until both directions ended. Returns None when both ended with a FIN,
    else why both sides were reset. With `expect_status`, the stream begins with the serving
    side's status line (the dialer's side)."""
    failure: list[str] = []
    counters.active_streams += 1

    async def sock_to_stream(cancel: trio.CancelScope) -> None:
        while True:
            try:
                data = await sock.receive_some(CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                failure.append(f"local socket: {exc or type(exc).__name__}")
                cancel.cancel()
                return
            try:
                if not data:
                    await _close_write(stream)
                    return
                await stream.write(data)
            except (StreamError, Exception) as exc:
                failure.append(f"stream write: {exc or type(exc).__name__}")
                cancel.cancel()
                return
            counters.bytes_out += len(data)

    async def stream_to_sock(cancel: trio.CancelScope) -> None:
        pending = initial
        try:
            if expect_status:
                line, pending = await read_line(stream, pending)
                if not line.startswith(b"+"):
                    reason = line[1:].decode("utf-8", "replace") or "refused"
                    failure.append(f"refused by peer: {reason}")
                    cancel.cancel()
                    return
            if pending:
                await sock.send_all(pending)
                counters.bytes_in += len(pending)
            if not await _drain(stream, sock.send_all, sock.send_eof, counters):
                failure.append("link to the peer lost")
                cancel.cancel()
        except (StreamError, ValueError) as exc:
            failure.append(f"stream: {exc or type(exc).__name__}")
            cancel.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            failure.append(f"local socket: {exc or type(exc).__name__}")
            cancel.cancel()

    completed = False
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sock_to_stream, nursery.cancel_scope)
            nursery.start_soon(stream_to_sock, nursery.cancel_scope)
        completed = True
    finally:
        counters.active_streams -= 1
        if failure or not completed:
            reset_socket(sock)
            await reset_stream(stream)
        else:
            with trio.CancelScope(shield=True):
                await sock.aclose()
                try:
                    await stream.close()
                except Exception:
                    log.debug("stream close failed", exc_info=True)
    return failure[0] if failure else None


ServiceLookup = Callable[[str], "tuple[str, int] | None"]


async def read_header(stream: INetStream) -> tuple[str, bytes] | None:
    """The serving side's first step: the dialer's header line (decoded) and the bytes after it.
    None when no valid header came in time (the stream has been reset)."""
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            line, rest = await read_line(stream)
    except (StreamError, ValueError, trio.TooSlowError):
        await reset_stream(stream)
        return None
    return line.decode("utf-8", "replace").strip(), rest


async def serve_stream(stream: INetStream, lookup: ServiceLookup, counters: LinkCounters) -> None:
    """Serving side of one tunnel stream: read the header, connect the named target, relay."""
    header = await read_header(stream)
    if header is None:
        return
    name, rest = header
    try:
        target = lookup(name)
    except Exception as exc:  # a stored target the lookup rejects: refuse, say why
        await refuse(stream, f"service {name!r} is misconfigured here: {exc}")
        return
    if target is None:
        await refuse(stream, f"no service named {name!r}")
        return
    await connect_and_splice(stream, target, rest, counters, label=f"service {name!r}")


async def connect_and_splice(
    stream: INetStream,
    target: tuple[str, int],
    rest: bytes,
    counters: LinkCounters,
    label: str,
) -> None:
    """Connect `target`, answer `+` (or `-REASON` when it cannot be reached), then relay."""
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            sock = await trio.open_tcp_stream(*target)
    except (OSError, ValueError, trio.TooSlowError) as exc:  # UnicodeError: an unencodable host
        await refuse(stream, f"{label} unreachable at {target[0]}:{target[1]}: {exc}")
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await stream.write(b"+\n")
    except StreamError:
        reset_socket(sock)
        await reset_stream(stream)
        return
    why = await splice(sock, stream, counters, initial=rest)
    if why:
        log.info("tunnel to %s ended abnormally: %s", label, why)


async def refuse(stream: INetStream, reason: str) -> None:
    """Answer `-REASON` and end the stream: the dialer's application sees a reset."""
    log.info("tunnel refused: %s", reason)
    try:
        line = " ".join(reason.splitlines())
        await stream.write(b"-" + line.encode()[: MAX_HEADER - 2] + b"\n")
        await stream.close()
    except Exception:
        await reset_stream(stream)


async def relay_streams(
    inbound: INetStream, outbound: INetStream, counters: LinkCounters, initial: bytes = b""
) -> str | None:
    """A hub's relay between two streams, both ways, FIN for FIN; a reset or a lost link on
    either side resets both. `initial` goes to `outbound` first. Returns why it failed, if."""
    failure: list[str] = []
    counters.active_streams += 1

    async def pump(src: INetStream, dst: INetStream, cancel: trio.CancelScope) -> None:
        try:
            if not await _drain(src, dst.write, partial(_close_write, dst), counters):
                failure.append("link lost")
                cancel.cancel()
        except Exception as exc:
            failure.append(f"relay: {exc or type(exc).__name__}")
            cancel.cancel()

    completed = False
    try:
        if initial:
            await outbound.write(initial)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, inbound, outbound, nursery.cancel_scope)
            nursery.start_soon(pump, outbound, inbound, nursery.cancel_scope)
        completed = True
    except Exception as exc:
        failure.append(f"relay: {exc or type(exc).__name__}")
    finally:
        counters.active_streams -= 1
        for stream in (inbound, outbound):
            if failure or not completed:
                await reset_stream(stream)
            else:
                with trio.CancelScope(shield=True):
                    try:
                        await stream.close()
                    except Exception:
                        log.debug("stream close failed", exc_info=True)
    return failure[0] if failure else None


OpenStream = Callable[[], Awaitable[INetStream]]


async def forward_connection(
    sock: trio.SocketStream, open_stream: OpenStream, service: str, counters: LinkCounters
) -> str | None:
    """Dialing side of one tunnel: a local connection becomes one stream to `service`."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream = await open_stream()
    except Exception as exc:
        reset_socket(sock)
        return f"cannot open a stream: {exc or type(exc).__name__}"
    try:
        await stream.write(service.encode() + b"\n")
    except Exception as exc:
        reset_socket(sock)
        await reset_stream(stream)
        return f"cannot send the header: {exc or type(exc).__name__}"
    return await splice(sock, stream, counters, expect_status=True)
