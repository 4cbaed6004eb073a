"""The job-level runtime env that ships raytui (and the ollama client) to every node.

Below both `sources` (the connection's `ray.init`) and `backends` (the driver commands), so
neither data layer has to import the other for it.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import raytui


@functools.cache
def runtime_env() -> dict[str, Any]:
    """Pass it to `ray.init(..., runtime_env=runtime_env())` so a node needs only Ray (Ray accepts
    local directories only at the job level). Without it, nodes must have raytui installed.
    """
    modules = [str(Path(raytui.__file__).resolve().parent)]
    with contextlib.suppress(ImportError):
        import ollama

        modules.append(str(Path(ollama.__file__).resolve().parent))
    return {"py_modules": modules, "excludes": ["__pycache__", "*.pyc"]}
