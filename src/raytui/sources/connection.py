"""The seam between the TUI and a Ray cluster.

The TUI is handed a `Connector` (a blocking callable it runs in a thread worker) and gets back a
`ClusterConnection`; everything it asks of the cluster goes through that object, so tests can
inject a connection that replays snapshots (memray's pattern) and the TUI never imports Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from raytui.model.cluster import ClusterSnapshot
from raytui.model.nvml import NvmlReport

if TYPE_CHECKING:
    from raytui.sources.workbench import Workbench

ProgressFn = Callable[[str], None]
"""Called from the worker thread with a short human message ("starting embedded Ray…")."""


class ClusterConnection(Protocol):
    @property
    def description(self) -> str:
        """One line for the header: 'embedded (local)', 'http://10.0.0.5:8265', 'via alice'."""
        ...

    @property
    def dashboard_url(self) -> str: ...

    def fetch_snapshot(self) -> ClusterSnapshot:
        """Blocking. Raises ClusterUnreachable or AuthenticationFailed (raytui.errors)."""
        ...

    def probe_node(self, node_id: str) -> NvmlReport:
        """Blocking. NVML details of one node, read on that node. Raises RaytuiError."""
        ...

    def workbench(self) -> Workbench:
        """The jobs, tasks, actors and logs clients for this cluster (over its dashboard).

        One set per connection, made on the first call (no I/O) and closed by `close()`; the
        clients' calls block. Raises RaytuiError when there is none."""
        ...

    def close(self) -> None:
        """Blocking. Stops an embedded cluster (leaving no Ray process) or disconnects."""
        ...


Connector = Callable[[ProgressFn], ClusterConnection]
"""Blocking: resolve the address, start or attach, return a connection. Raises RaytuiError."""
