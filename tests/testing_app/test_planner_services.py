"""Planning services on the database: one bulk write per plan, install checks through the one
enqueue path, decided cells left alone, release waves, the plan_run command."""

import io
from datetime import date

import pytest
from django.core.management import CommandError
from django.core.management import call_command

from packages_app.models import Build
from packages_app.models import TorchRelease
from packages_app.services.sync import sync_channels
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Run
from testing_app.models import Variant
from testing_app.planner.types import PlannedCell
from testing_app.services.dispatch import rq_queue
from testing_app.services.planning import _write_not_applicable_orm
from testing_app.services.planning import plan_full_run
from testing_app.services.planning import plan_manual
from testing_app.services.planning import plan_new_builds
from testing_app.services.planning import write_not_applicable
from testing_app.services.releases import ReleaseInput
from testing_app.services.releases import register_torch_release
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.planning_world import sample_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(tmp_path, django_capture_on_commit_callbacks):
    world = sample_world(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        sync_channels(channels=[world.channel])
    return world


def _cell(name: str, version: str, variant: str) -> CellResult:
    return CellResult.objects.get(
        build__name=name,
        build__version__in=["1.0.0", version],
        torch_release__version=version,
        variant__name=variant,
        build__channel__name="samples",
    )


def test_sync_of_staged_samples_plans_install_checks_and_not_applicable_cells(world):
    run = Run.objects.get()
    assert (run.trigger, run.state) == ("new_build", "running")
    checks = Job.objects.filter(run=run, pinned_build__isnull=True)
    assert checks.count() == 12  # 6 names x PyTorch 2.4.1 and 2.5.1 (stand-ins: their own one)
    # Each PyTorch stand-in is gated on its dependents: the samples re-tested with it pinned,
    # in its own release's cells only.
    retests = Job.objects.filter(run=run, pinned_build__isnull=False)
    assert sorted(
        retests.values_list("build__name", "pinned_build__version", "torch_release__version")
    ) == [
        (name, version, version)
        for name in (
            "sample-fails-on-torch-2-5",
            "sample-legacy-layout",
            "sample-no-tests",
            "sample-passes",
            "sample-unsatisfiable",
        )
        for version in ("2.4.1", "2.5.1")
    ]
    assert set(checks.values_list("kind", "queue_name", "variant__name", "platform__subdir")) == {
        ("install_check", "install", "cpu", SUBDIR)
    }
    assert rq_queue("install").count == 22  # pushed after the commit
    assert {tuple(specs) for specs in checks.values_list("extra_specs", flat=True)} == {
        ("pytorch * cpu*",)
    }
    cuda = _cell("sample-passes", "2.5.1", "cuda12.4")
    assert cuda.verdict == "not_applicable"
    assert cuda.detail == f"PyTorch 2.5.1 in the channel stack has no cuda12.4 build for {SUBDIR}"
    assert _cell("sample-passes", "2.5.1", "cpu").verdict == "queued"
    old = CellResult.objects.filter(build__name="sample-passes", torch_release__version="2.0.1")
    assert set(old.values_list("verdict", "detail")) == {
        ("not_applicable", "requires pytorch >=2.4,<2.6")
    }


def test_planning_again_skips_decided_cells_unless_forced(world):
    builds = list(Build.objects.filter(channel=world.channel, name="sample-passes"))

    again = plan_new_builds(builds=builds, detail="again")
    forced = plan_new_builds(builds=builds, detail="forced", force=True)

    assert (again.jobs, again.not_applicable) == (0, 0)
    assert again.already_decided == again.candidates > 0
    assert again.run.state == Run.State.FINISHED  # nothing to do: finished at once
    assert forced.jobs == 2


def test_write_not_applicable_keeps_cells_in_flight_and_moves_verdicts(world):
    queued = _cell("sample-passes", "2.5.1", "cpu")
    passed = _cell("sample-passes", "2.4.1", "cpu")
    CellResult.objects.filter(pk=passed.pk).update(verdict="passed", latest_job=None)
    cells = [
        PlannedCell(
            c.build_id, c.torch_release_id, c.variant_id, c.platform_id, c.python, None, (), "why"
        )
        for c in (queued, passed)
    ]

    write_not_applicable(cells)

    queued.refresh_from_db()
    passed.refresh_from_db()
    assert queued.verdict == "queued"
    assert (passed.verdict, passed.previous_verdict, passed.detail) == (
        "not_applicable",
        "passed",
        "why",
    )


def test_orm_and_postgresql_paths_write_the_same_cells(world):
    build = Build.objects.get(channel=world.channel, name="sample-fails-on-torch-2-5")
    release = TorchRelease.objects.get(version="2.5.1")
    platform = Platform.objects.get(subdir=SUBDIR)
    cells = [
        PlannedCell(build.pk, release.pk, v.pk, platform.pk, py, None, (), f"reason {v.name}")
        for v in Variant.objects.filter(name__in=["cuda11.8", "rocm6.2"])
        for py in ("3.11", "3.12")
    ]

    write_not_applicable(cells[:2])
    _write_not_applicable_orm(cells[2:])

    written = CellResult.objects.filter(build=build, python__in=["3.11", "3.12"])
    assert sorted(written.values_list("variant__name", "python", "verdict", "detail")) == sorted(
        (
            "cuda11.8" if "cuda" in c.reason else "rocm6.2",
            c.python,
            "not_applicable",
            c.reason,
        )
        for c in cells
    )
    assert all(cell.package_id == build.package_id for cell in written)


def test_registering_a_release_starts_its_wave_for_every_active_package(
    world, django_capture_on_commit_callbacks
):
    data = ReleaseInput(
        version="2.5.2",
        kind="rc",
        released_on=date(2026, 1, 1),
        supported=False,
        variants=list(Variant.objects.filter(name__in=["cpu", "cuda12.4"])),
        platforms=list(Platform.objects.filter(subdir=SUBDIR)),
        python_versions=["3.11", "3.12"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        register_torch_release(data=data)

    run = Run.objects.get(trigger="torch_release")
    assert run.torch_release == TorchRelease.objects.get(version="2.5.2")
    jobs = Job.objects.filter(run=run)
    assert set(jobs.values_list("torch_release__version", flat=True)) == {"2.5.2"}
    # Release-blocking: ahead of routine work in the push order (services/wave_order.py).
    assert set(jobs.values_list("priority", flat=True)) == {20}
    # The samples admit <2.6; the channel that gives them PyTorch has no 2.5.2 at all, so only
    # the install check can tell (it will say why): nothing is hidden as not applicable.
    assert set(jobs.values_list("build__name", flat=True)) == {
        "sample-passes",
        "sample-fails-on-torch-2-5",
        "sample-unsatisfiable",
        "sample-no-tests",
        "sample-legacy-layout",
    }


def test_full_run_and_manual_plans(world):
    full = plan_full_run(detail="test")
    passes = Build.objects.get(channel=world.channel, name="sample-passes")
    manual = plan_manual(
        builds=[passes], releases=[TorchRelease.objects.get(version="2.4.1")], force=True
    )

    assert full.run.trigger == "full"
    assert full.jobs == 0  # every cell is queued already
    assert full.already_decided > 0
    assert (manual.run.trigger, manual.jobs) == ("manual", 1)
    assert Job.objects.get(run=manual.run).priority == 10
    assert Job.objects.get(run=manual.run).torch_release.version == "2.4.1"


def test_plan_run_command_prints_the_summary_and_rejects_unknown_input(world):
    out = io.StringIO()
    call_command("plan_run", "--package", "sample-passes", "--force", stdout=out)
    assert "2 install checks queued" in out.getvalue()
    with pytest.raises(CommandError, match="not registered"):
        call_command("plan_run", "--release", "9.9.9")
    with pytest.raises(CommandError, match="No build with id"):
        call_command("plan_run", "--build", "999999")
