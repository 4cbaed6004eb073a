"""The embedded single-node cluster (`--address local`, or no cluster anywhere): started with as
many GPUs as NVML reports, and stopped so that no process of it survives.

Ray ties the processes it spawns to the starting thread, so `EmbeddedRay` starts and shuts Ray
down on one long-lived owner thread (`_OwnerThread`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from raytui.errors import ClusterUnreachable, RaytuiError, describe
from raytui.sources.connection import ProgressFn
from raytui.sources.ray_driver import prepare_ray_import

_T = TypeVar("_T")


def _local_gpu_count() -> int:
    try:
        from raytui.sources import nvml

        return len(nvml.sample().devices)
    except Exception:  # no NVML means no GPUs, not a failure
        return 0


class _OwnerThread:
    """A long-lived thread that runs the calls it is given, in order.

    Ray starts the embedded cluster's processes with PR_SET_PDEATHSIG, which fires when the
    *thread* that spawned them exits: `ray.init` from a short-lived worker thread gets the GCS
    and raylet killed as soon as that thread ends (then `ray.shutdown` hangs and the driver
    aborts 60 s later). So init and shutdown both run here, on a thread that outlives them.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="raytui-ray-owner", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._queue.get()) is not None:
            job()

    def call(self, fn: Callable[[], _T], timeout: float | None = None) -> _T:
        """Run fn on the owner thread; its result or exception. TimeoutError after `timeout`."""
        done = threading.Event()
        box: list[Any] = []

        def job() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:
                box.append((False, exc))
            finally:
                done.set()

        self._queue.put(job)
        if not done.wait(timeout):
            raise TimeoutError
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def stop(self) -> None:
        self._queue.put(None)


class EmbeddedRay:
    """A `ray.init(address="local")` cluster owned by this process, and how to stop all of it."""

    def __init__(self, progress: ProgressFn) -> None:
        import psutil

        gpus = _local_gpu_count()
        progress(
            f"starting embedded Ray with {gpus} GPU{'s' if gpus != 1 else ''} "
            "(this takes a few seconds)…"
        )
        prepare_ray_import()
        import ray

        if ray.is_initialized():
            raise RaytuiError("this process is already connected to a Ray cluster")
        self._me = psutil.Process()
        self._session_dir: str | None = None
        self._owner = _OwnerThread()

        def start() -> Any:
            return ray.init(
                address="local",
                num_gpus=gpus,
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                log_to_driver=False,
                configure_logging=True,
                logging_level=logging.WARNING,
                namespace="raytui",
            )

        try:
            context = self._owner.call(start)
        except Exception as exc:
            self.stop()
            raise ClusterUnreachable(
                f"could not start embedded Ray: {describe(exc, 'line')}"
            ) from None
        info: dict[str, Any] = dict(getattr(context, "address_info", {}) or {})
        self._session_dir = info.get("session_dir")
        self.gcs_address: str | None = info.get("gcs_address")
        url = str(getattr(context, "dashboard_url", "") or "")
        if not url:
            self.stop()
            raise ClusterUnreachable("embedded Ray started without a dashboard")
        self.dashboard_url = url if "://" in url else f"http://{url}"
        self.gpus = gpus

    def _session_processes(self) -> list[Any]:
        """Our descendants that belong to this Ray session, plus everything under them."""
        import psutil

        marks = [self._session_dir] if self._session_dir else []
        roots = []
        try:
            children = self._me.children(recursive=True)
        except psutil.Error:
            children = []
        for proc in children:
            try:
                args = proc.cmdline()
            except psutil.Error:
                continue
            if any(m in a for a in args for m in marks) or proc.name() in ("raylet", "gcs_server"):
                roots.append(proc)
        found = {p.pid: p for p in roots}
        for root in roots:
            try:
                for p in root.children(recursive=True):
                    found.setdefault(p.pid, p)
            except psutil.Error:
                continue
        # Also anything of this session already reparented away from us.
        if marks:
            for proc in psutil.process_iter(["cmdline"]):
                try:
                    if any(m in a for a in proc.info["cmdline"] or () for m in marks):
                        found.setdefault(proc.pid, proc)
                except (psutil.Error, TypeError):
                    continue
        found.pop(self._me.pid, None)
        return list(found.values())

    def stop(self, timeout: float = 15.0) -> None:
        """ray.shutdown(), then make sure no process of the session survives."""
        import psutil
        import ray

        procs = self._session_processes()
        with contextlib.suppress(Exception):
            self._owner.call(ray.shutdown, timeout=timeout)
        self._owner.stop()
        procs += [p for p in self._session_processes() if p.pid not in {q.pid for q in procs}]
        _gone, alive = psutil.wait_procs(procs, timeout=3)
        for sig in ("terminate", "kill"):
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    getattr(proc, sig)()
            _gone, alive = psutil.wait_procs(alive, timeout=3)
            if not alive:
                break
