"""Attaching a command-line process to Ray as a driver (`submit`, `engines`).

Address rules as in DESIGN.md: `--address`, else `RAY_ADDRESS`, else a cluster running here,
else (where the command allows it) an embedded one. Drivers need the GCS (`host:6379`); Ray
Client (`ray://`) works for commands that do not stream results.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from raytui.backends import dispatch
from raytui.errors import ClusterUnreachable, UsageError
from raytui.sources import ray_driver


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
    TCP connection within ray_driver.TCP_TIMEOUT, and ray.init must attach within
    ray_driver.DRIVER_TIMEOUT or RAYTUI_DRIVER_TIMEOUT (the same waits as the TUI's; Ray
    itself retries an address it cannot use for minutes, e.g. after rewriting 127.0.0.1 to the
    machine's own IP)."""
    node_ip = None
    if via:
        address, node_ip = _via_overlay(via, command)
    addr = _driver_address(address, command=command, streams=streams)
    if addr in (None, "auto"):
        from raytui.ray_local import find_local_cluster

        running = find_local_cluster()
        if running is None and (addr == "auto" or not start_local):
            raise ClusterUnreachable(
                "no Ray cluster is running on this machine: pass --address host:6379"
            )
        addr = running or "local"
    ray_driver.prepare_ray_import()
    import ray

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
    ray_driver.init_driver_within(
        lambda: ray.init(address=addr, **kwargs), addr, ray_driver.driver_timeout()
    )


def _start_local(kwargs: dict[str, Any]) -> None:
    """An embedded cluster; it belongs to the thread that starts it: this one."""
    import ray

    try:
        ray.init(address="local", **kwargs)
    except (ConnectionError, TimeoutError) as exc:
        raise ClusterUnreachable(f"could not start an embedded Ray: {exc}") from exc


def require_token_if_token_mode(where: str) -> None:
    from raytui.sources.auth_token import require_token_if_token_mode as check

    check(where)


def _check_tcp(addr: str) -> None:
    ray_driver.check_tcp(addr)


def _driver_address(address: str | None, *, command: str, streams: bool) -> str | None:
    """What `ray.init` gets: a checked GCS address, `ray://host:port`, "local", or None (look
    for a cluster running here). Anything else is a UsageError before Ray sees it (Ray turns
    `foo://` into an import of a module named foo)."""
    from raytui.sources.address import AddressKind, given_address

    parsed = given_address(address)
    if parsed is None:
        return None
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
