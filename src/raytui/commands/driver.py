"""Attaching a command-line process to Ray as a driver (`submit`, `engines`).

Address rules as in DESIGN.md: `--address`, else `RAY_ADDRESS`, else a cluster running here,
else (where the command allows it) an embedded one. Drivers need the GCS (`host:6379`); Ray
Client (`ray://`) works for commands that do not stream results.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from raytui.backends import dispatch
from raytui.errors import ClusterUnreachable, UsageError

DRIVER_TIMEOUT = 30.0  # seconds for ray.init to attach to a running cluster
TCP_TIMEOUT = 3.0  # seconds for the GCS port to accept a TCP connection


def connect(
    address: str | None,
    *,
    command: str,
    streams: bool = True,
    start_local: bool = True,
    via: str | None = None,
) -> None:
    """Attach this process to Ray. `streams`: the command streams results (no Ray Client);
    `start_local`: with no cluster running here, start an embedded one (else exit 1);
    `via`: the cluster of that peer, through the overlay (this machine joins it as a node).

    Every wait is bounded and a timeout says what was waited for: the GCS port must accept a
    TCP connection within TCP_TIMEOUT, and ray.init must attach within DRIVER_TIMEOUT (Ray
    itself retries an address it cannot use for minutes, e.g. after rewriting 127.0.0.1 to the
    machine's own IP)."""
    node_ip = None
    if via:
        address, node_ip = _via_overlay(via, command)
    addr = _driver_address(address, command=command, streams=streams)
    if addr in (None, "auto"):
        from raytui.sources.attach import find_local_cluster

        running = find_local_cluster()
        if running is None and (addr == "auto" or not start_local):
            raise ClusterUnreachable(
                "no Ray cluster is running on this machine: pass --address host:6379"
            )
        addr = running or "local"
    import ray

    if sys.__stderr__ is not None:
        faulthandler.enable(file=sys.__stderr__)
    kwargs: dict[str, Any] = {
        "log_to_driver": False,
        "namespace": "raytui",
        "logging_level": logging.WARNING,
        "runtime_env": dispatch.runtime_env(),
    }
    if node_ip:
        kwargs["_node_ip_address"] = node_ip
    if addr == "local":
        _start_local(kwargs)
        return
    _check_tcp(addr)
    require_token_if_token_mode(f"Ray at {addr}")
    _init_within(lambda: ray.init(address=addr, **kwargs), addr, _driver_timeout())


def _driver_timeout() -> float:
    """DRIVER_TIMEOUT, or RAYTUI_DRIVER_TIMEOUT seconds (slow links; tests)."""
    try:
        value = float(os.environ.get("RAYTUI_DRIVER_TIMEOUT", ""))
    except ValueError:
        return DRIVER_TIMEOUT
    return value if 0 < value < 3600 else DRIVER_TIMEOUT


def _start_local(kwargs: dict[str, Any]) -> None:
    """An embedded cluster; it belongs to the thread that starts it: this one."""
    import ray

    try:
        ray.init(address="local", **kwargs)
    except (ConnectionError, TimeoutError) as exc:
        raise ClusterUnreachable(f"could not start an embedded Ray: {exc}") from exc


def require_token_if_token_mode(where: str) -> None:
    from raytui.sources.attach import require_token_if_token_mode as check

    check(where)


def _check_tcp(addr: str) -> None:
    from raytui.sources.attach import parse_address

    parsed = parse_address(addr, "the address")
    assert parsed.host is not None and parsed.port is not None
    try:
        with socket.create_connection((parsed.host, parsed.port), timeout=TCP_TIMEOUT):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        what = "Ray Client server" if parsed.kind.value == "client" else "Ray GCS"
        raise ClusterUnreachable(
            f"cannot reach the {what} at {parsed.hostport}: {why} "
            f"(waited up to {TCP_TIMEOUT:g} s for a TCP connection)"
        ) from None


class _NotFromMainThread(logging.Filter):
    """Ray warns that it sets no SIGTERM handler off the main thread: expected here, noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def _init_within(init: Callable[[], object], addr: str, timeout: float) -> None:
    """ray.init on a daemon thread, waited for at most `timeout` seconds."""
    from raytui.sources.attach import call_within

    worker_log = logging.getLogger("ray._private.worker")
    if not any(isinstance(f, _NotFromMainThread) for f in worker_log.filters):
        worker_log.addFilter(_NotFromMainThread())

    try:
        call_within(init, timeout)
    except TimeoutError:
        raise ClusterUnreachable(
            f"gave up after {timeout:g} s waiting for Ray at {addr} to accept this process as a "
            "driver (ray.init): the port answers on TCP but Ray could not attach (is it a Ray "
            "GCS? a head started with --node-ip-address must be reached at that address)"
        ) from None
    except ConnectionError as exc:
        raise ClusterUnreachable(f"cannot attach to Ray at {addr}: {exc}") from exc


def _driver_address(address: str | None, *, command: str, streams: bool) -> str | None:
    """What `ray.init` gets: a checked GCS address, `ray://host:port`, "local", or None (look
    for a cluster running here). Anything else is a UsageError before Ray sees it (Ray turns
    `foo://` into an import of a module named foo)."""
    from raytui.sources.attach import AddressKind, parse_address

    source = "--address"
    text = address
    if not text and os.environ.get("RAY_ADDRESS", "").strip():
        text, source = os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    if not text:
        return None
    parsed = parse_address(text, source)
    if parsed.kind is AddressKind.DASHBOARD:
        raise UsageError(
            f"{parsed.text} is a dashboard URL: {command} works as a Ray driver, so it needs the"
            " GCS address (host:6379)"
        )
    if parsed.kind is AddressKind.CLIENT:
        if streams:
            raise UsageError(dispatch.RAY_CLIENT_CANNOT_STREAM)
        return f"ray://{parsed.hostport}"
    if parsed.kind is AddressKind.GCS:
        return parsed.hostport
    return parsed.kind.value  # "auto" or "local"


def _via_overlay(peer: str, command: str) -> tuple[str, str | None]:
    """The GCS of `peer`'s head on the overlay, with this machine made a node of its cluster
    (no CPUs or GPUs) by the local daemon; its token exported before Ray is imported."""
    from raytui.sources.proxy_control import connect_console

    endpoints = connect_console(peer, member=True)
    if endpoints.driver_address is None:
        raise UsageError(
            f"{command} --via needs the overlay (a tunnel carries only Ray Client, which does"
            " not stream): start both daemons with `raytui proxy start --overlay` (as root) and"
            " on the head run `raytui proxy expose --ray-head --share-token`"
        )
    if endpoints.token:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = endpoints.token
    # Ray would read "its" IP from a file of the cluster's session dir; name the node instead.
    return endpoints.driver_address, endpoints.node_ip


def disconnect() -> None:
    """Leave the cluster (and stop an embedded one `connect` started)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
