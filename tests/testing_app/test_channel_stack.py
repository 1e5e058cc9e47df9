"""The one channel stack: every path that solves or tests reads the same channels in the same
order with the same priority mode, and the same cell gets the same answer on every path (real
lock-file channels: pytorch, nvidia, conda-forge)."""

from pathlib import Path

import pytest
from django.conf import settings

from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import TorchRelease
from packages_app.selectors.channel_stack import distribution_stack
from packages_app.selectors.channel_stack_types import ChannelStack
from packages_app.selectors.channel_stack_types import StackChannel
from packages_app.selectors.channel_stack_types import StackError
from packages_app.services.catalog import import_repodata
from packages_app.services.sync import register_channel
from testing_app.adapters.conda_build import CondaBuildTest
from testing_app.adapters.local_channel import ensure_channel
from testing_app.adapters.rattler_runner import stack_settings
from testing_app.adapters.solver import solve_environment
from testing_app.models import InstallabilityCheck
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Run
from testing_app.models import Variant
from testing_app.selectors.planning import channel_priority
from testing_app.services.conda_runner import channel_urls
from testing_app.services.conda_runner import child_environment
from testing_app.services.conda_runner import extra_deps
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.install_checks import cell_virtual_packages
from testing_app.services.install_checks import environment_specs
from testing_app.services.installability import new_check
from testing_app.services.installability import solve_check
from testing_app.services.installability import solver_channels
from tests.testing_app.planning_world import drain
from tests.testing_app.planning_world import seed_reference

LOCKFILE = settings.DEMO_DATA_DIR / "channels" / "lockfile"


def _channel(name, role="upstream"):
    return StackChannel(name=name, url=f"file:///channels/{name}", role=role)


def test_the_stack_orders_by_role_then_registration_and_keeps_one_priority_mode():
    stack = ChannelStack.of(
        [
            _channel("pytorch"),
            _channel("target", "target"),
            _channel("nvidia"),
            _channel("staging", "staging"),
            _channel("conda-forge"),
        ]  # fmt: skip
    )
    assert [c.name for c in stack.channels] == [
        "staging", "target", "pytorch", "nvidia", "conda-forge"
    ]  # fmt: skip
    assert stack.priority == "strict"
    assert [c.name for c in stack.without_staging().channels] == [
        "target", "pytorch", "nvidia", "conda-forge"
    ]  # fmt: skip
    own = "file:///channels/elsewhere"
    assert stack.urls(first=[own])[0] == own
    assert stack.urls(first=["file:///channels/nvidia/"]) == stack.urls()  # already in it
    assert stack.conda_environment() == {
        "CONDA_CHANNEL_PRIORITY": "strict",
        "CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY": "false",
    }


def test_the_stack_refuses_an_unknown_mode_and_a_channel_listed_twice():
    with pytest.raises(StackError, match="not one of"):
        ChannelStack((_channel("a"),), priority="sometimes")
    with pytest.raises(StackError, match="twice"):
        ChannelStack((_channel("a"), _channel("a")))


def test_pixis_conda_forge_only_strict_stack_can_be_expressed():
    pixi = ChannelStack((_channel("conda-forge"),), priority="strict")
    assert pixi.urls() == ["file:///channels/conda-forge"]
    assert pixi.rattler_priority().name == "Strict"


def test_the_rattler_runner_reads_the_stack_as_conda_does():
    assert stack_settings({}) == ("strict", False)
    flexible_with_pip = {
        "CONDA_CHANNEL_PRIORITY": "flexible",
        "CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY": "true",
    }
    assert stack_settings(flexible_with_pip) == ("flexible", True)
    assert stack_settings({"CONDA_CHANNEL_PRIORITY": "false"}) == ("disabled", False)
    with pytest.raises(ValueError, match="loose"):
        stack_settings({"CONDA_CHANNEL_PRIORITY": "loose"})


@pytest.fixture
def real_stack(db, settings, tmp_path):
    """The demo's channels (pytorch, nvidia, conda-forge, the snapshot) plus an empty target,
    registered in that order; the pytorch channel's linux-64 builds in the catalog."""
    settings.INSTALL_CHECK_VIRTUAL_PACKAGES = {}
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    seed_reference()
    ensure_channel(tmp_path / "target")
    register_channel(name="target", url=(tmp_path / "target").as_uri(), role="target")
    pytorch = Channel.objects.get(name="pytorch")
    import_repodata(channel=pytorch, source=str(LOCKFILE / "pytorch/linux-64/repodata.json"))
    return pytorch


def _job(build: Build, *, release: str, variant: str, python: str) -> Job:
    variant_row = Variant.objects.get(name=variant)
    (job,) = enqueue_jobs(
        run=Run.objects.create(trigger=Run.Trigger.MANUAL),
        jobs=[
            Job(
                kind=Job.Kind.INSTALL_CHECK,
                build=build,
                torch_release=TorchRelease.objects.get(version=release),
                variant=variant_row,
                platform=Platform.objects.get(subdir=build.subdir),
                python=python,
                extra_specs=variant_row.select_specs["pytorch"],
                timeout_s=120,
            )
        ],
    )
    return job


