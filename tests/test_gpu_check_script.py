"""scripts/gpu-check on a machine without an NVIDIA GPU (this one): it says so in one clear
line, writes its results file, and exits 3 (its GPU steps run only on a device machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu-check"


def test_gpu_check_without_nvidia_driver_says_so_and_writes_results(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path / "bin"), "OUT": str(tmp_path / "out")}
    (tmp_path / "bin").mkdir()  # no nvidia-smi on PATH, whatever this machine has
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert "no NVIDIA GPU/driver here" in done.stdout
    assert "Traceback" not in done.stderr
    results = (tmp_path / "out" / "RESULTS.txt").read_text()
    assert "no NVIDIA GPU/driver here: nvidia-smi not found" in results


def test_gpu_check_with_a_failing_nvidia_smi_says_no_driver(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"  # what a machine with the tool but no driver answers
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate"
                    " with the NVIDIA driver.' >&2\nexit 9\n")  # fmt: skip
    fake.chmod(0o755)
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "no NVIDIA GPU/driver here: nvidia-smi failed" in (out / "RESULTS.txt").read_text()
