"""Probe the machine a worker runs on: platform, OS, CPU, memory, GPUs, driver, runners.

Standard library only, no Django: operators can run it on a new host before enrolling it
(`python -m testing_app.adapters.host_probe`), and `distro_worker` calls `probe_host()`.
Parsing is split from running commands so it is tested against real captured output.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path

# One CSV query for the per-GPU facts; the driver's supported CUDA version is only printed in
# the banner of plain `nvidia-smi` (and in `nvidia-smi -q`), so that is read separately.
GPU_QUERY_FIELDS = ("index", "name", "uuid", "memory.total", "compute_cap", "driver_version")
NVIDIA_SMI_QUERY = [
    "--query-gpu=" + ",".join(GPU_QUERY_FIELDS),
    "--format=csv,noheader,nounits",
]
# nvidia-smi before driver 510 has no compute_cap field and rejects the whole query
# ('Field "compute_cap" is not a valid field to query.'): the GPUs are then read without it.
LEGACY_GPU_QUERY_FIELDS = tuple(f for f in GPU_QUERY_FIELDS if f != "compute_cap")
LEGACY_NVIDIA_SMI_QUERY = [
    "--query-gpu=" + ",".join(LEGACY_GPU_QUERY_FIELDS),
    "--format=csv,noheader,nounits",
]
COMMAND_TIMEOUT_S = 20
# Set to "0" to read the GPUs with nvidia-smi even where NVML works (an operator comparing the
# two; the worker tests, whose stand-in nvidia-smi must win over a real GPU of the test host).
NVML_ENV = "DISTRO_PROBE_NVML"
SUBDIRS = {
    ("linux", "x86_64"): "linux-64",
    ("linux", "amd64"): "linux-64",
    ("linux", "aarch64"): "linux-aarch64",
    ("linux", "arm64"): "linux-aarch64",
    ("linux", "ppc64le"): "linux-ppc64le",
    ("darwin", "arm64"): "osx-arm64",
    ("darwin", "x86_64"): "osx-64",
    ("windows", "amd64"): "win-64",
    ("windows", "x86_64"): "win-64",
    ("windows", "arm64"): "win-arm64",
}


class ProbeError(Exception):
    """Output of a probing command could not be understood."""


@dataclass(frozen=True)
class MigDeviceFacts:
    """One MIG instance of a GPU in MIG mode: CUDA sees it only through its own UUID."""

    uuid: str
    name: str
    memory_mib: int | None


@dataclass(frozen=True)
class GpuFacts:
    index: int
    name: str
    uuid: str
    memory_mib: int | None
    compute_capability: str
    driver_version: str
    mig_mode: bool = False
    mig_devices: tuple[MigDeviceFacts, ...] = ()

    @property
    def pin_id(self) -> str:
        """What CUDA_VISIBLE_DEVICES names to give a worker this GPU: with MIG enabled, the
        first MIG instance (the parent's UUID shows no device); else the GPU's UUID."""
        if self.mig_mode and self.mig_devices:
            return self.mig_devices[0].uuid
        return self.uuid or str(self.index)


@dataclass(frozen=True)
class HostFacts:
    subdir: str
    os_name: str
    os_version: str
    kernel: str
    glibc_version: str
    cpu_model: str
    cpu_count: int
    memory_bytes: int | None
    gpus: list[GpuFacts] = field(default_factory=list)
    driver_version: str = ""
    max_cuda: str = ""
    rocm_version: str = ""
    conda_build_version: str = ""
    # py-rattler, which the rattler runner needs ("" when it cannot be imported here).
    rattler_version: str = ""
    # What isolates package tests (the worker fills it in: services/test_sandbox.py), or "" and
    # why not.
    test_isolation: str = ""
    test_isolation_note: str = ""
    # Why a part of the probe found nothing (e.g. "nvidia-smi: not found"), for the operator.
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


Runner = Callable[[list[str]], str]


def conda_subdir(system: str, machine: str) -> str:
    """The conda subdir of an OS/architecture pair, e.g. ("Linux", "x86_64") -> "linux-64"."""
    key = (system.lower(), machine.lower())
    if key not in SUBDIRS:
        raise ProbeError(f"unsupported platform {system}/{machine}")
    return SUBDIRS[key]


def parse_gpu_query(text: str, fields: tuple[str, ...] = GPU_QUERY_FIELDS) -> list[GpuFacts]:
    """Parse `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` (GPU_QUERY_FIELDS,
    or LEGACY_GPU_QUERY_FIELDS for drivers older than 510: compute capability unknown)."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(fields):
            raise ProbeError(f"unexpected nvidia-smi line: {line!r}")
        values = dict(zip(fields, parts, strict=True))
        index, name, uuid = values["index"], values["name"], values["uuid"]
        memory, driver = values["memory.total"], values["driver_version"]
        compute_cap = values.get("compute_cap", "[N/A]")
        if not index.isdigit():
            raise ProbeError(f"unexpected GPU index in nvidia-smi line: {line!r}")
        gpus.append(
            GpuFacts(
                index=int(index),
                name=name,
                uuid=uuid,
                memory_mib=int(memory) if memory.isdigit() else None,
                compute_capability="" if compute_cap.startswith("[") else compute_cap,
                driver_version=driver,
            )
        )
    return gpus


_CUDA_VERSION = re.compile(r"CUDA Version\s*:\s*(\d+\.\d+)")


def parse_max_cuda(text: str) -> str:
    """The CUDA version the driver supports, from plain `nvidia-smi` or `nvidia-smi -q`."""
    match = _CUDA_VERSION.search(text)
    if not match:
        raise ProbeError("no 'CUDA Version' in nvidia-smi output")
    return match.group(1)


def parse_conda_build_version(text: str) -> str:
    """`conda-build --version` prints e.g. "conda-build 24.9.0"."""
    match = re.search(r"conda-build\s+(\S+)", text)
    if not match:
        raise ProbeError(f"unexpected conda-build --version output: {text.strip()!r}")
    return match.group(1)


def parse_os_release(text: str) -> tuple[str, str]:
    """(ID, PRETTY_NAME or VERSION_ID) out of /etc/os-release."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values.get("ID", "linux"), values.get("PRETTY_NAME") or values.get("VERSION_ID", "")


def parse_meminfo(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def parse_cpuinfo_model(text: str) -> str:
    match = re.search(r"^(?:model name|Model|cpu model)\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def run_command(argv: list[str]) -> str:
    """Run a probing command; a missing binary or non-zero exit raises ProbeError."""
    if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
        raise ProbeError(f"{argv[0]}: not found")
    try:
        result = subprocess.run(  # noqa: S603 - fixed argument lists, no shell
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProbeError(f"{argv[0]}: {exc}") from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ProbeError(f"{' '.join(argv)} exited {result.returncode}: {' '.join(detail[-2:])}")
    return result.stdout


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _glibc_version() -> str:
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return ""
    return value.split()[-1] if value.startswith("glibc") else ""


def _memory_bytes(system: str) -> int | None:
    if system == "linux":
        return parse_meminfo(_read("/proc/meminfo"))
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _os_identity(system: str) -> tuple[str, str]:
    if system == "linux":
        return parse_os_release(_read("/etc/os-release"))
    if system == "darwin":
        return "macos", platform.mac_ver()[0]
    return system, platform.version()


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def cuda_version_text(value: int) -> str:
    """NVML's CUDA driver version integer (13000, 12040) as nvidia-smi prints it ("13.0")."""
    return f"{value // 1000}.{value % 1000 // 10}"


def _nvml_mig_devices(nvml, handle) -> tuple[bool, tuple[MigDeviceFacts, ...]]:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except nvml.NVMLError:  # not a MIG-capable GPU (NVML_ERROR_NOT_SUPPORTED)
        return False, ()
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return False, ()
    devices = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError:  # an empty slot (NVML_ERROR_NOT_FOUND)
            continue
        devices.append(
            MigDeviceFacts(
                uuid=_text(nvml.nvmlDeviceGetUUID(mig)),
                name=_text(nvml.nvmlDeviceGetName(mig)),
                memory_mib=nvml.nvmlDeviceGetMemoryInfo(mig).total // (1024 * 1024),
            )
        )
    return True, tuple(devices)


def probe_nvml(notes: list[str]) -> tuple[list[GpuFacts], str, str] | None:
    """GPUs, driver version and driver CUDA version from NVML (nvidia-ml-py's `pynvml`), which
    knows the compute capability and MIG instances whatever the driver's nvidia-smi can query.
    None when NVML cannot be used here (not installed, no driver library): nvidia-smi then."""
    if os.environ.get(NVML_ENV, "1") == "0":
        notes.append(f"NVML: not used ({NVML_ENV}=0); using nvidia-smi")
        return None
    try:
        import pynvml as nvml  # noqa: PLC0415 - optional: only GPU hosts need nvidia-ml-py
    except ImportError:
        notes.append("NVML: nvidia-ml-py is not installed; using nvidia-smi")
        return None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        notes.append(f"NVML: {exc}; using nvidia-smi")
        return None
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        max_cuda = cuda_version_text(nvml.nvmlSystemGetCudaDriverVersion_v2())
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
            mig_mode, mig_devices = _nvml_mig_devices(nvml, handle)
            gpus.append(
                GpuFacts(
                    index=index,
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    memory_mib=nvml.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024),
                    compute_capability=f"{major}.{minor}",
                    driver_version=driver,
                    mig_mode=mig_mode,
                    mig_devices=mig_devices,
                )
            )
    except nvml.NVMLError as exc:
        notes.append(f"NVML: {exc}; using nvidia-smi")
        return None
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as exc:
            notes.append(f"NVML: shutdown: {exc}")
    return gpus, driver, max_cuda


