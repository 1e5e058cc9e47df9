"""Release impact: registering a PyTorch release shows at once which packages admit it, exclude
it or are unbounded, tells the maintainers who must bump once, and the page follows the wave."""

import pytest
from django.contrib.auth.models import Group

from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import Notification
from testing_app.models import ReleaseImpact
from testing_app.models import Run
from testing_app.models import Verdict
from testing_app.selectors.releases import final_version
from testing_app.selectors.releases import get_release_follow
from testing_app.services.releases import ReleaseInput
from testing_app.services.releases import register_torch_release
from tests import factories

Category = ReleaseImpact.Category


def _package(name, *depends, maintainers=(), version="1.0"):
    package = factories.PackageFactory(name=name, latest_version=version)
    package.maintainers.add(*maintainers)
    factories.BuildFactory(name=name, package=package, version=version, depends=list(depends))
    # An older version without bounds does not count: it says nothing about a later release.
    factories.BuildFactory(name=name, package=package, version="0.1", depends=["pytorch"])
    return package


@pytest.fixture
def catalog(db):
    ada = factories.MaintainerFactory(name="Ada")
    grace = factories.MaintainerFactory(name="Grace")
    return {
        "ada": ada,
        "grace": grace,
        "admits": _package("kornia", "pytorch >=2.4,<2.7", maintainers=[grace]),
        "excludes": _package("torchmetrics", "pytorch >=2.4,<2.6", maintainers=[ada]),
        "excludes_too": _package("lightning", "pytorch 2.5.*", maintainers=[ada, grace]),
        "unbounded": _package("fastai", "pytorch >=1.10", maintainers=[grace]),
        "independent": _package("faiss-cpu", "numpy >=1.11,<2"),
        "no_build": factories.PackageFactory(name="mmf", latest_version=""),
        "axes": (factories.VariantFactory(name="cpu"), factories.PlatformFactory()),
    }


def _register(catalog, version="2.6.0", kind="final"):
    variant, platform = catalog["axes"]
    registration = register_torch_release(
        data=ReleaseInput(
            version=version,
            kind=kind,
            released_on=None,
            supported=True,
            variants=[variant],
            platforms=[platform],
            python_versions=["3.12"],
        ),
        registered_by=factories.UserFactory(username="rm"),
    )
    return registration.release


def test_register_release_records_the_impact_of_every_live_package(catalog):
    release = _register(catalog)
    impact = dict(
        ReleaseImpact.objects.filter(torch_release=release).values_list("package__name", "category")
    )
    assert impact == {
        "kornia": Category.ADMITS,
        "torchmetrics": Category.EXCLUDES,
        "lightning": Category.EXCLUDES,
        "fastai": Category.UNBOUNDED,
        "faiss-cpu": Category.NO_DEPENDENCY,
        "mmf": Category.NO_BUILD,
    }
    row = ReleaseImpact.objects.get(package=catalog["excludes"])
    assert (row.version, row.specs) == ("1.0", "pytorch >=2.4,<2.6")
    assert release.source == "registered by rm"
    # The planner's release wave started in the same transaction (testing_app.services.planning).
    assert Run.objects.filter(torch_release=release, trigger=Run.Trigger.TORCH_RELEASE).exists()
    states = {r.impact.package.name: r.state for r in get_release_follow(release).rows}
    assert states["torchmetrics"] == "needs_bump"  # its cells are not_applicable, untested
    assert states["kornia"] == "waiting"  # its install checks are queued


def test_bump_needed_is_one_notice_per_maintainer_listing_their_packages(catalog):
    _register(catalog)
    rows = {r.maintainer.name: r for r in Notification.objects.filter(kind="bump_needed")}
    assert set(rows) == {"Ada", "Grace"}  # kornia and fastai alone tell nobody
    assert rows["Ada"].body.count("\n- ") == 2
    assert "- lightning 1.0: pytorch 2.5.*" in rows["Ada"].body
    assert "- torchmetrics 1.0: pytorch >=2.4,<2.6" in rows["Ada"].body
    assert rows["Grace"].body.count("\n- ") == 1
    assert rows["Ada"].link.endswith("/releases/2.6.0/")


def test_rc_is_judged_as_its_final_and_the_final_tells_nobody_again(catalog):
    # In conda's ordering 2.6.0rc1 < 2.6, so "<2.6" admits the candidate: the bump is still
    # needed for 2.6.0, and it is said once for both.
    rc = _register(catalog, version="2.6.0rc1", kind="rc")
    assert final_version(rc) == "2.6.0"
    assert ReleaseImpact.objects.get(package=catalog["excludes"]).category == Category.EXCLUDES
    assert Notification.objects.filter(kind="bump_needed").count() == 2
    _register(catalog, version="2.6.0")
    assert Notification.objects.filter(kind="bump_needed").count() == 2
    assert ReleaseImpact.objects.filter(package=catalog["excludes"]).count() == 2


