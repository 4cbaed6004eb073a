"""Loaded at interpreter start when this directory is on PYTHONPATH: a thread that writes to
file descriptor 2 the way Ray's C++ core does (past sys.stderr, straight to the fd), from the
third second of the process's life on, ten times a second for RAYTUI_TEST_FD2_NOISE seconds."""

from __future__ import annotations

import os
import threading
import time


def _noise(seconds: float) -> None:
    time.sleep(3.0)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
        line = f"[2026-11-30 16:40:56,741 W {os.getpid()}] core_worker.cc:42: FD2-NOISE {n}\n"
        try:
            os.write(2, line.encode())
        except OSError:
            return
        time.sleep(0.1)


_seconds = os.environ.get("RAYTUI_TEST_FD2_NOISE")
if _seconds:
    threading.Thread(target=_noise, args=(float(_seconds),), daemon=True).start()
