"""What raytui's own NVML sampler read on one machine: the details Ray's agent does not report.

Ray's dashboard already gives utilisation, memory, power and temperature for every GPU of every
node (see model/cluster.py). An `NvmlReport` adds clocks, fan, power limit, ECC, PCIe and
per-process SM% for the machine it was sampled on (the TUI's own, or a node reached through the
probe actor).

Every numeric field is `None` when the GPU or driver does not support it ("N/A"). A report with no
devices and a `hint` is the normal answer on a machine without an NVIDIA driver, not an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from raytui.model.cluster import percent


@dataclass(frozen=True, slots=True)
class GpuDetailProcess:
    """A process on a GPU as NVML sees it."""

    pid: int
    memory_mib: float | None  # None: not reported (e.g. WDDM, or a process seen only by SM%)
    sm_pct: float | None = None  # None: the per-process utilisation query is not supported
    kind: str = "compute"  # "compute" or "graphics" (a process in both counts as "compute")


@dataclass(frozen=True, slots=True)
class GpuDetail:
    """One physical GPU (a MIG-enabled GPU is reported as its parent, `mig_enabled=True`)."""

    index: int
    name: str
    uuid: str
    utilization_pct: float | None = None
    memory_util_pct: float | None = None  # memory controller busy %, not memory used
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    fan_pct: float | None = None
    sm_clock_mhz: float | None = None
    sm_clock_max_mhz: float | None = None
    mem_clock_mhz: float | None = None
    mem_clock_max_mhz: float | None = None
    ecc_corrected: int | None = None  # volatile counters: since the driver was loaded
    ecc_uncorrected: int | None = None
    pcie_tx_kbps: float | None = None  # KB/s over NVML's last ~20 ms window
    pcie_rx_kbps: float | None = None
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    mig_enabled: bool | None = None
    processes: tuple[GpuDetailProcess, ...] = ()

    @property
    def memory_pct(self) -> float | None:
        return percent(self.memory_used_mib, self.memory_total_mib)


@dataclass(frozen=True, slots=True)
class NvmlReport:
    """One NVML reading of one machine.

    `hint` explains an empty or partial report in words meant for the user ("NVIDIA driver not
    loaded: ..."); it is None when everything could be read.
    """

    devices: tuple[GpuDetail, ...] = ()
    driver_version: str | None = None
    cuda_driver_version: str | None = None  # e.g. "12.4"
    hint: str | None = None
    sampled_at: float = field(default_factory=time.time)  # unix seconds
    hostname: str | None = None  # where it was sampled
    node_id: str | None = None  # the Ray node, when sampled by the probe actor

    @property
    def available(self) -> bool:
        """True when NVML answered with at least one GPU."""
        return bool(self.devices)

    def device(self, key: int | str) -> GpuDetail | None:
        """The device with this index or UUID."""
        for d in self.devices:
            if d.index == key or d.uuid == key:
                return d
        return None
