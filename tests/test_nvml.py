"""raytui's NVML sampler against a fake pynvml module, and against the real one on this machine.

The fake is a real module object put in `sys.modules["pynvml"]`: its functions have the real
binding's names (checked against the installed nvidia-ml-py) and it raises the real binding's
exception classes, so the sampler sees what it would see on a GPU machine.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pynvml as real_pynvml
import pytest

from raytui.model.nvml import GpuDetail, NvmlReport
from raytui.sources import nvml as nvml_source
from raytui.sources.nvml import (
    HINT_DRIVER,
    HINT_LIBRARY,
    HINT_NO_GPU,
    HINT_NOT_INSTALLED,
    MODULES,
    NvmlSampler,
)

MIB = 1024 * 1024
HAS_NVIDIA_DRIVER = bool(shutil.which("nvidia-smi")) or Path("/dev/nvidiactl").exists()


# -- the fake pynvml ------------------------------------------------------------------------------


@dataclass
class FakeGpu:
    name: str | bytes = "NVIDIA H100 80GB HBM3"
    uuid: str | bytes = "GPU-00000000-0000-0000-0000-000000000000"
    util: int = 37
    mem_util: int = 12
    mem_used: int = 12_288 * MIB
    mem_total: int = 81_559 * MIB
    temp: int = 61
    power_mw: int = 215_000
    limit_mw: int = 700_000
    fan: int = 45
    sm_clock: int = 1755
    sm_clock_max: int = 1980
    mem_clock: int = 2619
    mem_clock_max: int = 2619
    ecc: tuple[int, int] = (3, 0)  # corrected, uncorrected (volatile)
    pcie_tx_kb: int = 1200
    pcie_rx_kb: int = 3400
    pcie_gen: tuple[int, int] = (5, 5)  # current, max
    pcie_width: tuple[int, int] = (16, 16)
    mig: tuple[int, int] = (0, 0)
    compute: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, bytes)
    graphics: list[tuple[int, int | None]] = field(default_factory=list)
    sm_samples: list[tuple[int, int, int]] = field(default_factory=list)  # (pid, timeStamp, sm%)
    fail: dict[str, int] = field(default_factory=dict)  # function name -> NVML error code


def nvml_error(code: int) -> Exception:
    """The real binding's exception for this code (NVMLError.__new__ picks the subclass)."""
    return real_pynvml.NVMLError(code)  # type: ignore[no-any-return]


