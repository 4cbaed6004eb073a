"""What a task knows about the node it runs on: identity, granted GPUs, the model server's URL.

Runs inside Ray workers. The driver resolves nothing about endpoints: it ships the config file's
per-node table and the task picks its own entry, because only the node knows which node it is.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping

from raytui.model.prompts import DEFAULT_ENDPOINTS, Started


def started_here(endpoint: str) -> Started:
    """The `Started` event for the worker this is called in."""
    import ray

    ctx = ray.get_runtime_context()
    gpu_ids = ctx.get_accelerator_ids().get("GPU", [])
    return Started(
        node_id=ctx.get_node_id(),
        node_ip=ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
        hostname=socket.gethostname(),
        gpu_ids=tuple(str(g) for g in gpu_ids),
        endpoint=endpoint,
        pid=os.getpid(),
    )


def endpoint_here(
    backend: str, explicit: str | None, per_node: Mapping[str, str], node_id: str, node_ip: str
) -> str:
    """`--endpoint`, else the config entry for this node (id prefix or IP), else the default."""
    if explicit:
        return explicit
    for key, url in per_node.items():
        k = key.strip().lower()
        if k and (k == node_ip or node_id.lower().startswith(k)):
            return url
    return DEFAULT_ENDPOINTS[backend]


def start_here(backend: str, explicit: str | None, per_node: Mapping[str, str]) -> Started:
    """The `Started` event of a prompt run on this worker, with this node's endpoint."""
    here = started_here("")
    endpoint = endpoint_here(backend, explicit, per_node, here.node_id, here.node_ip)
    return dataclasses.replace(here, endpoint=endpoint.rstrip("/"))


def where(started: Started) -> str:
    """'node 1a2b3c4d (10.0.0.5)', for error messages."""
    return f"node {started.node_id[:8]} ({started.node_ip})"
