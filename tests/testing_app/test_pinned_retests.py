"""Re-tests with a pinned upstream build live in their own cells (PinnedCellResult): the
dependent's own verdict, badge, gate and matrix cell never change because of an upstream build
that was never promoted; the re-test is shown on both sides as "with sample-lib 2.0 (staged)"."""

import pytest
from django.urls import reverse

from packages_app.models import Channel
from testing_app.gate.types import FAIL
from testing_app.gate.types import PASS
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import PinnedCellResult
from testing_app.models import Verdict
from testing_app.selectors.badges import get_badge_status
from testing_app.selectors.gate import get_build_gate
from testing_app.selectors.planning import existing_cells
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import cancel_job
from tests import factories
from tests.testing_app.notice_helpers import finish

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """dep-a 1.0 (in the target channel, passing on its own) depends on sample-lib >=1; a new
    sample-lib 2.0 is staged. One supported release with one cell."""
    release = factories.TorchReleaseFactory(version="2.5.1", supported=True)
    cpu = factories.VariantFactory(name="cpu")
    linux = factories.PlatformFactory(subdir="linux-64")
    release.variants.set([cpu])
    release.platforms.set([linux])
    target = factories.ChannelFactory(name="target", role=Channel.Role.TARGET)
    staging = factories.ChannelFactory(name="staging", role=Channel.Role.STAGING)
    dep_package = factories.PackageFactory(name="dep-a", latest_version="1.0")
    dep_package.maintainers.add(factories.MaintainerFactory(name="Dee"))
    lib_package = factories.PackageFactory(name="sample-lib", latest_version="1.0")
    lib_package.maintainers.add(factories.MaintainerFactory(name="Lib"))
    dep_a = factories.BuildFactory(
        name="dep-a",
        version="1.0",
        package=dep_package,
        channel=target,
        state="promoted",
        depends=["sample-lib >=1", "pytorch >=2.5,<2.6"],
    )
    sample_lib = factories.BuildFactory(
        name="sample-lib", version="2.0", package=lib_package, channel=staging, state="staged"
    )
    cell = {"torch_release": release, "variant": cpu, "platform": linux}
    return {"dep_a": dep_a, "sample_lib": sample_lib, "cell": cell}


def test_failing_pinned_retest_leaves_the_dependents_own_cell_badge_and_gate(world, client):
    dep_a, sample_lib, cell = world["dep_a"], world["sample_lib"], world["cell"]
    own = finish(dep_a, cell, Verdict.PASSED)
    retest = finish(dep_a, cell, Verdict.FAILED, pinned_build=sample_lib)

    own_cell = CellResult.objects.get(build=dep_a)
    assert (own_cell.verdict, own_cell.previous_verdict, own_cell.latest_job_id) == (
        Verdict.PASSED,
        "",
        own.pk,
    )
    pinned = PinnedCellResult.objects.get(build=dep_a)
    assert (pinned.pinned_build_id, pinned.verdict, pinned.latest_job_id) == (
        sample_lib.pk,
        Verdict.FAILED,
        retest.pk,
    )
    assert get_badge_status(name="dep-a").message == "passing"
    assert get_build_gate(dep_a.pk).policy("cells").status == PASS
    upstream_gate = get_build_gate(sample_lib.pk).policy("reverse_dependencies")
    assert upstream_gate.status == FAIL
    assert upstream_gate.lines[0].note.startswith(f"regression: passed before (job {own.pk})")

    page = client.get(reverse("packages:package-detail", args=[dep_a.name])).content.decode()
    assert "with sample-lib 2.0 (staged)" in page
    excuses = client.get(reverse("testing:build-excuses", args=[sample_lib.pk])).content.decode()
    assert "Dependents re-tested with this build" in excuses
    assert "dep-a 1.0" in excuses


def test_queued_and_cancelled_retests_touch_only_their_own_cell(world):
    dep_a, sample_lib, cell = world["dep_a"], world["sample_lib"], world["cell"]
    finish(dep_a, cell, Verdict.PASSED)
    (job,) = enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[Job(kind="test", build=dep_a, pinned_build=sample_lib, **cell)],
    )
    assert CellResult.objects.get(build=dep_a).verdict == Verdict.PASSED
    assert PinnedCellResult.objects.get(build=dep_a).verdict == Verdict.QUEUED

    cancel_job(job=job, reason="superseded")

    assert CellResult.objects.get(build=dep_a).verdict == Verdict.PASSED
    assert not PinnedCellResult.objects.filter(build=dep_a).exists()


def test_planner_sees_own_and_pinned_cells_as_different_cells(world):
    dep_a, sample_lib, cell = world["dep_a"], world["sample_lib"], world["cell"]
    finish(dep_a, cell, Verdict.FAILED, pinned_build=sample_lib)
    key = (dep_a.pk, cell["torch_release"].pk, cell["variant"].pk, cell["platform"].pk, "")

    existing = existing_cells(build_ids=[dep_a.pk])

    assert (*key, None) not in existing  # the dependent's own cell was never decided
    assert existing[(*key, sample_lib.pk)].verdict == Verdict.FAILED