def make_fake_pynvml(
    gpus: list[FakeGpu],
    *,
    init_error: int | None = None,
    fail: dict[str, int] | None = None,
    driver: str | bytes = "550.54.15",
    cuda: int = 12040,
) -> Any:  # a types.ModuleType whose attributes mypy cannot know
    """A module object shaped like nvidia-ml-py's `pynvml`, answering from `gpus`."""
    mod = types.ModuleType("pynvml")
    for name in dir(real_pynvml):  # constants and the exception hierarchy, as the real one has
        if name.startswith(("NVML_", "NVMLError")):
            setattr(mod, name, getattr(real_pynvml, name))
    calls: Counter[str] = Counter()
    since: list[int] = []
    mod.calls = calls  # type: ignore[attr-defined]
    mod.since = since  # type: ignore[attr-defined]
    system_fail = dict(fail or {})

    def system(name: str, fn: Callable[..., Any]) -> None:
        def call(*args: Any) -> Any:
            calls[name] += 1
            if name in system_fail:
                raise nvml_error(system_fail[name])
            return fn(*args)

        setattr(mod, name, call)

    def device(name: str, fn: Callable[..., Any]) -> None:
        def call(handle: FakeGpu, *args: Any) -> Any:
            calls[name] += 1
            if name in handle.fail:
                raise nvml_error(handle.fail[name])
            return fn(handle, *args)

        setattr(mod, name, call)

    def init() -> None:
        if init_error is not None:
            raise nvml_error(init_error)

    def handle(index: int) -> FakeGpu:
        if index >= len(gpus):
            raise nvml_error(real_pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpus[index]

    def procs(pairs: list[tuple[int, int | None]]) -> list[types.SimpleNamespace]:
        return [
            types.SimpleNamespace(pid=p, usedGpuMemory=m, gpuInstanceId=0xFFFFFFFF)
            for p, m in pairs
        ]

    def process_util(g: FakeGpu, last_seen: int) -> list[types.SimpleNamespace]:
        since.append(last_seen)
        if not g.sm_samples:
            raise nvml_error(real_pynvml.NVML_ERROR_NOT_FOUND)
        return [
            types.SimpleNamespace(pid=p, timeStamp=t, smUtil=s, memUtil=0, encUtil=0, decUtil=0)
            for p, t, s in g.sm_samples
        ]

    def clock(value: Callable[[FakeGpu], int], other: Callable[[FakeGpu], int]) -> Any:
        def read(g: FakeGpu, kind: int) -> int:
            return value(g) if kind == real_pynvml.NVML_CLOCK_SM else other(g)

        return read

    system("nvmlInit", init)
    system("nvmlShutdown", lambda: None)
    system("nvmlSystemGetDriverVersion", lambda: driver)
    system("nvmlSystemGetCudaDriverVersion", lambda: cuda)
    system("nvmlSystemGetCudaDriverVersion_v2", lambda: cuda)
    system("nvmlDeviceGetCount", lambda: len(gpus))
    system("nvmlDeviceGetHandleByIndex", handle)
    device("nvmlDeviceGetName", lambda g: g.name)
    device("nvmlDeviceGetUUID", lambda g: g.uuid)
    device(
        "nvmlDeviceGetUtilizationRates",
        lambda g: types.SimpleNamespace(gpu=g.util, memory=g.mem_util),
    )
    device(
        "nvmlDeviceGetMemoryInfo",
        lambda g: types.SimpleNamespace(
            total=g.mem_total, used=g.mem_used, free=g.mem_total - g.mem_used
        ),
    )
    device("nvmlDeviceGetTemperature", lambda g, sensor: g.temp)
    device("nvmlDeviceGetPowerUsage", lambda g: g.power_mw)
    device("nvmlDeviceGetEnforcedPowerLimit", lambda g: g.limit_mw)
    device("nvmlDeviceGetPowerManagementLimit", lambda g: g.limit_mw)
    device("nvmlDeviceGetFanSpeed", lambda g: g.fan)
    device("nvmlDeviceGetClockInfo", clock(lambda g: g.sm_clock, lambda g: g.mem_clock))
    device("nvmlDeviceGetMaxClockInfo", clock(lambda g: g.sm_clock_max, lambda g: g.mem_clock_max))
    device(
        "nvmlDeviceGetTotalEccErrors",
        lambda g, kind, counter: (
            g.ecc[0] if kind == real_pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED else g.ecc[1]
        ),
    )
    device(
        "nvmlDeviceGetPcieThroughput",
        lambda g, counter: (
            g.pcie_tx_kb if counter == real_pynvml.NVML_PCIE_UTIL_TX_BYTES else g.pcie_rx_kb
        ),
    )
    device("nvmlDeviceGetCurrPcieLinkGeneration", lambda g: g.pcie_gen[0])
    device("nvmlDeviceGetMaxPcieLinkGeneration", lambda g: g.pcie_gen[1])
    device("nvmlDeviceGetCurrPcieLinkWidth", lambda g: g.pcie_width[0])
    device("nvmlDeviceGetMaxPcieLinkWidth", lambda g: g.pcie_width[1])
    device("nvmlDeviceGetMigMode", lambda g: list(g.mig))
    device("nvmlDeviceGetComputeRunningProcesses", lambda g: procs(g.compute))
    device("nvmlDeviceGetGraphicsRunningProcesses", lambda g: procs(g.graphics))
    device("nvmlDeviceGetProcessUtilization", process_util)
    return mod


@pytest.fixture
def use_pynvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[types.ModuleType], None]]:
    """Substitute `sys.modules["pynvml"]` (and hide Ray's vendored copy) for this test."""

    def install(module: types.ModuleType) -> None:
        monkeypatch.setitem(sys.modules, "pynvml", module)

    monkeypatch.setitem(sys.modules, "ray._private.thirdparty.pynvml", None)
    yield install


