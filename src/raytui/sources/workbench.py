"""The workbench's clients for one cluster, built from what the console is attached to.

Jobs, tasks, actors and logs all go over the dashboard's HTTP address with the console's own
token, so they work the same for an embedded cluster, a head on this machine, and a console
attached through `--via` (dashboard only). Every call is blocking: screens run them in workers.
A connection makes one `Workbench` and closes it when it closes (`ClusterConnection.workbench`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from raytui.sources.jobs import JobsClient
from raytui.sources.logs import LogsClient
from raytui.sources.workload import WorkloadClient

__all__ = ["Workbench"]


@dataclass(frozen=True)
class Workbench:
    dashboard_url: str
    jobs: JobsClient
    workload: WorkloadClient
    logs: LogsClient

    @classmethod
    def for_dashboard(cls, url: str, token: str | None, timeout: float = 10.0) -> Workbench:
        return cls(
            dashboard_url=url,
            jobs=JobsClient(url, token, timeout),
            workload=WorkloadClient(url, token, timeout),
            logs=LogsClient(url, token, timeout),
        )

    def close(self) -> None:
        """Close the three clients' HTTP connections (each closes even when another fails)."""
        for client in (self.jobs, self.workload, self.logs):
            with contextlib.suppress(Exception):
                client.close()
