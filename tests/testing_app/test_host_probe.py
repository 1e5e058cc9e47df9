"""The host probe, checked against real nvidia-smi output captured on an H200 machine."""

import json
import sys
import types
from pathlib import Path

import pytest

from testing_app.adapters import host_probe
from testing_app.adapters.host_probe import GpuFacts
from testing_app.adapters.host_probe import ProbeError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia_smi" / "h200"


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.fixture(autouse=True)
def _no_real_nvml(monkeypatch):
    """The nvidia-smi tests must not read this machine's GPUs through a real NVML: a None
    entry in sys.modules makes `import pynvml` raise ImportError. NVML tests replace it."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


def test_parse_gpu_query_reads_real_h200_output():
    assert host_probe.parse_gpu_query(_fixture("query-gpu.csv")) == [
        GpuFacts(
            index=0,
            name="NVIDIA H200",
            uuid="GPU-00000000-0000-0000-0000-000000000000",
            memory_mib=143771,
            compute_capability="9.0",
            driver_version="580.159.04",
        )
    ]


@pytest.mark.parametrize("name", ["nvidia-smi.txt", "nvidia-smi-q.txt"])
def test_parse_max_cuda_reads_banner_and_query_output(name):
    assert host_probe.parse_max_cuda(_fixture(name)) == "13.0"


def test_parse_gpu_query_handles_several_gpus_and_missing_fields():
    text = (
        "0, NVIDIA A100-SXM4-80GB, GPU-a, 81920, 8.0, 535.104.05\n"
        "1, Tesla V100-SXM2-16GB, GPU-b, [N/A], [N/A], 535.104.05\n"
    )
    gpus = host_probe.parse_gpu_query(text)
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[1].memory_mib is None
    assert gpus[1].compute_capability == ""


@pytest.mark.parametrize(
    "text", ["garbage", "0, only, three", "x, NVIDIA H200, GPU-a, 1, 9.0, 580.1"]
)
def test_parse_gpu_query_rejects_unexpected_lines(text):
    with pytest.raises(ProbeError):
        host_probe.parse_gpu_query(text)


def test_parse_max_cuda_without_banner_is_an_error():
    with pytest.raises(ProbeError, match="CUDA Version"):
        host_probe.parse_max_cuda("No devices were found")


@pytest.mark.parametrize(
    ("system", "machine", "subdir"),
    [
        ("Linux", "x86_64", "linux-64"),
        ("Linux", "aarch64", "linux-aarch64"),
        ("Darwin", "arm64", "osx-arm64"),
        ("Darwin", "x86_64", "osx-64"),
        ("Windows", "AMD64", "win-64"),
    ],
)
def test_conda_subdir_maps_platforms(system, machine, subdir):
    assert host_probe.conda_subdir(system, machine) == subdir


def test_conda_subdir_of_unknown_platform_is_an_error():
    with pytest.raises(ProbeError):
        host_probe.conda_subdir("Plan9", "mips")


def test_parse_conda_build_version():
    assert host_probe.parse_conda_build_version("conda-build 24.9.0\n") == "24.9.0"
    with pytest.raises(ProbeError):
        host_probe.parse_conda_build_version("command not found")


def test_parse_os_release_and_meminfo():
    os_name, version = host_probe.parse_os_release(
        'PRETTY_NAME="Ubuntu 24.04.3 LTS"\nID=ubuntu\nVERSION_ID="24.04"\n'
    )
    assert (os_name, version) == ("ubuntu", "Ubuntu 24.04.3 LTS")
    assert host_probe.parse_meminfo("MemTotal:       131980996 kB\n") == 131980996 * 1024


def test_probe_host_with_real_outputs_matches_the_probe_run_on_that_machine():
    outputs = {
        "nvidia-smi": _fixture("nvidia-smi.txt"),
        "nvidia-smi --query-gpu": _fixture("query-gpu.csv"),
    }

    def run(argv):
        if argv[0] == "nvidia-smi":
            return outputs["nvidia-smi --query-gpu" if len(argv) > 1 else "nvidia-smi"]
        raise ProbeError(f"{argv[0]}: not found")

    facts = host_probe.probe_host(run=run)
    recorded = json.loads(_fixture("probe.json"))
    # The recorded probe predates the MIG fields; every field it has must be the same.
    assert [{k: g.__dict__[k] for k in recorded["gpus"][0]} for g in facts.gpus] == recorded["gpus"]
    assert facts.gpus[0].mig_mode is False
    assert (facts.driver_version, facts.max_cuda) == ("580.159.04", "13.0")
    assert recorded["max_cuda"] == "13.0"
    assert "conda-build: conda-build: not found" in facts.notes


def test_probe_host_with_a_pre_510_driver_reads_the_gpus_without_compute_cap():
    # Drivers older than 510 reject the whole query because of the compute_cap field; the
    # host must not look GPU-less for that (the probe then retries without the field).
    legacy_rows = (
        "0, Tesla V100-SXM2-32GB, GPU-11111111-2222-3333-4444-555555555555, 32510, 470.256.02"
    )
    calls = []

    def run(argv):
        calls.append(argv)
        if argv[0] != "nvidia-smi":
            raise ProbeError(f"{argv[0]}: not found")
        if len(argv) == 1:
            return _fixture("nvidia-smi.txt").replace("CUDA Version: 13.0", "CUDA Version: 11.4")
        if "compute_cap" in argv[1]:
            raise ProbeError(
                'nvidia-smi --query-gpu=... exited 2: Field "compute_cap" is not a valid field to '
                "query. Please run nvidia-smi --help-query-gpu"
            )
        return legacy_rows + "\n"

    facts = host_probe.probe_host(run=run)

    assert facts.gpus == [
        GpuFacts(
            index=0,
            name="Tesla V100-SXM2-32GB",
            uuid="GPU-11111111-2222-3333-4444-555555555555",
            memory_mib=32510,
            compute_capability="",
            driver_version="470.256.02",
        )
    ]
    assert (facts.driver_version, facts.max_cuda) == ("470.256.02", "11.4")
    assert any("older than 510" in note for note in facts.notes)
    assert [argv[1] for argv in calls if argv[0] == "nvidia-smi" and len(argv) > 1] == [
        host_probe.NVIDIA_SMI_QUERY[0],
        host_probe.LEGACY_NVIDIA_SMI_QUERY[0],
        "-L",  # then the MIG instances, if any
    ]


def test_probe_host_without_nvidia_smi_notes_why():
    def run(argv):
        raise ProbeError(f"{argv[0]}: not found")

    facts = host_probe.probe_host(run=run)
    assert facts.gpus == []
    assert facts.max_cuda == ""
    assert "NVIDIA: nvidia-smi: not found" in facts.notes
    assert facts.cpu_count >= 1


def test_probe_module_runs_standalone_and_prints_json(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "testing_app.adapters.host_probe", "--raw-dir", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    facts = json.loads(result.stdout)
    assert facts["subdir"] in host_probe.SUBDIRS.values()
    assert any(tmp_path.iterdir())


class _NVMLError(Exception):
    """pynvml.NVMLError: carries the NVML return code as `value`."""

    def __init__(self, value):
        super().__init__(f"NVML error {value}")
        self.value = value


class _Memory:
    def __init__(self, total):
        self.total = total


def fake_pynvml(gpus, *, cuda_driver=13000, driver="580.159.04", init_error=None):
    """A stand-in for nvidia-ml-py's pynvml with the real names and return types (checked
    against pynvml.py: names are str, capability a (major, minor) tuple, MIG mode a
    [current, pending] list, memory an object with .total in bytes, empty MIG slots raise
    NVMLError(NVML_ERROR_NOT_FOUND)). `gpus`: dicts with name, uuid, cc, mib, optional mig
    (a list of slots, None for an empty one) or mig_unsupported."""
    module = types.ModuleType("pynvml")
    module.NVMLError = _NVMLError
    module.NVML_DEVICE_MIG_ENABLE = 1
    module.NVML_ERROR_NOT_SUPPORTED = 3
    module.NVML_ERROR_NOT_FOUND = 6
    state = {"initialised": False, "shutdown": 0}

    def init():
        if init_error is not None:
            raise _NVMLError(init_error)
        state["initialised"] = True

    def handle_of(index):
        assert state["initialised"], "NVML used before nvmlInit"
        return ("gpu", index)

    def info(handle):
        kind, index, *slot = handle
        gpu = gpus[index]
        return gpu if kind == "gpu" else gpu["mig"][slot[0]]

    def mig_mode(handle):
        gpu = info(handle)
        if gpu.get("mig_unsupported"):
            raise _NVMLError(3)
        return [1 if gpu.get("mig") is not None else 0, 0]

    def mig_handle(handle, slot):
        if info(handle)["mig"][slot] is None:
            raise _NVMLError(6)
        return ("mig", handle[1], slot)

    module.nvmlInit = init
    module.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)
    module.nvmlSystemGetDriverVersion = lambda: driver
    module.nvmlSystemGetCudaDriverVersion_v2 = lambda: cuda_driver
    module.nvmlDeviceGetCount = lambda: len(gpus)
    module.nvmlDeviceGetHandleByIndex = handle_of
    module.nvmlDeviceGetName = lambda h: info(h)["name"]
    module.nvmlDeviceGetUUID = lambda h: info(h)["uuid"]
    module.nvmlDeviceGetMemoryInfo = lambda h: _Memory(info(h)["mib"] * 1024 * 1024)
    module.nvmlDeviceGetCudaComputeCapability = lambda h: tuple(info(h)["cc"])
    module.nvmlDeviceGetMigMode = mig_mode
    module.nvmlDeviceGetMaxMigDeviceCount = lambda h: len(info(h).get("mig") or [])
    module.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle
    module.state = state
    return module


def _no_nvidia_smi(argv):
    raise ProbeError(f"{argv[0]}: not found")


def test_probe_reads_gpus_driver_and_cuda_version_through_nvml(monkeypatch):
    nvml = fake_pynvml(
        [
            {"name": "NVIDIA H200", "uuid": "GPU-aaaa", "cc": (9, 0), "mib": 143771},
            {
                "name": "NVIDIA RTX PRO 6000",
                "uuid": "GPU-bbbb",
                "cc": (12, 0),
                "mib": 97887,
                "mig_unsupported": True,
            },
        ],
        cuda_driver=12080,
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    facts = host_probe.probe_host(run=_no_nvidia_smi)
    assert facts.max_cuda == "12.8"
    assert facts.driver_version == "580.159.04"
    assert [(g.index, g.name, g.compute_capability, g.memory_mib) for g in facts.gpus] == [
        (0, "NVIDIA H200", "9.0", 143771),
        (1, "NVIDIA RTX PRO 6000", "12.0", 97887),
    ]
    assert [g.pin_id for g in facts.gpus] == ["GPU-aaaa", "GPU-bbbb"]
    assert not any(n.startswith("NVIDIA") for n in facts.notes)  # nvidia-smi was not needed
    assert nvml.state["shutdown"] == 1


def test_probe_lists_mig_instances_and_pins_the_first_by_its_mig_uuid(monkeypatch):
    mig = [
        {"name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "uuid": "MIG-1111", "mib": 40192},
        None,  # an empty slot: NVML answers NOT_FOUND
        {"name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "uuid": "MIG-2222", "mib": 40192},
    ]
    nvml = fake_pynvml(
        [
            {
                "name": "NVIDIA H100 80GB HBM3",
                "uuid": "GPU-cccc",
                "cc": (9, 0),
                "mib": 81559,
                "mig": mig,
            }
        ]
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    (gpu,) = host_probe.probe_host(run=_no_nvidia_smi).gpus
    assert gpu.mig_mode is True
    assert [(m.uuid, m.memory_mib) for m in gpu.mig_devices] == [
        ("MIG-1111", 40192),
        ("MIG-2222", 40192),
    ]
    # CUDA shows no device for a MIG-mode GPU's own UUID: the worker pins a MIG instance.
    assert gpu.pin_id == "MIG-1111"
    assert (
        host_probe.HostFacts(
            subdir="linux-64",
            os_name="",
            os_version="",
            kernel="",
            glibc_version="",
            cpu_model="",
            cpu_count=1,
            memory_bytes=None,
            gpus=[gpu],
        ).to_dict()["gpus"][0]["mig_devices"][1]["uuid"]
        == "MIG-2222"
    )


def test_probe_falls_back_to_nvidia_smi_when_nvml_cannot_start(monkeypatch):
    # NVML_ERROR_LIBRARY_NOT_FOUND (12): nvidia-ml-py installed, no libnvidia-ml on the host.
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([], init_error=12))

    def run(argv):
        if argv[0] != "nvidia-smi":
            raise ProbeError(f"{argv[0]}: not found")
        return _fixture("query-gpu.csv") if len(argv) > 1 else _fixture("nvidia-smi.txt")

    facts = host_probe.probe_host(run=run)
    assert [(g.name, g.compute_capability) for g in facts.gpus] == [("NVIDIA H200", "9.0")]
    assert facts.max_cuda == "13.0"
    assert "NVML: NVML error 12; using nvidia-smi" in facts.notes


def test_probe_without_nvidia_ml_py_uses_nvidia_smi_and_says_so():
    facts = host_probe.probe_host(run=_no_nvidia_smi)
    assert facts.gpus == []
    assert "NVML: nvidia-ml-py is not installed; using nvidia-smi" in facts.notes


def test_cuda_version_text_reads_nvml_integers():
    assert host_probe.cuda_version_text(13000) == "13.0"
    assert host_probe.cuda_version_text(12040) == "12.4"
    assert host_probe.cuda_version_text(11080) == "11.8"


def test_the_stand_in_nvml_uses_the_real_bindings_names(monkeypatch):
    monkeypatch.delitem(sys.modules, "pynvml")  # undo _no_real_nvml: only its names are read
    real = pytest.importorskip("pynvml", reason="nvidia-ml-py not installed")
    fake = fake_pynvml([])
    for name in dir(fake):
        if name.startswith(("nvml", "NVML")):
            assert hasattr(real, name), name
    assert real.NVML_DEVICE_MIG_ENABLE == fake.NVML_DEVICE_MIG_ENABLE
    assert real.NVML_ERROR_NOT_FOUND == fake.NVML_ERROR_NOT_FOUND
    assert issubclass(real.NVMLError, Exception)


def test_nvml_can_be_turned_off_for_nvidia_smi(monkeypatch):
    nvml = fake_pynvml([{"name": "NVIDIA H200", "uuid": "GPU-aaaa", "cc": (9, 0), "mib": 1}])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setenv(host_probe.NVML_ENV, "0")
    facts = host_probe.probe_host(run=_no_nvidia_smi)
    assert facts.gpus == []
    assert nvml.state["initialised"] is False
    assert "NVML: not used (DISTRO_PROBE_NVML=0); using nvidia-smi" in facts.notes


def test_nvidia_smi_list_of_the_real_h200_has_no_mig_instances():
    text = (FIXTURES.parent.parent / "gpu_pinning" / "nvidia-smi-L.txt").read_text()
    assert host_probe.parse_nvidia_smi_list(text) == {}


def test_without_nvml_mig_instances_come_from_nvidia_smi_list():
    # `nvidia-smi -L` on a MIG-mode GPU: the GPU line as in the real capture, then one line per
    # MIG instance (UUIDs made up, of the real shape).
    listing = (
        "GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)\n"
        "  MIG 3g.71gb     Device  0: (UUID: MIG-11111111-2222-3333-4444-555555555555)\n"
        "  MIG 3g.71gb     Device  1: (UUID: MIG-66666666-7777-8888-9999-000000000000)\n"
    )

    def run(argv):
        if argv[0] != "nvidia-smi":
            raise ProbeError(f"{argv[0]}: not found")
        if argv[1:] == ["-L"]:
            return listing
        return _fixture("query-gpu.csv") if len(argv) > 1 else _fixture("nvidia-smi.txt")

    (gpu,) = host_probe.probe_host(run=run).gpus
    assert gpu.mig_mode is True
    assert [m.name for m in gpu.mig_devices] == ["MIG 3g.71gb", "MIG 3g.71gb"]
    assert gpu.pin_id == "MIG-11111111-2222-3333-4444-555555555555"