def test_final_version_keeps_a_final_release_as_it_is(db):
    assert final_version(TorchRelease(version="2.6.0rc3", kind="rc")) == "2.6.0"
    assert final_version(TorchRelease(version="2.10.1", kind="final")) == "2.10.1"
    assert final_version(TorchRelease(version="2.7.0", kind="rc")) == "2.7.0"


def test_register_rejects_a_bad_or_duplicate_version(catalog):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Not a conda version"):
        _register(catalog, version="2.6.0!!")
    _register(catalog)
    with pytest.raises(ValidationError, match="already registered"):
        _register(catalog)
    assert TorchRelease.objects.count() == 1


def test_wave_follows_each_package_ready_failing_needs_bump_waiting(catalog, client):
    release = _register(catalog)
    variant, platform = catalog["axes"]

    def cell(package, verdict):
        """The verdict of every cell of the package's latest build for the release (the
        planner may already have written them as queued or not_applicable)."""
        build = package.builds.get(version="1.0")
        cells = CellResult.objects.filter(build=build, torch_release=release)
        if not cells.update(verdict=verdict):
            factories.CellResultFactory(
                build=build,
                package=package,
                torch_release=release,
                variant=variant,
                platform=platform,
                verdict=verdict,
            )

    cell(catalog["admits"], Verdict.PASSED)
    cell(catalog["unbounded"], Verdict.FAILED)
    cell(catalog["excludes"], Verdict.NOT_APPLICABLE)  # the planner leaves excluded cells n/a
    cell(catalog["independent"], Verdict.RUNNING)
    follow = get_release_follow(release)
    states = {row.impact.package.name: row.state for row in follow.rows}
    assert states == {
        "kornia": "ready",
        "fastai": "failing",
        "torchmetrics": "needs_bump",
        "lightning": "needs_bump",
        "faiss-cpu": "not_applicable",  # no PyTorch dependency: not part of the wave
        "mmf": "waiting",
    }
    assert [r.impact.package.name for r in follow.rows][:3] == [
        "lightning",
        "torchmetrics",
        "fastai",
    ]
    assert follow.by_state == {
        "needs_bump": 2,
        "failing": 1,
        "waiting": 1,
        "ready": 1,
        "not_applicable": 1,
    }
    # The sentence under the table counts the table's rows: PyTorch's own cells, or builds
    # that are not the latest, are not in it.
    with_result = [r for r in follow.rows if set(r.cell_counts) - {"queued", "running"}]
    assert follow.packages_with_result == len(with_result) == 4  # lightning: n/a by the planner
    assert follow.cells_with_result == sum(sum(r.cell_counts.values()) for r in with_result)
    content = client.get("/releases/2.6.0/").content.decode()
    assert "exclude it: bump needed" in content
    assert 'wave-row-needs_bump">' in content
    assert "Ada" in content
    assert "mailto:" not in content  # addresses only for release managers
    assert "cells by current verdict over time" in content  # the wave chart is kept
    assert (
        f"4 packages of the table above and {follow.cells_with_result} of their cells have a "
        "result" in content
    )


def test_wave_reads_a_bounded_number_of_queries(catalog, django_assert_num_queries):
    release = _register(catalog)
    get_release_follow(release)  # warm-up (content types, etc.)
    # Packages, latest builds, the older builds' distinct specs (a latest version excludes
    # the release), cells, registered impact, runs; no older version admits it with a bound,
    # so no older builds are read.
    with django_assert_num_queries(6):
        get_release_follow(release)
    for n in range(10):
        _package(f"extra{n}", "pytorch >=2.4,<2.6", maintainers=[catalog["ada"]])
    with django_assert_num_queries(6):
        get_release_follow(release)
    # An older version that admits it: its package's builds are read (one query more).
    _package("served", "pytorch >=2.4,<2.6", version="2.0")
    factories.BuildFactory(
        name="served", package_id=catalog["excludes"].pk, version="0.5", depends=["pytorch <3"]
    )
    with django_assert_num_queries(7):
        follow = get_release_follow(release)
    row = next(r for r in follow.rows if r.impact.package == catalog["excludes"])
    assert (row.impact.version, row.impact.latest_excludes) == ("0.5", "1.0")