def _probe_nvidia(run: Runner, notes: list[str]) -> tuple[list[GpuFacts], str, str]:
    from_nvml = probe_nvml(notes)
    if from_nvml is not None:
        return from_nvml
    try:
        gpus = _query_gpus(run, notes)
        max_cuda = parse_max_cuda(run(["nvidia-smi"]))
    except ProbeError as exc:
        notes.append(f"NVIDIA: {exc}")
        return [], "", ""
    driver = gpus[0].driver_version if gpus else ""
    return _with_mig_from_list(gpus, run, notes), driver, max_cuda


_LIST_GPU = re.compile(r"^GPU (\d+): .*\(UUID: (GPU-[^)\s]+)\)")
_LIST_MIG = re.compile(r"^\s+(MIG \S+)\s+Device\s+\d+: \(UUID: (MIG-[^)\s]+)\)")


def parse_nvidia_smi_list(text: str) -> dict[int, tuple[MigDeviceFacts, ...]]:
    """The MIG instances under each GPU index in `nvidia-smi -L`, whose lines look like
    "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-...)" then "  MIG 1g.5gb Device 0: (UUID: MIG-...)".
    GPUs without MIG instances are left out."""
    found: dict[int, list[MigDeviceFacts]] = {}
    current = None
    for line in text.splitlines():
        if gpu := _LIST_GPU.match(line):
            current = int(gpu.group(1))
        elif (mig := _LIST_MIG.match(line)) and current is not None:
            found.setdefault(current, []).append(
                MigDeviceFacts(uuid=mig.group(2), name=mig.group(1), memory_mib=None)
            )
    return {index: tuple(devices) for index, devices in found.items()}


