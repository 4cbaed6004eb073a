"""raytui's own NVML sampler: clocks, fan, power limit, ECC, PCIe and per-process SM% of local GPUs.

Rules it keeps (the nvitop way):
- `pynvml` is imported and `nvmlInit` called lazily, on the first `sample()`, once. A failed init
  is remembered (and retried after `retry_after_s`), so a machine without a driver costs nothing.
- Every field is read on its own: an `NVMLError` (NotSupported, NoPermission, ...) or a function
  missing from an old binding makes that field `None`, never the whole reading.
- No library, no driver, no GPU: a report with zero devices and a `hint` in plain words.
- A MIG-enabled GPU is reported as its parent device (`mig_enabled=True`; NVML aggregates its
  processes; fields MIG does not support are `None`).
- One lock: `sample()` and `shutdown()` may be called from any thread.

`pynvml` is looked up in `sys.modules` through `importlib` at init and only used through that module
object, so a test can substitute `sys.modules["pynvml"]`. If nvidia-ml-py is not installed, Ray's
vendored copy is used (Ray nodes always have it). No Textual here.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from raytui.model.nvml import GpuDetail, GpuDetailProcess, NvmlReport

__all__ = [
    "HINT_DRIVER",
    "HINT_LIBRARY",
    "HINT_NOT_INSTALLED",
    "HINT_NO_GPU",
    "MODULES",
    "NvmlSampler",
    "sample",
    "shutdown",
]

MIB = 1024 * 1024

#: Where the NVML bindings are looked for, in order.
MODULES: tuple[str, ...] = ("pynvml", "ray._private.thirdparty.pynvml")

HINT_NOT_INSTALLED = (
    "nvidia-ml-py is not installed: pip install nvidia-ml-py (no GPU panes from NVML here)"
)
HINT_LIBRARY = (
    "libnvidia-ml.so not found: install the NVIDIA driver (no GPU panes from NVML on this machine)"
)
HINT_DRIVER = "NVIDIA driver not loaded: no GPU panes from NVML on this machine"
HINT_NO_PERMISSION = "no permission to use NVML: check access to /dev/nvidia* (no GPU panes)"
HINT_MISMATCH = (
    "NVIDIA driver and libnvidia-ml versions differ: reboot or reload the nvidia kernel module"
)
HINT_NO_GPU = "NVML found no NVIDIA GPU on this machine"

# NVML error codes (nvml.h); looked up on the module first, these are fallbacks for old bindings.
_ERR_SUCCESS = 0
_ERR_CODES = {
    "NVML_ERROR_NO_PERMISSION": 4,
    "NVML_ERROR_NOT_FOUND": 6,
    "NVML_ERROR_DRIVER_NOT_LOADED": 9,
    "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": 18,
}


class NvmlSampler:
    """Reads every local NVIDIA GPU through NVML. Thread-safe; `shutdown()` releases NVML."""

    def __init__(
        self,
        modules: Sequence[str] = MODULES,
        *,
        retry_after_s: float = 60.0,
        process_window_s: float = 3.0,
    ) -> None:
        self._modules = tuple(modules)
        self._retry_after_s = retry_after_s
        self._process_window_s = process_window_s  # how far back per-process SM% samples count
        self._lock = threading.Lock()
        self._nvml: ModuleType | None = None
        self._failure: str | None = None
        self._failed_at = 0.0

    @property
    def initialized(self) -> bool:
        return self._nvml is not None

    def sample(self) -> NvmlReport:
        """One reading of all local GPUs; never raises for NVML reasons."""
        with self._lock:
            nvml = self._ensure_init()
            if nvml is None:
                return NvmlReport(hint=self._failure, hostname=_hostname())
            return self._read(nvml)

    def shutdown(self) -> None:
        """Release NVML (if initialised) and forget a failed init; the next sample starts over."""
        with self._lock:
            self._release()
            self._failure = None

    # -- init ---------------------------------------------------------------------------------

    def _ensure_init(self) -> ModuleType | None:
        if self._nvml is not None:
            return self._nvml
        if self._failure is not None and time.monotonic() - self._failed_at < self._retry_after_s:
            return None
        nvml = _import_first(self._modules)
        if nvml is None:
            self._fail(HINT_NOT_INSTALLED)
            return None
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            self._fail(_init_hint(nvml, exc))
            return None
        except OSError as exc:  # a broken library that loads but cannot be used
            self._fail(f"NVML could not start: {exc}")
            return None
        self._nvml, self._failure = nvml, None
        return nvml

    def _fail(self, hint: str) -> None:
        self._failure, self._failed_at = hint, time.monotonic()

    def _release(self) -> None:
        nvml, self._nvml = self._nvml, None
        if nvml is not None:
            with contextlib.suppress(nvml.NVMLError):
                nvml.nvmlShutdown()

    # -- reading ------------------------------------------------------------------------------

    def _read(self, nvml: ModuleType) -> NvmlReport:
        driver = _text(_field(nvml, "nvmlSystemGetDriverVersion"))
        cuda = _field(nvml, "nvmlSystemGetCudaDriverVersion_v2")
        if cuda is None:
            cuda = _field(nvml, "nvmlSystemGetCudaDriverVersion")
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            # Lost the driver under us (or someone shut NVML down): start over next time.
            self._release()
            self._fail(f"NVML stopped answering: {exc}")
            return NvmlReport(hint=self._failure, driver_version=driver, hostname=_hostname())
        devices: list[GpuDetail] = []
        problems: list[str] = []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            except nvml.NVMLError as exc:
                problems.append(f"GPU {index}: {exc}")
                continue
            devices.append(self._read_device(nvml, index, handle))
        hint = "; ".join(problems) or (None if count else HINT_NO_GPU)
        return NvmlReport(
            devices=tuple(devices),
            driver_version=driver,
            cuda_driver_version=_cuda_version(cuda),
            hint=hint,
            hostname=_hostname(),
        )

    def _read_device(self, nvml: ModuleType, index: int, h: Any) -> GpuDetail:
        def get(name: str, *args: Any) -> Any:
            return _field(nvml, name, h, *args)

        def const(name: str, default: int) -> int:
            return int(getattr(nvml, name, default))

        util = get("nvmlDeviceGetUtilizationRates")
        mem = get("nvmlDeviceGetMemoryInfo")
        clock_sm, clock_mem = const("NVML_CLOCK_SM", 1), const("NVML_CLOCK_MEM", 2)
        corrected = const("NVML_MEMORY_ERROR_TYPE_CORRECTED", 0)
        uncorrected = const("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1)
        volatile = const("NVML_VOLATILE_ECC", 0)
        power_limit = get("nvmlDeviceGetEnforcedPowerLimit")
        if power_limit is None:
            power_limit = get("nvmlDeviceGetPowerManagementLimit")
        mig = get("nvmlDeviceGetMigMode")
        return GpuDetail(
            index=index,
            name=_text(get("nvmlDeviceGetName")) or "NVIDIA GPU",
            uuid=_text(get("nvmlDeviceGetUUID")) or f"GPU-{index}",
            utilization_pct=_num(getattr(util, "gpu", None)),
            memory_util_pct=_num(getattr(util, "memory", None)),
            memory_used_mib=_mib(getattr(mem, "used", None)),
            memory_total_mib=_mib(getattr(mem, "total", None)),
            temperature_c=_num(get("nvmlDeviceGetTemperature", const("NVML_TEMPERATURE_GPU", 0))),
            power_w=_watts(get("nvmlDeviceGetPowerUsage")),
            power_limit_w=_watts(power_limit),
            fan_pct=_num(get("nvmlDeviceGetFanSpeed")),
            sm_clock_mhz=_num(get("nvmlDeviceGetClockInfo", clock_sm)),
            sm_clock_max_mhz=_num(get("nvmlDeviceGetMaxClockInfo", clock_sm)),
            mem_clock_mhz=_num(get("nvmlDeviceGetClockInfo", clock_mem)),
            mem_clock_max_mhz=_num(get("nvmlDeviceGetMaxClockInfo", clock_mem)),
            ecc_corrected=_int(get("nvmlDeviceGetTotalEccErrors", corrected, volatile)),
            ecc_uncorrected=_int(get("nvmlDeviceGetTotalEccErrors", uncorrected, volatile)),
            pcie_tx_kbps=_num(
                get("nvmlDeviceGetPcieThroughput", const("NVML_PCIE_UTIL_TX_BYTES", 0))
            ),
            pcie_rx_kbps=_num(
                get("nvmlDeviceGetPcieThroughput", const("NVML_PCIE_UTIL_RX_BYTES", 1))
            ),
            pcie_gen=_int(get("nvmlDeviceGetCurrPcieLinkGeneration")),
            pcie_gen_max=_int(get("nvmlDeviceGetMaxPcieLinkGeneration")),
            pcie_width=_int(get("nvmlDeviceGetCurrPcieLinkWidth")),
            pcie_width_max=_int(get("nvmlDeviceGetMaxPcieLinkWidth")),
            mig_enabled=(None if not mig else int(mig[0]) == const("NVML_DEVICE_MIG_ENABLE", 1)),
            processes=self._processes(nvml, h),
        )

    def _processes(self, nvml: ModuleType, h: Any) -> tuple[GpuDetailProcess, ...]:
        found: dict[int, tuple[str, float | None]] = {}
        for kind, fn in (
            ("graphics", "nvmlDeviceGetGraphicsRunningProcesses"),
            ("compute", "nvmlDeviceGetComputeRunningProcesses"),
        ):
            for proc in _field(nvml, fn, h) or ():
                pid = int(proc.pid)
                memory = _mib(getattr(proc, "usedGpuMemory", None))
                if pid in found:
                    old = found[pid][1]
                    if memory is None or (old is not None and old > memory):
                        memory = old
                found[pid] = (kind, memory)
        sm = self._process_sm(nvml, h)
        if sm:
            for pid in sm.keys() - found.keys():
                found[pid] = ("compute", None)
        return tuple(
            GpuDetailProcess(
                pid=pid,
                memory_mib=memory,
                sm_pct=None if sm is None else sm.get(pid, 0.0),
                kind=kind,
            )
            for pid, (kind, memory) in sorted(found.items())
        )

    def _process_sm(self, nvml: ModuleType, h: Any) -> dict[int, float] | None:
        """Latest SM% per PID over the last `process_window_s`; None when unsupported.

        A PID with no sample in the window was idle: NVML records samples only for busy processes.
        """
        since_us = max(0, int((time.time() - self._process_window_s) * 1_000_000))
        no_samples = (_ERR_SUCCESS, _code(nvml, "NVML_ERROR_NOT_FOUND"))
        for fn_name in ("nvmlDeviceGetProcessUtilization", "nvmlDeviceGetProcessesUtilizationInfo"):
            fn: Callable[..., Any] | None = getattr(nvml, fn_name, None)
            if fn is None:
                continue
            try:
                samples = fn(h, since_us)
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) in no_samples:
                    return {}
                continue
            latest: dict[int, tuple[int, float]] = {}
            for s in samples or ():
                pid, stamp = int(s.pid), int(getattr(s, "timeStamp", 0))
                if pid not in latest or stamp >= latest[pid][0]:
                    latest[pid] = (stamp, float(s.smUtil))
            return {pid: value for pid, (_, value) in latest.items()}
        return None


# -- helpers ------------------------------------------------------------------------------------


def _import_first(names: Sequence[str]) -> ModuleType | None:
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _field(nvml: ModuleType, name: str, *args: Any) -> Any:
    """Call `nvml.<name>(*args)`; None when the binding lacks it or NVML refuses (N/A)."""
    fn = getattr(nvml, name, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except nvml.NVMLError:
        return None


def _code(nvml: ModuleType, name: str) -> int:
    return int(getattr(nvml, name, _ERR_CODES[name]))


def _init_hint(nvml: ModuleType, exc: BaseException) -> str:
    code = getattr(exc, "value", None)
    if code == _code(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND"):
        return HINT_LIBRARY
    if code == _code(nvml, "NVML_ERROR_DRIVER_NOT_LOADED"):
        return HINT_DRIVER
    if code == _code(nvml, "NVML_ERROR_NO_PERMISSION"):
        return HINT_NO_PERMISSION
    if code == _code(nvml, "NVML_ERROR_LIB_RM_VERSION_MISMATCH"):
        return HINT_MISMATCH
    return f"NVML could not start: {exc}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace").rstrip("\x00").strip() or None
    return str(value).strip() or None


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _mib(value: Any) -> float | None:
    return None if value is None else float(value) / MIB


def _watts(milliwatts: Any) -> float | None:
    return None if milliwatts is None else float(milliwatts) / 1000.0


def _cuda_version(value: Any) -> str | None:
    """NVML's CUDA driver version integer (12040) as "12.4"."""
    if value is None:
        return None
    v = int(value)
    return f"{v // 1000}.{(v % 1000) // 10}"


def _hostname() -> str | None:
    try:
        return socket.gethostname()
    except OSError:
        return None


_default = NvmlSampler()


def sample() -> NvmlReport:
    """One reading of this machine's GPUs through the process-wide sampler."""
    return _default.sample()


def shutdown() -> None:
    """Release the process-wide sampler's NVML handle."""
    _default.shutdown()
