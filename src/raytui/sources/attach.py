"""Find the cluster the user meant and connect to it: `connect()` returns a `RayConnection`.

Accepted addresses (`--address`, or the `RAY_ADDRESS` environment variable):

- `http://host:8265` (or https) — the dashboard itself.
- `host:6379` — the GCS. The dashboard URL is read from the GCS's internal KV (where the head
  registered it); a dashboard bound to 0.0.0.0 or loopback on another host is taken to be on the
  GCS's host.
- `ray://host:10001` — Ray Client. The dashboard is assumed at `http://host:8265`.
- `auto` — a cluster running on this machine (`<tmp>/ray/ray_current_cluster`, written by
  `ray start`, else a running `gcs_server` process).
- `local` — start an embedded single-node cluster (`ray.init(address="local")`) with as many GPUs
  as NVML reports; `close()` stops it and every process it started.

Without `--address`: `RAY_ADDRESS`, else a cluster running here, else embedded.
`--via PEER` reaches a head through the peer daemon (`raytui.sources.proxy_control`): over the
overlay when both daemons have it (prompts then join this machine to the cluster as a node with
no CPUs or GPUs, so results stream), else through forwards (watching; Ray Client).

The auth token is looked up like Ray does: `RAY_AUTH_TOKEN`, else the file named by
`RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`.

Ray itself is imported only when needed (GCS lookup, embedded start, NVML probe), never at import.

This module holds the decision; the parts live beside it: `address.py` (parsing),
`auth_token.py`, `gcs.py` (GCS -> dashboard), `embedded.py` (the embedded cluster),
`ray_driver.py` (bounded driver waits), `ray_connection.py` (the connection itself);
`raytui/ray_local.py` finds a cluster running here.
"""

from __future__ import annotations

import time

from raytui.errors import ClusterUnreachable, UsageError
from raytui.ray_local import find_local_cluster
from raytui.sources.address import (
    DASHBOARD_PORT,
    Address,
    AddressKind,
    given_address,
    parse_address,
)
from raytui.sources.auth_token import export_token, find_token
from raytui.sources.connection import ProgressFn
from raytui.sources.embedded import EmbeddedRay
from raytui.sources.gcs import dashboard_url_from_gcs
from raytui.sources.ray_connection import RayConnection, Target

__all__ = ["RayConnection", "connect"]


def _via_target(peer: str, progress: ProgressFn) -> Target:
    """Endpoints the local peer daemon forwards to `peer`'s Ray head (127.0.0.3:PORT).

    The head's token comes from the peer when it shares it, else from the usual places.
    Raises `DaemonNotRunning` (a RaytuiError) when no proxy daemon runs here.
    """
    from raytui.sources import proxy_control

    progress(f"asking the peer daemon for a route to {peer}'s Ray head…")
    endpoints = proxy_control.connect_console(peer)
    found, where = find_token()
    overlay = endpoints.overlay

    def join_as_node() -> tuple[str, str | None]:
        """Over the overlay, prompts need this machine to be a node of the peer's cluster."""
        joined = proxy_control.connect_console(peer, member=True)
        return joined.driver_address or joined.client_address, joined.node_ip

    return Target(
        dashboard_url=endpoints.dashboard_url.rstrip("/"),
        description=f"via {peer}" + (" (overlay)" if overlay else ""),
        ray_address=endpoints.client_address or None,
        token=endpoints.token or found,
        token_source=f"peer {peer}" if endpoints.token else where,
        prepare_driver=join_as_node if overlay else None,
    )


def _target_for(address: Address, source: str, progress: ProgressFn) -> Target:
    token, where = find_token()
    if address.kind is AddressKind.AUTO:
        gcs_text = find_local_cluster()
        if gcs_text is None:
            raise ClusterUnreachable(
                f"no Ray cluster is running on this machine ({source} auto); start one with "
                "`ray start --head`, or use --address local for an embedded one"
            )
        address = parse_address(gcs_text, "the running cluster's address")
    if address.kind is AddressKind.DASHBOARD:
        assert address.url is not None
        return Target(address.url, address.url, None, token, where)
    if address.kind is AddressKind.CLIENT:
        host = address.host or "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{DASHBOARD_PORT}"
        return Target(url, f"{address.text} ({url})", address.text, token, where)
    assert address.kind is AddressKind.GCS
    progress(f"looking up the dashboard of the Ray cluster at {address.hostport}…")
    export_token(token)
    url = dashboard_url_from_gcs(address)
    return Target(url, f"{address.hostport} ({url})", address.hostport, token, where)


def connect(
    address: str | None = None,
    via: str | None = None,
    progress: ProgressFn | None = None,
    *,
    timeout: float = 5.0,
) -> RayConnection:
    """Resolve the address, start or attach, check the dashboard answers; return a connection.

    Blocking (seconds when it starts an embedded cluster): run it in a worker thread. Raises
    UsageError for a malformed address, ClusterUnreachable / AuthenticationFailed otherwise.
    `functools.partial(connect, address, via)` is a `Connector` once given `progress`.
    """
    say: ProgressFn = progress or (lambda _msg: None)
    if address and via:
        raise UsageError("--address and --via are exclusive")
    embedded: EmbeddedRay | None = None
    if via:
        target = _via_target(via, say)
    else:
        parsed = given_address(address)
        source = "RAY_ADDRESS" if parsed is not None and not address else "--address"
        if parsed is None:
            running = find_local_cluster()
            parsed = parse_address(running, "the running cluster's address") if running else None
            if parsed is None:
                parsed = Address(AddressKind.LOCAL, "local")
        if parsed.kind is AddressKind.LOCAL:
            embedded = EmbeddedRay(say)
            token, where = find_token()
            target = Target(
                embedded.dashboard_url, "embedded (local)", embedded.gcs_address, token, where
            )
        else:
            target = _target_for(parsed, source, say)
    connection = RayConnection(target, timeout=timeout, embedded=embedded)
    try:
        if embedded is not None:
            say("waiting for the embedded dashboard to report the node…")
            _wait_for_summary(connection, deadline=time.monotonic() + 30)
        say(f"connecting to {target.dashboard_url}…")
        connection.check()
    except BaseException:
        connection.close()
        raise
    return connection


def _wait_for_summary(connection: RayConnection, deadline: float) -> None:
    """Until every alive node has its agent's report (hostname, memory) in the node summary."""
    while True:
        try:
            snap = connection.fetch_snapshot()
            if snap.nodes and all(n.memory_total_bytes for n in snap.alive_nodes):
                return
        except ClusterUnreachable:
            pass
        if time.monotonic() > deadline:
            return
        time.sleep(0.25)