def _with_mig_from_list(gpus: list[GpuFacts], run: Runner, notes: list[str]) -> list[GpuFacts]:
    """Without NVML, the MIG instances come from `nvidia-smi -L`: a MIG-mode GPU must be pinned
    by an instance's UUID, or CUDA shows no device."""
    if not gpus:
        return gpus
    try:
        migs = parse_nvidia_smi_list(run(["nvidia-smi", "-L"]))
    except ProbeError as exc:
        notes.append(f"NVIDIA: MIG instances unknown: {exc}")
        return gpus
    return [
        replace(gpu, mig_mode=True, mig_devices=migs[gpu.index]) if gpu.index in migs else gpu
        for gpu in gpus
    ]


def _query_gpus(run: Runner, notes: list[str]) -> list[GpuFacts]:
    try:
        return parse_gpu_query(run(["nvidia-smi", *NVIDIA_SMI_QUERY]))
    except ProbeError as exc:
        if "compute_cap" not in str(exc):
            raise
    gpus = parse_gpu_query(
        run(["nvidia-smi", *LEGACY_NVIDIA_SMI_QUERY]), fields=LEGACY_GPU_QUERY_FIELDS
    )
    notes.append(
        "NVIDIA: this nvidia-smi (driver older than 510) reports no compute capability; "
        "the GPUs' architecture is unknown"
    )
    return gpus


