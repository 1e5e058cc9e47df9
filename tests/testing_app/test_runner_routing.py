"""Routing by package format: a package built by rattler-build (info/tests/tests.yaml, no
info/test/) never goes to conda-build unless the job names it; it is tested by the rattler
runner, which reads tests.yaml. Real package files, the real rattler runner as a subprocess."""

import asyncio
import importlib.metadata
import json
from pathlib import Path

import pytest
from rattler.index import index_fs

from packages_app.models import Channel
from packages_app.models import TorchRelease
from packages_app.services.sync import sync_channels
from testing_app.adapters.job_log import read_log_text
from testing_app.adapters.rattler_build_path import write_pin_channels
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Run
from testing_app.models import Variant
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import execute_job
from tests import factories
from tests.testing_app.conftest import FAKE_CONDA_BUILD
from tests.testing_app.packages import build_package
from tests.testing_app.packages import file_digests
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.planning_world import sample_world
from tests.testing_app.rattler_built import build_v1

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _unsandboxed(settings):
    """The runner's own behaviour, outside the test sandbox: the stand-in reads its scenario from
    the environment, which the sandbox's allow-list removes, and py-rattler-build runs tests only
    where isolation is off (docs/operators.md). The sandbox is covered by test_sandbox.py."""
    settings.TEST_ISOLATION = "none"


@pytest.fixture
def world(tmp_path, settings):
    settings.CONDA_PKGS_DIR = tmp_path / "pkgs"
    settings.CONDA_BUILD_CROOT_DIR = tmp_path / "croot"
    # conda-build is "installed" (the stand-in): without routing it would take the job.
    settings.CONDA_BUILD_BIN = str(FAKE_CONDA_BUILD)
    world = sample_world(tmp_path)
    sync_channels(channels=[world.channel], plan=False)
    return world


def _job(build, **fields) -> Job:
    fields.setdefault("torch_release", TorchRelease.objects.get(version="2.4.1"))
    (job,) = enqueue_jobs(
        run=Run.objects.create(trigger=Run.Trigger.MANUAL),
        jobs=[
            Job(
                kind=Job.Kind.TEST,
                build=build,
                variant=Variant.objects.get(name="cpu"),
                platform=Platform.objects.get(subdir=SUBDIR),
                extra_specs=["pytorch * cpu*"],
                timeout_s=300,
                **fields,
            )
        ],
    )
    return execute_job(job_id=job.pk)


def test_rattler_build_package_goes_to_the_rattler_runner_not_conda_build(world, settings):
    # sample-passes: built by rattler-build from its v1 recipe (demo_data/samples/recipes).
    job = _job(world.channel.builds.get(name="sample-passes"))
    assert (job.verdict, job.runner) == ("passed", "rattler-build"), job.error_message
    assert job.runner_version  # the job page shows the tool and its version
    log = read_log_text(Path(settings.LOG_DIR) / job.log_path)
    assert "package built by rattler-build (info/tests/tests.yaml)" in log
    # Its test runs check-torch.sh, one of its `files:`, from the test's cwd.
    assert "sample-passes runs with PyTorch 2.4.1" in log
    assert "etc/conda/test-files/sample-passes/0" in log
    assert job.command[1].endswith("rattler_runner.py")


def _v1_row(path):
    channel = Channel.objects.get_or_create(
        name="rattler-built-v1", url=path.parent.parent.as_uri(), role=Channel.Role.UPSTREAM
    )[0]
    return factories.BuildFactory(
        channel=channel,
        name="v1-torch-check",
        version="1.0.0",
        build_string=path.name.removesuffix(".conda").rsplit("-", 1)[1],
        subdir="noarch",
        filename=path.name,
        depends=["pytorch >=2.4,<2.6"],
        **file_digests(path),
    )


@pytest.mark.parametrize("isolation", ["none", "bwrap"])
def test_rattler_build_runs_the_tests_with_the_cells_pytorch_pinned_through_channels(
    world, tmp_path, settings, isolation
):
    pytest.importorskip("rattler_build")
    # Isolated (the default), py-rattler-build runs inside the sandbox, the whole runner with it.
    settings.TEST_ISOLATION = isolation
    # Built by the real builder from a v1 recipe; the sample channel has PyTorch 2.4.1 and 2.5.1
    # stand-ins, and rattler-build's own solve would take 2.5.1.
    path = build_v1("v1-torch-check", output_dir=tmp_path / "v1", channels=[world.sample.url])
    for subdir in ("noarch", SUBDIR):  # the package's own channel, indexed by rattler
        (tmp_path / "v1" / subdir).mkdir(exist_ok=True)
    asyncio.run(index_fs(tmp_path / "v1"))

    build = _v1_row(path)
    pinned_241 = _job(build, torch_release=TorchRelease.objects.get(version="2.4.1"))
    pinned_251 = _job(build, torch_release=TorchRelease.objects.get(version="2.5.1"))

    assert (pinned_241.verdict, pinned_241.runner) == ("passed", "rattler-build"), (
        pinned_241.log_tail
    )
    assert pinned_241.runner_version == importlib.metadata.version("py-rattler-build")
    log = read_log_text(Path(settings.LOG_DIR) / pinned_241.log_path)
    assert "torch 2.4.1, expected 2.4.1" in log  # files: in the test's cwd, the pin held
    assert "etc/conda/test-files/v1-torch-check/0" in log
    assert "from the env of a rattler-build test: v1-torch-check" in log
    assert "channels, strict priority: file://" in log
    assert {p["name"] for p in pinned_241.solved_packages} >= {"pytorch", "v1-torch-check"}
    assert pinned_251.verdict == "failed"
    assert "torch 2.5.1, expected 2.4.1" in read_log_text(
        Path(settings.LOG_DIR) / pinned_251.log_path
    )


def test_pin_channels_hold_exactly_the_pinned_records_and_point_at_their_files(tmp_path):
    rattler = pytest.importorskip("rattler")
    channel = tmp_path / "upstream"
    for version in ("2.4.1", "2.5.1"):
        build_package(channel, name="pytorch", version=version, build="cpu_0", subdir=SUBDIR)
    build_package(channel, name="helper", build="h0", subdir=SUBDIR)
    (channel / "noarch").mkdir()
    asyncio.run(index_fs(channel))
    records = asyncio.run(
        rattler.solve(
            sources=[channel.as_uri()],
            specs=[rattler.MatchSpec("pytorch ==2.4.1"), rattler.MatchSpec("helper")],
            platforms=[SUBDIR, "noarch"],
        )
    )

    (url,) = write_pin_channels(records, {"pytorch"}, tmp_path / "pins")

    pinned = json.loads((tmp_path / "pins" / "pin-0" / SUBDIR / "repodata.json").read_text())
    assert list(pinned["packages.conda"]) == ["pytorch-2.4.1-cpu_0.conda"]
    assert pinned["info"]["base_url"] == f"{channel.as_uri()}/{SUBDIR}/"
    assert url == (tmp_path / "pins" / "pin-0").as_uri()
    assert not list((tmp_path / "pins").rglob("*.conda"))  # nothing copied


def test_conda_build_package_still_goes_to_conda_build(world, settings):
    # sample-legacy-layout: conda-build's layout (info/test/run_test.sh).
    build = world.channel.builds.get(name="sample-legacy-layout")
    job = _job(build)
    assert job.runner == "conda-build"