def only(report: NvmlReport) -> GpuDetail:
    assert len(report.devices) == 1, report
    return report.devices[0]


# -- the fake itself ------------------------------------------------------------------------------


def test_fake_pynvml_has_the_real_modules_names_and_errors() -> None:
    fake = make_fake_pynvml([])
    functions = [n for n in dir(fake) if n.startswith("nvml")]
    assert functions
    missing = [n for n in functions if not callable(getattr(real_pynvml, n, None))]
    assert missing == []
    err = nvml_error(real_pynvml.NVML_ERROR_NOT_SUPPORTED)
    assert type(err) is real_pynvml.NVMLError_NotSupported
    assert isinstance(err, fake.NVMLError)


# -- no library, no driver, no GPU ----------------------------------------------------------------


def test_no_pynvml_module_at_all_gives_zero_devices_and_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in MODULES:
        monkeypatch.setitem(sys.modules, name, None)
    report = NvmlSampler().sample()
    assert report.devices == ()
    assert not report.available
    assert report.hint == HINT_NOT_INSTALLED


def test_fake_pynvml_library_not_found_hints_install_driver_and_is_not_retried(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    fake = make_fake_pynvml([FakeGpu()], init_error=real_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    use_pynvml(fake)
    sampler = NvmlSampler()
    first, second = sampler.sample(), sampler.sample()
    assert first.devices == second.devices == ()
    assert first.hint == HINT_LIBRARY
    assert "libnvidia-ml.so not found" in HINT_LIBRARY and "NVIDIA driver" in HINT_LIBRARY
    assert fake.calls["nvmlInit"] == 1  # a failed init is remembered, not retried per sample
    assert not sampler.initialized


def test_fake_pynvml_failed_init_is_retried_after_the_interval(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    fake = make_fake_pynvml([], init_error=real_pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    use_pynvml(fake)
    sampler = NvmlSampler(retry_after_s=0.0)
    sampler.sample()
    sampler.sample()
    assert fake.calls["nvmlInit"] == 2


def test_fake_pynvml_driver_not_loaded_gives_zero_devices_and_driver_hint(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    use_pynvml(make_fake_pynvml([FakeGpu()], init_error=real_pynvml.NVML_ERROR_DRIVER_NOT_LOADED))
    report = NvmlSampler().sample()
    assert report.devices == ()
    assert report.hint == HINT_DRIVER
    assert "NVIDIA driver not loaded" in report.hint


def test_fake_pynvml_other_init_error_is_named_in_the_hint(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    use_pynvml(make_fake_pynvml([], init_error=real_pynvml.NVML_ERROR_UNKNOWN))
    report = NvmlSampler().sample()
    assert report.devices == ()
    assert report.hint == "NVML could not start: Unknown Error"


def test_fake_pynvml_zero_devices(use_pynvml: Callable[[types.ModuleType], None]) -> None:
    use_pynvml(make_fake_pynvml([]))
    report = NvmlSampler().sample()
    assert report.devices == ()
    assert report.hint == HINT_NO_GPU
    assert report.driver_version == "550.54.15"
    assert report.cuda_driver_version == "12.4"


# -- readings -------------------------------------------------------------------------------------


def test_fake_pynvml_full_reading_converts_units(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    use_pynvml(make_fake_pynvml([FakeGpu()]))
    before = time.time()
    report = NvmlSampler().sample()
    assert report.hint is None
    assert report.sampled_at >= before
    assert report.hostname
    gpu = only(report)
    assert gpu == GpuDetail(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        uuid="GPU-00000000-0000-0000-0000-000000000000",
        utilization_pct=37.0,
        memory_util_pct=12.0,
        memory_used_mib=12_288.0,
        memory_total_mib=81_559.0,
        temperature_c=61.0,
        power_w=215.0,
        power_limit_w=700.0,
        fan_pct=45.0,
        sm_clock_mhz=1755.0,
        sm_clock_max_mhz=1980.0,
        mem_clock_mhz=2619.0,
        mem_clock_max_mhz=2619.0,
        ecc_corrected=3,
        ecc_uncorrected=0,
        pcie_tx_kbps=1200.0,
        pcie_rx_kbps=3400.0,
        pcie_gen=5,
        pcie_gen_max=5,
        pcie_width=16,
        pcie_width_max=16,
        mig_enabled=False,
        processes=(),
    )
    assert gpu.memory_pct == pytest.approx(100 * 12_288 / 81_559)


def test_fake_pynvml_partial_field_failures_become_none(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    not_supported = real_pynvml.NVML_ERROR_NOT_SUPPORTED
    gpu = FakeGpu(
        fail={
            "nvmlDeviceGetFanSpeed": not_supported,
            "nvmlDeviceGetTotalEccErrors": not_supported,
            "nvmlDeviceGetPcieThroughput": real_pynvml.NVML_ERROR_NO_PERMISSION,
            "nvmlDeviceGetEnforcedPowerLimit": not_supported,  # falls back to the management limit
            "nvmlDeviceGetMigMode": not_supported,
            "nvmlDeviceGetUtilizationRates": real_pynvml.NVML_ERROR_GPU_IS_LOST,
        }
    )
    fake = make_fake_pynvml([gpu])
    del fake.nvmlDeviceGetMaxPcieLinkWidth  # an older binding without this function
    use_pynvml(fake)
    report = NvmlSampler().sample()
    d = only(report)
    assert (d.fan_pct, d.ecc_corrected, d.ecc_uncorrected) == (None, None, None)
    assert (d.pcie_tx_kbps, d.pcie_rx_kbps, d.pcie_width_max) == (None, None, None)
    assert (d.utilization_pct, d.memory_util_pct, d.mig_enabled) == (None, None, None)
    assert d.power_limit_w == 700.0
    # everything else still read
    assert d.name == "NVIDIA H100 80GB HBM3"
    assert (d.memory_used_mib, d.memory_total_mib) == (12_288.0, 81_559.0)
    assert (d.temperature_c, d.power_w, d.sm_clock_mhz, d.pcie_width) == (61.0, 215.0, 1755.0, 16)
    assert report.hint is None


def test_fake_pynvml_several_gpus_with_bytes_and_str_names(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    gpus = [
        FakeGpu(name=b"NVIDIA A100-SXM4-40GB", uuid=b"GPU-aaaa", util=91),
        FakeGpu(name="NVIDIA A100-SXM4-40GB", uuid="GPU-bbbb", util=3),
        FakeGpu(name=b"Tesla T4\x00", uuid=b"GPU-cccc", util=0, fan=0),
    ]
    use_pynvml(make_fake_pynvml(gpus, driver=b"535.161.08"))
    report = NvmlSampler().sample()
    assert [(d.index, d.name, d.uuid, d.utilization_pct) for d in report.devices] == [
        (0, "NVIDIA A100-SXM4-40GB", "GPU-aaaa", 91.0),
        (1, "NVIDIA A100-SXM4-40GB", "GPU-bbbb", 3.0),
        (2, "Tesla T4", "GPU-cccc", 0.0),
    ]
    assert report.driver_version == "535.161.08"
    assert report.device("GPU-bbbb") is report.devices[1]
    assert report.device(2) is report.devices[2]
    assert report.devices[2].fan_pct == 0.0  # zero is a reading, not N/A


def test_fake_pynvml_one_unreachable_gpu_keeps_the_others(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    fake = make_fake_pynvml([FakeGpu(uuid="GPU-0"), FakeGpu(uuid="GPU-1")])
    real_handle = fake.nvmlDeviceGetHandleByIndex

    def handle(index: int) -> Any:
        if index == 0:
            raise nvml_error(real_pynvml.NVML_ERROR_GPU_IS_LOST)
        return real_handle(index)

    fake.nvmlDeviceGetHandleByIndex = handle
    use_pynvml(fake)
    report = NvmlSampler().sample()
    assert [(d.index, d.uuid) for d in report.devices] == [(1, "GPU-1")]
    assert report.hint == "GPU 0: GPU is lost"


def test_fake_pynvml_processes_with_sm_percent(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    gpu = FakeGpu(
        compute=[(4242, 8_000 * MIB), (4343, 2_000 * MIB), (5555, None)],
        graphics=[(4242, 100 * MIB), (777, 64 * MIB)],
        # older and newer samples for 4242: the newest wins; 9999 shows only in SM samples
        sm_samples=[(4242, 1_000, 10), (4242, 2_000, 87), (5555, 1_500, 4), (9999, 1_800, 1)],
    )
    fake = make_fake_pynvml([gpu])
    use_pynvml(fake)
    before_us = int(time.time() * 1_000_000)
    procs = only(NvmlSampler(process_window_s=3.0).sample()).processes
    assert [(p.pid, p.memory_mib, p.sm_pct, p.kind) for p in procs] == [
        (777, 64.0, 0.0, "graphics"),  # no SM sample in the window: idle
        (4242, 8_000.0, 87.0, "compute"),
        (4343, 2_000.0, 0.0, "compute"),
        (5555, None, 4.0, "compute"),
        (9999, None, 1.0, "compute"),
    ]
    # NVML is asked only for samples from the last few seconds (timestamps in microseconds)
    assert before_us - 3_500_000 <= fake.since[0] <= before_us


def test_fake_pynvml_processes_without_samples_are_idle(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    use_pynvml(make_fake_pynvml([FakeGpu(compute=[(4242, 1 * MIB)], sm_samples=[])]))
    (proc,) = only(NvmlSampler().sample()).processes
    assert (proc.pid, proc.sm_pct) == (4242, 0.0)  # NVML_ERROR_NOT_FOUND: nothing ran


def test_fake_pynvml_process_sm_not_supported_is_none(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    gpu = FakeGpu(
        compute=[(4242, 1 * MIB)],
        fail={"nvmlDeviceGetProcessUtilization": real_pynvml.NVML_ERROR_NOT_SUPPORTED},
    )
    use_pynvml(make_fake_pynvml([gpu]))
    (proc,) = only(NvmlSampler().sample()).processes
    assert (proc.pid, proc.memory_mib, proc.sm_pct) == (4242, 1.0, None)


def test_fake_pynvml_running_processes_fail_gives_no_processes(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    gpu = FakeGpu(
        compute=[(4242, 1 * MIB)],
        fail={"nvmlDeviceGetComputeRunningProcesses": real_pynvml.NVML_ERROR_NO_PERMISSION},
    )
    use_pynvml(make_fake_pynvml([gpu]))
    assert only(NvmlSampler().sample()).processes == ()


def test_fake_pynvml_mig_gpu_is_reported_as_its_parent(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    gpu = FakeGpu(
        mig=(real_pynvml.NVML_DEVICE_MIG_ENABLE, real_pynvml.NVML_DEVICE_MIG_ENABLE),
        compute=[(31, 5_000 * MIB)],
        fail={
            "nvmlDeviceGetUtilizationRates": real_pynvml.NVML_ERROR_NOT_SUPPORTED,
            "nvmlDeviceGetProcessUtilization": real_pynvml.NVML_ERROR_NOT_SUPPORTED,
        },
    )
    use_pynvml(make_fake_pynvml([gpu]))
    d = only(NvmlSampler().sample())
    assert d.mig_enabled is True
    assert d.utilization_pct is None
    assert d.memory_total_mib == 81_559.0
    assert [(p.pid, p.memory_mib) for p in d.processes] == [(31, 5_000.0)]


# -- lifecycle ------------------------------------------------------------------------------------


def test_fake_pynvml_initialises_once_and_shutdown_releases(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    fake = make_fake_pynvml([FakeGpu()])
    use_pynvml(fake)
    sampler = NvmlSampler()
    assert fake.calls["nvmlInit"] == 0  # lazy: nothing happens before the first sample
    sampler.sample()
    sampler.sample()
    assert fake.calls["nvmlInit"] == 1
    assert sampler.initialized
    sampler.shutdown()
    assert fake.calls["nvmlShutdown"] == 1
    assert not sampler.initialized
    sampler.shutdown()  # idempotent
    assert fake.calls["nvmlShutdown"] == 1
    assert only(sampler.sample()).uuid == FakeGpu().uuid
    assert fake.calls["nvmlInit"] == 2


def test_fake_pynvml_lost_driver_mid_run_gives_hint_then_reinitialises(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    fake = make_fake_pynvml([FakeGpu()])
    use_pynvml(fake)
    sampler = NvmlSampler(retry_after_s=0.0)
    assert sampler.sample().available
    count = fake.nvmlDeviceGetCount
    fake.nvmlDeviceGetCount = lambda: (_ for _ in ()).throw(
        nvml_error(real_pynvml.NVML_ERROR_UNINITIALIZED)
    )
    lost = sampler.sample()
    assert lost.devices == ()
    assert lost.hint == "NVML stopped answering: Uninitialized"
    assert not sampler.initialized
    fake.nvmlDeviceGetCount = count
    assert sampler.sample().available
    assert fake.calls["nvmlInit"] == 2


def test_fake_pynvml_concurrent_samples_initialise_once(
    use_pynvml: Callable[[types.ModuleType], None],
) -> None:
    fake = make_fake_pynvml([FakeGpu(), FakeGpu(uuid="GPU-2")])
    use_pynvml(fake)
    sampler = NvmlSampler()
    barrier = threading.Barrier(8)
    reports: list[NvmlReport] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(20):
                reports.append(sampler.sample())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(reports) == 160
    assert all(len(r.devices) == 2 for r in reports)
    assert fake.calls["nvmlInit"] == 1


def test_module_level_sample_uses_one_shared_sampler(
    use_pynvml: Callable[[types.ModuleType], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = make_fake_pynvml([FakeGpu()])
    use_pynvml(fake)
    monkeypatch.setattr(nvml_source, "_default", NvmlSampler())
    assert nvml_source.sample().available
    assert nvml_source.sample().available
    nvml_source.shutdown()
    assert (fake.calls["nvmlInit"], fake.calls["nvmlShutdown"]) == (1, 1)


# -- the real pynvml ------------------------------------------------------------------------------


@pytest.mark.skipif(HAS_NVIDIA_DRIVER, reason="this machine has an NVIDIA driver")
def test_real_pynvml_without_driver_gives_zero_devices_and_a_hint() -> None:
    sampler = NvmlSampler(modules=("pynvml",))
    try:
        report = sampler.sample()
    finally:
        sampler.shutdown()
    assert report.devices == ()
    assert report.hint in (HINT_LIBRARY, HINT_DRIVER)
    assert "driver" in (report.hint or "")


@pytest.mark.gpu
@pytest.mark.skipif(
    not HAS_NVIDIA_DRIVER,
    reason="needs an NVIDIA GPU and driver (no nvidia-smi, no /dev/nvidiactl)",
)
def test_real_nvml_reads_the_gpus_on_this_machine() -> None:
    sampler = NvmlSampler(modules=("pynvml",))
    try:
        report = sampler.sample()
    finally:
        sampler.shutdown()
    assert report.hint is None, report.hint
    assert len(report.devices) >= 1
    assert report.driver_version
    assert report.cuda_driver_version and report.cuda_driver_version[0].isdigit()
    for d in report.devices:
        assert d.name and d.name != "NVIDIA GPU"
        assert d.uuid.startswith(("GPU-", "MIG-"))
        assert d.memory_total_mib is not None and d.memory_total_mib > 1024
        assert d.memory_used_mib is not None and 0 <= d.memory_used_mib <= d.memory_total_mib
        if d.utilization_pct is not None:
            assert 0 <= d.utilization_pct <= 100
        if d.temperature_c is not None:
            assert 0 < d.temperature_c < 120
        if d.power_w is not None and d.power_limit_w is not None:
            assert 0 < d.power_w <= d.power_limit_w * 1.5
        if d.sm_clock_mhz is not None and d.sm_clock_max_mhz is not None:
            assert 0 < d.sm_clock_mhz <= d.sm_clock_max_mhz
        if d.pcie_gen is not None:
            assert 1 <= d.pcie_gen <= 6