def _probe_rocm(notes: list[str]) -> str:
    rocm_root = Path(os.environ.get("ROCM_PATH", "/opt/rocm"))
    version = _read(str(rocm_root / ".info" / "version")).strip()
    if not version:
        notes.append(f"ROCm: no {rocm_root}/.info/version")
    return version.split("-")[0]


def _probe_conda_build(run: Runner, conda_build_bin: str, notes: list[str]) -> str:
    try:
        return parse_conda_build_version(run([conda_build_bin, "--version"]))
    except ProbeError as exc:
        notes.append(f"conda-build: {exc}")
        return ""


def _probe_rattler(notes: list[str]) -> str:
    try:
        return importlib.metadata.version("py-rattler")
    except importlib.metadata.PackageNotFoundError:
        notes.append("py-rattler: not installed (no rattler runner)")
        return ""


def probe_host(*, conda_build_bin: str = "conda-build", run: Runner = run_command) -> HostFacts:
    """Everything the planner and the dispatcher need to know about this machine."""
    system = platform.system().lower()
    notes: list[str] = []
    os_name, os_version = _os_identity(system)
    gpus, driver, max_cuda = _probe_nvidia(run, notes)
    cpu_model = parse_cpuinfo_model(_read("/proc/cpuinfo")) if system == "linux" else ""
    return HostFacts(
        subdir=conda_subdir(platform.system(), platform.machine()),
        os_name=os_name,
        os_version=os_version,
        kernel=platform.release(),
        glibc_version=_glibc_version() if system == "linux" else "",
        cpu_model=cpu_model or platform.processor(),
        cpu_count=os.cpu_count() or 1,
        memory_bytes=_memory_bytes(system),
        gpus=gpus,
        driver_version=driver,
        max_cuda=max_cuda,
        rocm_version=_probe_rocm(notes) if system == "linux" else "",
        conda_build_version=_probe_conda_build(run, conda_build_bin, notes),
        rattler_version=_probe_rattler(notes),
        notes=notes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conda-build", default="conda-build", help="conda-build executable")
    parser.add_argument(
        "--raw-dir",
        type=Path,
        help="also save each command's raw output in this folder (for test fixtures)",
    )
    args = parser.parse_args(argv)
    run: Runner = run_command
    if args.raw_dir:
        args.raw_dir.mkdir(parents=True, exist_ok=True)

        def run(command: list[str]) -> str:
            name = "_".join(re.sub(r"[^A-Za-z0-9.-]+", "-", part).strip("-") for part in command)
            try:
                output = run_command(command)
            except ProbeError as exc:
                (args.raw_dir / f"{name[:120]}.error.txt").write_text(str(exc) + "\n")
                raise
            (args.raw_dir / f"{name[:120]}.txt").write_text(output)
            return output

    facts = probe_host(conda_build_bin=args.conda_build, run=run)
    json.dump(facts.to_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
