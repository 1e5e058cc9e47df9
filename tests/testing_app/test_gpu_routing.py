"""Architecture-aware routing: which GPUs a (PyTorch release, CUDA variant) build runs on,
which queues a GPU's worker serves, and the refusal of a job whose build has no code for the
GPU (handed back, never failed)."""

import csv
import json
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from packages_app.models import TorchRelease
from testing_app.adapters.host_probe import GpuFacts
from testing_app.adapters.host_probe import HostFacts
from testing_app.models import Job
from testing_app.models import Variant
from testing_app.models import WorkerProcess
from testing_app.planner import gpu_arch
from testing_app.planner.gpu_arch import build_support
from testing_app.planner.gpu_arch import parse_arch_list
from testing_app.planner.gpu_arch import variant_support
from testing_app.selectors.hosts import gpu_routing
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import Declined
from testing_app.services.execution import execute_job
from testing_app.services.hosts import host_queues
from testing_app.services.hosts import worker_capabilities
from testing_app.services.outcomes import JobOutcome
from testing_app.services.queues import Capabilities
from testing_app.services.queues import capability_queue_name
from testing_app.services.queues import queues_for_worker
from tests import factories
from tests.testing_app.conftest import cuda_variant

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RELEASES_CSV = (
    Path(__file__).resolve().parents[2]
    / "packages_app"
    / "demo_data"
    / "reference"
    / "torch_releases.csv"
)


def _supported(torch, cuda, capability, subdir="linux-64") -> bool:
    return build_support(
        torch_version=torch, cuda_version=cuda, subdir=subdir, capability=capability
    ).supported


# --- the table and the compatibility rule ------------------------------------------------


def test_every_table_row_parses_and_names_its_source():
    rows = gpu_arch.load_table()
    assert rows
    for row in rows:
        assert row.archs.source.startswith(
            (
                "pytorch/pytorch:.ci/manywheel/build_cuda.sh@",
                "pytorch/builder:manywheel/build_cuda.sh@",
            )
        )
        assert row.archs.cubins


def test_a_real_h200_ran_pytorch_2_11_cu130():
    # Independent oracle: tests/fixtures/gpu_pinning was captured on an H200 (compute
    # capability 9.0, see nvidia_smi/h200) where PyTorch 2.11.0+cu130 saw and used the GPU.
    pinning = json.loads((FIXTURES / "gpu_pinning" / "pinning.json").read_text())
    assert pinning["torch"] == "2.11.0+cu130"
    assert pinning["uuid"]["device_count"] == 1
    capability = (FIXTURES / "nvidia_smi" / "h200" / "query-gpu.csv").read_text().split(",")[4]
    assert _supported("2.11.0", "13.0", capability.strip())


@pytest.mark.parametrize(
    ("torch", "cuda", "capability", "expected"),
    [
        # CUDA 11.8 to 12.6 builds stop at sm_90: no Blackwell.
        ("2.8.0", "12.6", "9.0", True),
        ("2.8.0", "12.6", "10.0", False),
        ("2.8.0", "12.6", "12.0", False),
        ("2.6.0", "12.6", "12.0", False),  # no row: the toolkit cannot target it either
        ("2.5.1", "11.8", "10.0", False),
        # 2.0: the last builds with Kepler (sm_37); Hopper only in the CUDA 11.8 one.
        ("2.0.1", "11.8", "3.7", True),
        ("2.0.1", "11.7", "9.0", False),
        ("2.0.1", "11.8", "9.0", True),
        ("2.0.1", "11.8", "8.9", True),
        # 2.1 to 2.5: Kepler (sm_37) only in the CUDA 11.8 builds, Hopper in every one, no PTX.
        ("2.1.2", "11.8", "3.7", True),
        ("2.1.2", "12.1", "3.7", False),
        ("2.3.1", "12.1", "5.2", True),  # Maxwell 5.2 runs the sm_50 cubin
        ("2.3.1", "12.1", "8.9", True),  # Ada runs the sm_86 cubin
        ("2.4.1", "12.4", "9.0", True),
        ("2.4.1", "12.4", "3.5", False),  # the toolkit could target it; the list does not
        ("2.5.1", "12.4", "10.0", False),
        ("2.5.1", "11.8", "12.0", False),
        # From 2.8 the CUDA 12.8+ builds drop sm_50 and sm_60 but keep sm_70.
        ("2.8.0", "12.8", "5.0", False),
        ("2.8.0", "12.8", "6.1", False),
        ("2.8.0", "12.8", "7.0", True),
        ("2.8.0", "12.8", "12.0", True),
        ("2.8.0", "12.6", "6.1", True),  # sm_60 cubin runs on a 6.1 GPU (same major)
        # Later, CUDA 13.0 drops sm_70.
        ("2.9.0", "13.0", "7.0", False),
        ("2.9.0", "13.0", "7.5", True),
        ("2.9.0", "12.8", "8.9", True),  # Ada runs the sm_86 cubin
        ("2.9.0", "12.9", "12.1", True),  # compute_120 PTX is compiled for 12.1
        ("2.9.0", "12.8", "12.1", True),  # sm_120 cubin, same major
        ("2.9.0", "12.8", "11.0", False),  # x86 12.8 has no sm_110
        ("2.13.0", "13.2", "5.0", False),  # no row: CUDA 13 cannot target Maxwell
        ("2.13.0", "13.2", "9.0", True),
    ],
)
def test_build_support(torch, cuda, capability, expected):
    assert _supported(torch, cuda, capability) is expected


