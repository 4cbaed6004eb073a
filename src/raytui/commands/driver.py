"""Attaching a command-line process to Ray as a driver (`submit`, `engines`).

Address rules as in DESIGN.md: `--address`, else `RAY_ADDRESS`, else a cluster running here,
else (where the command allows it) an embedded one. Drivers need the GCS (`host:6379`); Ray
Client (`ray://`) works for commands that do not stream results.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
from typing import Any

from raytui.backends import dispatch
from raytui.errors import ClusterUnreachable, UsageError


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
    `via`: the cluster of that peer, through the overlay (this machine joins it as a node)."""
    node_ip = None
    if via:
        address, node_ip = _via_overlay(via, command)
    import ray

    if sys.__stderr__ is not None:
        faulthandler.enable(file=sys.__stderr__)
    addr = address or os.environ.get("RAY_ADDRESS") or None
    if addr and addr.startswith(("http://", "https://")):
        raise UsageError(
            f"{addr} is a dashboard URL: {command} works as a Ray driver, so it needs the GCS"
            " address (host:6379)"
        )
    if streams and addr and addr.startswith("ray://"):
        raise UsageError(dispatch.RAY_CLIENT_CANNOT_STREAM)
    kwargs: dict[str, Any] = {
        "log_to_driver": False,
        "namespace": "raytui",
        "logging_level": logging.WARNING,
        "runtime_env": dispatch.runtime_env(),
    }
    if node_ip:
        kwargs["_node_ip_address"] = node_ip
    try:
        if addr is None:
            try:
                ray.init(address="auto", **kwargs)
            except ConnectionError:
                if not start_local:
                    raise ClusterUnreachable(
                        "no Ray cluster is running here: pass --address host:6379"
                    ) from None
                ray.init(address="local", **kwargs)
        else:
            ray.init(address=addr, **kwargs)
    except (ConnectionError, TimeoutError) as exc:
        raise ClusterUnreachable(f"cannot attach to Ray at {addr or 'auto'}: {exc}") from exc


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
