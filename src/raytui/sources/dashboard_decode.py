"""Decoding the dashboard's node summary (`GET /nodes?view=summary`) without freezing the UI.

A 4,096-node summary is ~83 MB of JSON, nearly all of it command lines, disk, network and worker
statistics raytui does not show. Decoding it in one call holds the GIL for its whole length
(`json.loads`: ~430 ms; even msgspec: ~60 ms), and the UI's event loop waits that long. Here
msgspec decodes against a schema of only the fields `build_snapshot` reads (everything else is
skipped in C, never becoming Python objects), one node at a time, so the UI thread gets the GIL
between nodes (each takes ~15 us).

The result has the shape `json.loads` gives, cut down to those fields, so `build_snapshot` reads
either. Every field is typed loosely (a node, GPU, worker or list may be any JSON value in another
Ray version): a surprise reaches `build_snapshot`, which turns it into None; it never raises here.
Anything this decoder does not recognise falls back to decoding the whole document.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

import msgspec

__all__ = ["decode_summary", "decode_summary_node"]

# A JSON value other than an object, for fields whose object shape is declared: msgspec unions
# hold at most one object-like type, so each loose union lists every other JSON type.
_NotObject = list[Any] | str | int | float | bool | None
_NotArray = dict[str, Any] | str | int | float | bool | None


class _Worker(TypedDict, total=False):
    pid: Any
    workerType: Any
    actorId: Any


class _Raylet(TypedDict, total=False):
    nodeId: Any
    state: Any
    nodeManagerAddress: Any
    nodeManagerHostname: Any
    isHeadNode: Any
    resourcesTotal: Any
    endTimeMs: Any
    stateMessage: Any
    coreWorkersStats: list[_Worker | _NotObject] | _NotArray


class _Process(TypedDict, total=False):
    pid: Any
    gpuMemoryUsage: Any


class _Gpu(TypedDict, total=False):
    index: Any
    name: Any
    uuid: Any
    utilizationGpu: Any
    memoryUsed: Any
    memoryTotal: Any
    temperatureC: Any
    powerMw: Any
    processesPids: list[_Process | _NotObject] | _NotArray


class _Node(TypedDict, total=False):
    hostname: Any
    ip: Any
    cpu: Any
    mem: Any
    gpus: list[_Gpu | _NotObject] | _NotArray
    raylet: _Raylet | _NotObject


class _Data(TypedDict, total=False):
    summary: list[_Node | _NotObject] | _NotArray
    nodeLogicalResources: Any


class _Summary(TypedDict, total=False):
    data: _Data | _NotObject


SummaryNode = _Node | _NotObject
"""One entry of `data.summary`, as decoded here."""

_node_decoder = msgspec.json.Decoder(SummaryNode)
_doc_decoder = msgspec.json.Decoder(_Summary | _NotObject)

SMALL = 256 * 1024
"""Below this many bytes the document is decoded in one call (well under a millisecond)."""

_MAX_FALSE_SPLITS = 64
"""Candidate boundaries inside one node (each costs a failed decode) before giving up splitting."""

_WS = b" \t\r\n"


def decode_summary(buf: bytes | bytearray) -> Any:
    """The summary document with only the fields raytui reads, decoded node by node.

    Raises ValueError when `buf` is not JSON.
    """
    if len(buf) >= SMALL:
        with memoryview(buf) as view:
            doc = _decode_by_node(buf, view)
        if doc is not None:
            return doc
    return _decode(_doc_decoder, buf)


def decode_summary_node(node: Any) -> Any:
    """One summary node already decoded to Python objects, cut down the same way."""
    return msgspec.convert(node, SummaryNode)


def _decode(decoder: msgspec.json.Decoder[Any], buf: bytes | bytearray | memoryview) -> Any:
    """msgspec first; the standard library for what it refuses but Python accepts (NaN)."""
    try:
        return decoder.decode(buf)
    except msgspec.DecodeError:
        return msgspec.convert(json.loads(bytes(buf)), decoder.type)


def _one_node(view: memoryview) -> tuple[bool, Any]:
    """(True, node) when `view` holds exactly one JSON value, else (False, None)."""
    try:
        return True, _decode(_node_decoder, view)
    except (ValueError, msgspec.ValidationError):
        return False, None


def _decode_by_node(buf: bytes | bytearray, view: memoryview) -> Any:
    """Split `data.summary` at the starts of its nodes; None when the layout is unexpected.

    A node starts with the same bytes as the first one (`{"now"` in Ray 2.60) after a comma.
    Such bytes can also occur inside a node; then the piece before them is not one complete JSON
    value and fails to decode, and the search goes on to the next occurrence. A piece that
    decodes is exactly one node: it starts at a node's first byte, and a JSON value ends where
    its grammar says.
    """
    key = buf.find(b'"summary"')
    if key < 0:
        return None
    pos = _skip_ws(buf, key + len(b'"summary"'))
    if buf[pos : pos + 1] != b":":
        return None
    opening = _skip_ws(buf, pos + 1)
    if buf[opening : opening + 1] != b"[":
        return None
    start = _skip_ws(buf, opening + 1)
    if buf[start : start + 1] != b"{":
        return None
    quote = buf.find(b'"', start + 1)
    key_end = buf.find(b'"', quote + 1) if quote >= 0 else -1
    if key_end < 0 or key_end - start > 200:
        return None
    marker = bytes(buf[start : key_end + 1])
    nodes: list[Any] = []
    false_splits = 0
    search = start + 1
    while True:
        nxt = buf.find(marker, search)
        if nxt < 0:
            break
        comma = _skip_ws_back(buf, nxt - 1)
        if buf[comma : comma + 1] == b",":
            ok, node = _one_node(view[start:comma])
            if ok:
                nodes.append(node)
                start, search, false_splits = nxt, nxt + 1, 0
                continue
            false_splits += 1
            if false_splits > _MAX_FALSE_SPLITS:
                return None
        search = nxt + 1
    # The last node ends at one of the closing brackets after its start.
    close = buf.find(b"]", start)
    while close >= 0:
        ok, node = _one_node(view[start:close])
        if ok:
            nodes.append(node)
            break
        false_splits += 1
        if false_splits > _MAX_FALSE_SPLITS:
            return None
        close = buf.find(b"]", close + 1)
    if close < 0:
        return None
    try:
        rest = _decode(_doc_decoder, bytes(buf[: opening + 1]) + bytes(buf[close:]))
    except ValueError:
        return None
    data = rest.get("data") if isinstance(rest, dict) else None
    if not isinstance(data, dict) or data.get("summary") != []:
        return None
    data["summary"] = nodes
    return rest


def _skip_ws(buf: bytes | bytearray, pos: int) -> int:
    while pos < len(buf) and buf[pos] in _WS:
        pos += 1
    return pos


def _skip_ws_back(buf: bytes | bytearray, pos: int) -> int:
    while pos > 0 and buf[pos] in _WS:
        pos -= 1
    return pos