def test_verified_rows_cover_exactly_the_cuda_builds_each_release_shipped():
    # Independent oracle: the release matrix (pytorch/test-infra's generate_binary_build_matrix
    # at each release, packages_app/demo_data/reference/torch_releases.csv) lists the CUDA
    # versions each release shipped; the rows read from each release branch's build script must
    # name those versions, no more and no fewer.
    shipped: dict[tuple[int, int], set[tuple[int, int]]] = {}
    with RELEASES_CSV.open() as handle:
        for record in csv.DictReader(handle):
            minor = gpu_arch._major_minor(record["version"])
            cudas = {
                gpu_arch._major_minor(v.removeprefix("cuda"))
                for v in record["variants"].split(";")
                if v.startswith("cuda")
            }
            shipped.setdefault(minor, set()).update(cudas)
    rows = [r for r in gpu_arch.load_table() if r.subdir == "linux-64" and r.torch_to]
    for release in sorted({r.torch_from for r in rows}):
        assert all(r.torch_from == r.torch_to for r in rows if r.torch_from == release)
        table = {r.cuda for r in rows if r.torch_from == release}
        assert table == shipped[release], release


def test_aarch64_builds_have_their_own_lists():
    assert _supported("2.9.0", "13.0", "11.0", subdir="linux-aarch64")  # Thor
    assert not _supported("2.9.0", "12.8", "7.5", subdir="linux-aarch64")  # no sm_75 on ARM
    assert not _supported("2.9.0", "13.0", "11.0", subdir="linux-64")


def test_unknown_architecture_is_not_refused():
    support = build_support(
        torch_version="2.9.0", cuda_version="12.6", subdir="linux-64", capability=""
    )
    assert support.supported
    assert "unknown" in support.reason


def test_arch_list_syntax_and_errors():
    archs = parse_arch_list("7.0;7.5;12.0+PTX")
    assert archs.cubins == ((7, 0), (7, 5), (12, 0))
    assert archs.ptx == ((12, 0),)
    assert archs.describe() == "sm_70, sm_75, sm_120, compute_120 (PTX)"
    with pytest.raises(gpu_arch.ArchTableError):
        parse_arch_list("7.0;sm_80")
    with pytest.raises(gpu_arch.ArchTableError, match="line 2"):
        gpu_arch.parse_table(
            "torch_from,torch_to,cuda,subdir,arch_list,source\n2.x,,12.6,l,7.0,s\n"
        )


def test_names_and_families():
    assert (gpu_arch.sm_name("9.0"), gpu_arch.family_name("9.0")) == ("sm_90", "Hopper")
    assert (gpu_arch.sm_name("12.0"), gpu_arch.family_name("12.0")) == ("sm_120", "Blackwell")
    assert gpu_arch.family_name("8.9") == "Ada Lovelace"
    assert gpu_arch.family_name("7.5") == "Turing"
    assert gpu_arch.sm_name("") == ""
    assert gpu_arch.family_name("[N/A]") == ""


def test_variant_is_served_when_any_release_runs_on_the_gpu():
    # A Pascal GPU: 2.9's cu128 build has no sm_60, but if 2.7 (no verified row: the toolkit's
    # limits) is offered for cuda12.8 too, the queue is served and 2.9's jobs are refused.
    only_new = variant_support(
        cuda_version="12.8", subdir="linux-64", capability="6.1", torch_versions=["2.9.0", "2.10.0"]
    )
    with_old = variant_support(
        cuda_version="12.8", subdir="linux-64", capability="6.1", torch_versions=["2.7.0", "2.9.0"]
    )
    assert not only_new.supported
    assert "sm_70" in only_new.reason
    assert with_old.supported


# --- queues ---------------------------------------------------------------------------------


@pytest.fixture
def cuda_world(db):
    variants = {v: cuda_variant(v) for v in ("12.6", "12.8", "13.0")}
    for version in ("2.8.0", "2.9.0"):
        release = factories.TorchReleaseFactory(version=version)
        release.variants.set([variants["12.6"], variants["12.8"]])
    factories.TorchReleaseFactory(version="2.10.0").variants.set(variants.values())
    return variants


def _queues(capability: str, cuda: str = "13.0") -> list[str]:
    return queues_for_worker(
        capabilities=Capabilities(
            subdir="linux-64", max_cuda=cuda, compute_capabilities=(capability,)
        ),
        variants=Variant.objects.all(),
    )


