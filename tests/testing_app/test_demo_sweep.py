"""The demo's sweep over the real catalog: the production planner and install-check jobs decide
every cell of a registered real package as far as its metadata can, with no package file to
test (TESTS_NEED_PACKAGE_FILE): not applicable with the reason, uninstallable with the solver's
explanation, or installable, not tested."""

import io
from collections import Counter

import pytest
from django.core.management import call_command

from packages_app.models import Build
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import Verdict
from testing_app.selectors.package_matrix import get_package_matrix
from tests import factories
from tests.testing_app.planning_world import drain

pytestmark = pytest.mark.django_db

DECIDED = {Verdict.NOT_APPLICABLE, Verdict.UNINSTALLABLE, Verdict.INSTALLABLE}


@pytest.fixture
def demo_catalog(settings):
    settings.TESTS_NEED_PACKAGE_FILE = True
    settings.INSTALL_CHECK_VIRTUAL_PACKAGES = {}
    settings.RETRY_BACKOFF_S = [0]
    call_command("seed_demo", "--no-samples", stdout=io.StringIO())


def test_torchvision_cells_are_all_decided_without_a_package_file(
    demo_catalog, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "plan_run", "--package", "torchvision", "--no-reverse-dependencies",
            stdout=io.StringIO(),
        )  # fmt: skip
    drain("install")

    cells = CellResult.objects.filter(build__name="torchvision")
    verdicts = Counter(cells.values_list("verdict", flat=True))
    # Every cell decided: nothing queued, running, or left without a result.
    assert set(verdicts) <= DECIDED, verdicts
    assert verdicts[Verdict.NOT_APPLICABLE], verdicts
    assert verdicts[Verdict.INSTALLABLE], verdicts
    # No test was queued: no file to test; the install checks that solved say so.
    assert not Job.objects.filter(kind=Job.Kind.TEST).exists()
    installable = cells.filter(verdict=Verdict.INSTALLABLE).select_related("latest_job").first()
    assert installable.latest_job.kind == Job.Kind.INSTALL_CHECK
    assert installable.latest_job.solved_packages
    assert "installable, not tested" in installable.latest_job.log_tail
    assert all(c.detail for c in cells.filter(verdict=Verdict.NOT_APPLICABLE))

    # The package's own matrix: every shown cell of its newest version holds one of them.
    versions = sorted(
        set(Build.objects.filter(name="torchvision").values_list("version", flat=True)),
        key=lambda v: [int(p) for p in v.split(".")],
        reverse=True,
    )
    matrix = get_package_matrix(name="torchvision", versions=versions, all_columns=True)
    shown = {c.verdict for row in matrix.rows for group in row.cells for c in group}
    assert shown <= DECIDED | {""}, shown
    client.force_login(factories.UserFactory())
    page = client.get("/packages/torchvision/").content.decode()
    assert "installable, not tested" in page