def test_register_page_needs_the_release_manager_permission(catalog, client):
    assert client.get("/releases/new/").status_code == 302  # sign in first
    user = factories.UserFactory()
    client.force_login(user)
    assert client.get("/releases/new/").status_code == 403
    user.groups.add(Group.objects.get(name="release managers"))
    page = client.get("/releases/new/")
    assert page.status_code == 200
    variant, platform = catalog["axes"]
    bad = client.post("/releases/new/", {"version": "2.6.0!!", "kind": "final"})
    assert bad.status_code == 400
    assert "Not a conda version" in bad.content.decode()
    response = client.post(
        "/releases/new/",
        {
            "version": "2.6.0",
            "kind": "final",
            "released_on": "2025-01-29",
            "supported": "on",
            "variants": [variant.pk],
            "platforms": [platform.pk],
            "python_versions": "3.11, 3.12",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/releases/2.6.0/"
    release = TorchRelease.objects.get(version="2.6.0")
    assert release.python_versions == ["3.11", "3.12"]
    assert ReleaseImpact.objects.filter(torch_release=release).count() == 6
    detail = client.get("/releases/2.6.0/").content.decode()
    assert "mailto:" in detail  # the maintainers to contact, for a release manager
    listing = client.get("/releases/").content.decode()
    assert "Register a release" in listing


def test_a_release_the_latest_moved_past_is_judged_by_the_newest_version_admitting_it(
    catalog, client
):
    """torchvision 0.24 needs PyTorch 2.9; 0.20.1 pins 2.5.1: for 2.5.1 nothing needs a bump,
    and the page says which version admits the release."""
    package = factories.PackageFactory(name="torchvision", latest_version="0.24.0")
    for version, spec in [
        ("0.24.0", "pytorch 2.9.*"),
        ("0.20.1", "pytorch ==2.5.1"),
        ("0.19.1", "pytorch ==2.4.1"),
        ("0.3", "pytorch"),
    ]:
        factories.BuildFactory(name="torchvision", package=package, version=version, depends=[spec])
    release = _register(catalog, version="2.5.1")
    row = ReleaseImpact.objects.get(torch_release=release, package=package)
    assert (row.category, row.version, row.specs) == (Category.ADMITS, "0.20.1", "pytorch ==2.5.1")
    follow = {r.impact.package.name: r for r in get_release_follow(release).rows}
    assert follow["torchvision"].state == "waiting"
    assert follow["torchvision"].impact.latest_excludes == "0.24.0"
    assert not Notification.objects.filter(kind="bump_needed", body__contains="torchvision")
    # A release after 0.24's bound: only the unbounded 0.3 admits it, so the bump is needed.
    newer = _register(catalog, version="2.10.0")
    row = ReleaseImpact.objects.get(torch_release=newer, package=package)
    assert (row.category, row.version) == (Category.EXCLUDES, "0.24.0")
    client.force_login(factories.UserFactory())
    page = client.get(f"/releases/{release.version}/").content.decode()
    assert "0.20.1 is its newest version that admits this release" in page
    assert "the latest, 0.24.0, excludes it" in page


def test_releases_list_fills_the_impact_columns_of_releases_never_registered(catalog, client):
    """Seeded releases have no recorded impact: the list computes it, in bounded queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from testing_app.selectors.releases import list_releases_with_impact

    recorded = _register(catalog)
    seeded = [factories.TorchReleaseFactory(version=v) for v in ("2.5.1", "2.4.1")]
    with CaptureQueriesContext(connection) as queries:
        counts = dict(list_releases_with_impact())
    order = list(Category.values)
    expected = {c: 0 for c in order}
    expected.update(
        {
            Category.ADMITS: 1,
            Category.EXCLUDES: 2,
            Category.UNBOUNDED: 1,
            Category.NO_DEPENDENCY: 1,
            Category.NO_BUILD: 1,
        }
    )
    assert counts[recorded] == [expected[c] for c in order]
    # 2.5.1: kornia, torchmetrics and lightning admit it; fastai is unbounded.
    expected.update({Category.ADMITS: 3, Category.EXCLUDES: 0})
    assert counts[seeded[0]] == [expected[c] for c in order]
    assert all(sum(counts[r]) == 6 for r in seeded)
    assert len(queries) == 4  # releases, recorded counts, live packages, their builds
    factories.TorchReleaseFactory(version="2.3.1")
    with CaptureQueriesContext(connection) as more:
        list_releases_with_impact()
    assert len(more) == 4
    client.force_login(factories.UserFactory())
    page = client.get("/releases/").content.decode()
    assert "computed now from the catalog" in page
