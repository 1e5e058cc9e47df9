"""The seed's central case end to end: a PyTorch build staged with torchvision and torchaudio
stand-ins is gated on its dependents. Staging plans every dependent's re-test with the PyTorch
build pinned, in the same run as the builds' own cells (real solver for the install checks; the
test jobs pass through a stand-in runner, since conda-build is not the subject here); the gate
is green for the set and red for any member alone (real solves against real channels)."""

import pytest

from packages_app.models import TorchRelease
from testing_app.gate.types import PASS
from testing_app.models import InstallabilityCheck
from testing_app.models import Job
from testing_app.models import PinnedCellResult
from testing_app.selectors.gate import BLOCKED
from testing_app.selectors.gate import PROMOTABLE
from testing_app.selectors.gate import get_build_gate
from testing_app.selectors.gate import get_set_gate
from testing_app.selectors.installability_plan import subject_key
from testing_app.selectors.promotions import suggest_set_for
from testing_app.services.planning import plan_new_builds
from testing_app.services.set_solves import sweep_installability
from tests.testing_app.planning_world import drain as drain_queues
from tests.testing_app.promotion_world import drain
from tests.testing_app.promotion_world import index_channel

pytest_plugins = ["tests.testing_app.promotion_fixtures"]

PY = ("python >=3.11,<3.12.0a0",)


@pytest.fixture
def release_day(world, settings, tmp_path):
    """PyTorch 2.6.0 registered (cpu, linux-64); the previous mv-vision / mv-audio (pinned to
    2.5) in the upstream channel; pytorch 2.6.0, mv-vision 0.21.0 (a range) and mv-audio 2.6.0
    (an exact pin) staged as real files."""
    from tests.testing_app.packages import build_package

    settings.DISTRO_JOB_RUNNER = "tests.testing_app.runners.stand_in_pass"
    settings.INSTALL_SETS = [["pytorch", "mv-vision", "mv-audio"]]
    world.release.python_versions = ["3.11"]
    world.release.save(update_fields=["python_versions"])
    release = TorchRelease.objects.create(version="2.6.0", supported=True, python_versions=["3.11"])
    release.variants.set([world.variant])
    release.platforms.set([world.platform])
    upstream_dir = tmp_path / "upstream"
    for name, version, depends in (
        ("mv-vision", "0.20.0", ("pytorch >=2.5,<2.6",)),
        ("mv-audio", "2.5.1", ("pytorch ==2.5.1",)),
    ):
        build_package(
            upstream_dir, name=name, version=version, build="0", subdir="linux-64", depends=depends
        )
    index_channel(upstream_dir)
    torch = world.stage("pytorch", version="2.6.0", build="cpu_py311_0", depends=PY, passed=False)
    vision = world.stage(
        "mv-vision", version="0.21.0", build="0", depends=("pytorch >=2.6,<2.7",), passed=False
    )
    audio = world.stage(
        "mv-audio",
        version="2.6.0",
        build="0",
        depends=("pytorch ==2.6.0",),
        passed=False,
        abi_coupled=True,  # like torchaudio: built against one exact PyTorch
    )
    index_channel(world.staging_dir)
    index_channel(world.target_dir)  # the target starts empty, but is a channel
    for build in (torch, vision, audio):
        build.package.latest_version = build.version
        build.package.save(update_fields=["latest_version"])
    return {"release": release, "torch": torch, "vision": vision, "audio": audio}


def _run_everything(django_capture_on_commit_callbacks) -> None:
    for _ in range(3):  # install checks, then the tests they enqueue
        queues = set(
            Job.objects.filter(status=Job.Status.QUEUED).values_list("queue_name", flat=True)
        )
        if not queues:
            return
        with django_capture_on_commit_callbacks(execute=True):
            drain_queues(*sorted(queues))


def test_pytorch_set_is_gated_on_its_dependents_green_together_red_alone(
    release_day, django_capture_on_commit_callbacks
):
    torch, vision, audio = release_day["torch"], release_day["vision"], release_day["audio"]
    with django_capture_on_commit_callbacks(execute=True):
        report = plan_new_builds(builds=[torch, vision, audio], detail="staging sync")

    jobs = Job.objects.filter(run=report.run)
    pinned = set(jobs.values_list("build__name", "pinned_build__name"))
    # One run: the builds' own cells and the dependents re-tested with pytorch 2.6.0 pinned.
    assert {("mv-vision", "pytorch"), ("mv-audio", "pytorch")} <= pinned
    assert ("pytorch", None) in pinned
    assert set(jobs.filter(pinned_build=torch).values_list("torch_release", flat=True)) == {
        release_day["release"].pk
    }

    _run_everything(django_capture_on_commit_callbacks)

    assert not Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).exists()
    retests = PinnedCellResult.objects.filter(pinned_build=torch)
    assert set(retests.values_list("build__name", "verdict")) == {
        ("mv-vision", "passed"),
        ("mv-audio", "passed"),
    }
    reverse = get_build_gate(torch.pk).policy("reverse_dependencies")
    assert reverse.status == PASS, reverse.reason
    assert reverse.reason == "2 re-tests, no regression"

    members = [torch, vision, audio]
    # The periodic sweep solves each candidate without the other staged builds, then with
    # them, and checks each candidate and the set it finds as a set.
    with django_capture_on_commit_callbacks(execute=True):
        sweep_installability()
    with django_capture_on_commit_callbacks(execute=True):
        drain("install")
    drain("install")
    # The set, from solves: mv-vision's range and mv-audio's pin are met only by the staged
    # pytorch. Every member's excuses page suggests it.
    for build in members:
        assert sorted(suggest_set_for(build)) == sorted(b.pk for b in members)
    assert not InstallabilityCheck.objects.filter(state__in=["queued", "running"]).exists()
    assert InstallabilityCheck.objects.filter(subject_key=subject_key(members)).exists()

    together = get_set_gate([b.pk for b in members])
    assert together.status == PROMOTABLE, together.summary
    for build in members:
        alone = get_build_gate(build.pk)
        assert alone.status == BLOCKED, (build.name, alone.summary)
        assert alone.policy("installability").status == "fail"