@pytest.mark.django_db
def test_blackwell_worker_does_not_serve_cuda_12_6(cuda_world):
    assert _queues("12.0") == ["test.linux-64.cuda13.0", "test.linux-64.cuda12.8"]
    assert _queues("9.0") == [
        "test.linux-64.cuda13.0",
        "test.linux-64.cuda12.8",
        "test.linux-64.cuda12.6",
    ]


@pytest.mark.django_db
def test_volta_worker_serves_what_still_has_sm_70(cuda_world):
    assert _queues("7.0") == ["test.linux-64.cuda12.8", "test.linux-64.cuda12.6"]
    assert _queues("6.0") == ["test.linux-64.cuda12.6"]
    assert _queues("") == [  # architecture unknown (pre-510 nvidia-smi): driver decides
        "test.linux-64.cuda13.0",
        "test.linux-64.cuda12.8",
        "test.linux-64.cuda12.6",
    ]


# --- refusal at start ---------------------------------------------------------------------


def _gpu_host(platform, capability: str, name: str):
    host = factories.HostFactory(
        platform=platform,
        name=name,
        max_cuda="13.0",
        gpus=[{"index": 0, "name": "GPU", "memory_mib": 1, "compute_capability": capability}],
    )
    return WorkerProcess.objects.create(
        host=host,
        name=f"{name}.gpu0",
        queues=[],
        gpu_index=0,
        last_heartbeat_at=timezone.now(),
    )


class _Runner:
    def __init__(self):
        self.calls = []

    def __call__(self, *, job, worker, on_progress):
        self.calls.append(worker.name)
        return JobOutcome(verdict="passed")


@pytest.mark.django_db
def test_job_on_an_unsupported_gpu_is_handed_back_and_runs_on_a_supported_one(cuda_world):
    platform = factories.PlatformFactory(subdir="linux-64")
    blackwell = _gpu_host(platform, "12.0", "blackwell")
    hopper = _gpu_host(platform, "9.0", "hopper")
    release = TorchRelease.objects.get(version="2.8.0")
    (job,) = enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[
            Job(
                kind="test",
                build=factories.BuildFactory(),
                platform=platform,
                variant=cuda_world["12.6"],
                torch_release=release,
            )
        ],
    )
    runner = _Runner()
    refused = execute_job(job_id=job.pk, worker_name=blackwell.name, runner=runner)
    assert isinstance(refused, Declined)
    assert "sm_120" in refused.reason
    assert "sm_90" in refused.reason
    assert refused.delay_s > 0
    job.refresh_from_db()
    assert (job.status, job.verdict) == ("queued", "")  # refused, not failed
    done = execute_job(job_id=job.pk, worker_name=hopper.name, runner=runner)
    assert (done.status, done.verdict, done.host_id) == ("finished", "passed", hopper.host_id)
    assert runner.calls == ["hopper.gpu0"]


# --- /hosts/ --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_hosts_page_shows_architecture_and_refused_queues(client, cuda_world):
    platform = factories.PlatformFactory(subdir="linux-64")
    host = factories.HostFactory(
        platform=platform,
        name="bw-host",
        max_cuda="12.8",
        gpus=[
            {
                "index": 0,
                "name": "NVIDIA RTX PRO 6000",
                "memory_mib": 97887,
                "compute_capability": "12.0",
            }
        ],
    )
    (gpu,) = gpu_routing([host])[host.pk]
    refused = {r.queue: r.reason for r in gpu.refused}
    assert set(refused) == {"test.linux-64.cuda12.6", "test.linux-64.cuda13.0"}
    assert "driver supports CUDA 12.8" in refused["test.linux-64.cuda13.0"]
    assert "sm_120" in refused["test.linux-64.cuda12.6"]
    assert capability_queue_name(subdir="linux-64", variant_name="cuda12.6") in refused
    page = client.get(reverse("testing:host-list")).content.decode()
    assert "sm_120 · Blackwell" in page
    assert "test.linux-64.cuda12.6</code>: sm_120:" in page


def _facts(*capabilities: str) -> HostFacts:
    gpus = [
        GpuFacts(
            index=i,
            name=f"GPU {i}",
            uuid=f"GPU-{i}",
            memory_mib=1,
            compute_capability=cap,
            driver_version="580.159.04",
        )
        for i, cap in enumerate(capabilities)
    ]
    return HostFacts(
        subdir="linux-64",
        os_name="ubuntu",
        os_version="24.04",
        kernel="6",
        glibc_version="2.39",
        cpu_model="cpu",
        cpu_count=1,
        memory_bytes=None,
        gpus=gpus,
        max_cuda="13.0",
    )


@pytest.mark.django_db
def test_host_queues_are_the_union_of_its_gpu_workers(cuda_world):
    facts = _facts("9.0", "12.0")
    variants = list(Variant.objects.all())
    blackwell = queues_for_worker(
        capabilities=worker_capabilities(facts, facts.gpus[1]), variants=variants
    )
    assert "test.linux-64.cuda12.6" not in blackwell
    union = host_queues(facts, variants, ["install"])
    assert "test.linux-64.cuda12.6" in union  # GPU 0 serves it
    assert union[-1] == "install"
