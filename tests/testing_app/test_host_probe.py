"""The host probe, checked against real nvidia-smi output captured on an H200 machine."""

import json
from pathlib import Path

import pytest

from testing_app.adapters import host_probe
from testing_app.adapters.host_probe import GpuFacts
from testing_app.adapters.host_probe import ProbeError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia_smi" / "h200"


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


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
    assert [g.__dict__ for g in facts.gpus] == recorded["gpus"]
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