def test_every_path_reads_the_same_stack_in_the_same_order(real_stack, tmp_path):
    stack = distribution_stack()
    names = [c.name for c in stack.channels]
    assert names == ["target", "pytorch", "nvidia", "conda-forge", "pytorch-snapshot"]
    build = Build.objects.filter(channel=real_stack).first()
    job = _job(build, release="2.3.1", variant="cuda12.1", python="3.11")

    assert channel_urls(job) == stack.urls()  # install-check jobs and both runners
    assert solver_channels(Channel.objects.get(role="target")) == stack.urls()  # the gate
    assert channel_priority()[0] == stack.ids()  # the planner
    command = CondaBuildTest(
        binary="conda-build",
        package_path=Path("x.conda"),
        channels=channel_urls(job),
        extra_deps=[],
        croot=tmp_path,
    )
    argv = command.argv()
    assert [argv[i + 1] for i, part in enumerate(argv) if part == "-c"] == stack.urls()
    env = child_environment(tmp_path)
    assert env["CONDA_CHANNEL_PRIORITY"] == "strict"
    assert env["CONDA_ADD_PIP_AS_PYTHON_DEPENDENCY"] == "false"


@pytest.mark.parametrize(
    ("filename", "release", "variant"),
    [
        # Unsolvable on the gate path while it sorted channels by name (conda-forge first).
        ("pytorch-2.3.1-py3.11_cuda12.1_cudnn8.9.2_0.tar.bz2", "2.3.1", "cuda12.1"),
        ("torchvision-0.17.0-py311_cu121.tar.bz2", "2.2.0", "cuda12.1"),
        ("torchvision-0.18.1-py311_cu121.tar.bz2", "2.2.0", "cuda12.1"),  # really unsolvable
    ],
)
def test_the_same_cell_gets_the_same_answer_on_the_job_and_gate_paths(
    real_stack, filename, release, variant, django_capture_on_commit_callbacks
):
    build = Build.objects.get(channel=real_stack, filename=filename)
    with django_capture_on_commit_callbacks(execute=True):
        job = _job(build, release=release, variant=variant, python="3.11")
    drain("install")
    job.refresh_from_db()

    # The gate's check of the same environment: same specs, same virtual packages.
    specs = environment_specs(job, test_requirements=[])
    assert specs[1:] == extra_deps(job)
    check = new_check(
        kind=InstallabilityCheck.Kind.GATE,
        key=f"cell:{job.pk}",
        builds=[],
        target=Channel.objects.get(role="target"),
        subdir="linux-64",
        label="cell",
        specs=specs,
        channels=solver_channels(Channel.objects.get(role="target")),
        state=InstallabilityCheck.State.RUNNING,
    )
    check.virtual_packages = cell_virtual_packages(variant=job.variant, subdir="linux-64")
    check.save()
    solve_check(check, [], solver=solve_environment)

    assert check.state == "done", check.error_message
    assert check.ok == (job.verdict == "passed"), (job.verdict, check.explanation)
    if check.ok:
        on_job = {(p["name"], p["version"], p["build"]) for p in job.solved_packages}
        on_gate = {(p["name"], p["version"], p["build"]) for p in check.packages}
        assert on_job == on_gate
    expected = "uninstallable" if filename.startswith("torchvision-0.18.1") else "passed"
    assert job.verdict == expected


def test_the_stack_page_shows_channels_order_priority_and_last_sync(real_stack, client):
    Channel.objects.filter(name="nvidia").update(last_sync_error="HTTP 503")
    page = client.get("/channels/")

    assert page.status_code == 200
    text = page.content.decode()
    order = [text.index(f"<td>{name}</td>") for name in ("target", "pytorch", "nvidia")]
    assert order == sorted(order)
    assert "strict (the default; conda" in text
    assert "own default is flexible, pixi" in text
    assert "last sync failed" in text
    assert "<strong>Unreadable:</strong> <code>HTTP 503</code>" in text  # the reason, not a tooltip
    assert "never" in text


def test_a_cell_the_stack_holds_no_pytorch_for_is_planned_as_unknown_with_the_reason(real_stack):
    from testing_app.services.planning import plan_manual
    from tests.factories import BuildFactory

    staging = register_channel(name="staging", url="file:///nowhere/staging", role="staging")
    kornia = BuildFactory(
        channel=staging, name="kornia", version="0.8.0", build_string="pyhd8ed1ab_0",
        subdir="noarch", noarch="python", depends=["python >=3.9", "pytorch >=2.12,<2.13"],
    )  # fmt: skip
    release = TorchRelease.objects.get(version="2.12.1")

    report = plan_manual(builds=[kornia], releases=[release])

    assert report.jobs > 0
    assert report.unknown == report.jobs  # the stack holds no PyTorch 2.12.1 anywhere
    notes = set(Job.objects.filter(run=report.run).values_list("planning_note", flat=True))
    assert "applicability unknown: no PyTorch 2.12.1 record for linux-64 in the channel stack" in (
        notes
    )
