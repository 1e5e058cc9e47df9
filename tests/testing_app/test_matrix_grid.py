"""The three-axis matrix (package x platform rows, release x variant columns) and its cell page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.selectors.matrix import MatrixFilters
from testing_app.selectors.matrix_grid import get_results_grid
from testing_app.templatetags.verdicts import duration
from tests.testing_app.matrix_scenarios import fill_package
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

pytestmark = pytest.mark.django_db


@pytest.fixture
def axes():
    return make_axes()


def _not_applicable(package, axes, *, subdir="linux-64", reason="needs pytorch >=2.10"):
    """Every cell of `package` on `subdir` decided by the planner as not applicable."""
    build = make_build(package, axes, version=package.latest_version, subdir=subdir)
    platform = next(p for p in axes.platforms if p.subdir == subdir)
    for release in axes.releases:
        for variant in axes.variants:
            CellResult.objects.create(
                build=build,
                package=package,
                torch_release=release,
                variant=variant,
                platform=platform,
                verdict="not_applicable",
                detail=reason,
            )
    return build


def _column_keys(grid):
    return [(c.release.version, c.variant.name) for c in grid.columns]


def test_grid_shows_only_columns_with_results_by_default_and_every_column_on_request(axes):
    release_251, release_210, release_241 = axes.releases
    cpu, cuda = axes.variants
    linux, osx = axes.platforms
    package = make_package("kornia", axes)
    _not_applicable(make_package("legacy", axes), axes)
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    record_cell(build=build, release=release_251, variant=cuda, platform=linux, verdicts=["failed"])
    record_cell(build=build, release=release_241, variant=cpu, platform=linux, verdicts=["passed"])

    grid = get_results_grid(filters=MatrixFilters())
    # Newest release first (conda order), variants in their sort order within a release.
    assert _column_keys(grid) == [("2.5.1", "cuda12.4"), ("2.4.1", "cpu")]
    assert [(g.release.version, g.span) for g in grid.groups] == [("2.5.1", 1), ("2.4.1", 1)]
    assert grid.hidden_columns == 4
    kornia = [r for r in grid.rows if r.package.name == "kornia"]
    assert [(r.platform, [c.summary.worst if c else None for c in r.cells]) for r in kornia] == [
        ("linux-64", ["failed", "passed"])
    ]
    # In a shown column a "not applicable" cell says so (with the planner's reason on hover)...
    (legacy,) = [r for r in grid.rows if r.package.name == "legacy"]
    assert [c.summary.worst for c in legacy.cells] == ["not_applicable", "not_applicable"]
    # ...and alone, a package whose every cell is "not applicable" gets one row that says so.
    (alone,) = get_results_grid(filters=MatrixFilters(search="legacy")).rows
    assert alone.cells == []
    assert "not applicable" in alone.note

    everything = get_results_grid(filters=MatrixFilters(), all_columns=True)
    assert _column_keys(everything) == [
        (release.version, variant.name)
        for release in (release_210, release_251, release_241)
        for variant in (cpu, cuda)
    ]
    (legacy_all,) = [r for r in everything.rows if r.package.name == "legacy"]
    assert {c.summary.worst for c in legacy_all.cells} == {"not_applicable"}
    assert {c.reason for c in legacy_all.cells} == {"needs pytorch >=2.10"}


def test_grid_rows_are_package_times_platform_with_counts_over_pythons(axes):
    release = axes.releases[0]
    cpu = axes.variants[0]
    linux, osx = axes.platforms
    package = make_package("torchvision", axes)
    linux_build = make_build(package, axes, version="1.0", subdir="linux-64")
    osx_build = make_build(package, axes, version="1.0", subdir="osx-arm64")
    for python, verdict in (("3.11", "passed"), ("3.12", "failed")):
        record_cell(
            build=linux_build,
            release=release,
            variant=cpu,
            platform=linux,
            verdicts=[verdict],
            python=python,
        )
    record_cell(build=osx_build, release=release, variant=cpu, platform=osx, verdicts=["passed"])

    grid = get_results_grid(filters=MatrixFilters())
    rows = [(r.platform, r.package_rowspan) for r in grid.rows]
    assert rows == [("linux-64", 2), ("osx-arm64", 0)]
    linux_cell = grid.rows[0].cells[0]
    assert linux_cell.summary.worst == "failed"
    assert dict(linux_cell.summary.counts) == {"failed": 1, "passed": 1}


def test_failing_only_keeps_failing_cells_rows_and_columns_and_nothing_else(axes):
    release_251, _, release_241 = axes.releases
    cpu, cuda = axes.variants
    linux, osx = axes.platforms
    package = make_package("kornia", axes)
    fill_package(package, axes, verdict="passed")
    failing = CellResult.objects.get(
        package=package, torch_release=release_241, variant=cuda, platform=osx
    )
    failing.verdict = "uninstallable"
    failing.save()
    fill_package(make_package("fastai", axes), axes, verdict="passed")

    grid = get_results_grid(filters=MatrixFilters(status="failing"), all_columns=True)
    assert _column_keys(grid) == [("2.4.1", "cuda12.4")]
    assert [(r.package.name, r.platform) for r in grid.rows] == [("kornia", "osx-arm64")]
    assert [c.summary.worst for c in grid.rows[0].cells] == ["uninstallable"]
    assert grid.verdict_totals == {"uninstallable": 1}


def test_matrix_page_links_each_cell_to_its_cell_page_and_states_hidden_columns(axes, client):
    package = make_package("kornia", axes)
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[1],
        platform=axes.platforms[0],
        verdicts=["failed"],
    )
    content = client.get("/matrix/").content.decode()
    assert 'href="/matrix/cell/kornia/2.5.1/cuda12.4/linux-64/"' in content
    assert "1 of 6 release × variant columns" in content
    assert 'href="?columns=all"' in content
    assert "cuda<br>12.4" in content
    assert client.get("/matrix/?columns=bogus").status_code == 400


def test_grid_page_query_count_does_not_grow_with_packages(axes, client):
    def queries(url):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    fill_package(make_package("p00", axes), axes, verdict="failed")
    small = [queries(u) for u in ("/matrix/", "/matrix/?columns=all&status=failing")]
    for index in range(1, 6):
        fill_package(make_package(f"p{index:02d}", axes), axes, verdict="passed")
    large = [queries(u) for u in ("/matrix/", "/matrix/?columns=all&status=failing")]
    assert large == small
    assert max(small) <= 15


def test_cell_page_explains_not_applicable_with_the_planners_reason(axes, client):
    package = make_package("legacy", axes)
    _not_applicable(package, axes, reason="depends on pytorch <2.0, this release is 2.5.1")
    response = client.get("/matrix/cell/legacy/2.5.1/cpu/linux-64/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Why not applicable" in content
    assert "depends on pytorch &lt;2.0, this release is 2.5.1" in content
    assert "No test has run in this cell" in content


def test_cell_page_shows_inputs_reason_and_tests_apart_from_install_checks(axes, client):
    release, cpu, linux = axes.releases[0], axes.variants[0], axes.platforms[0]
    package = make_package("kornia", axes)
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    torchvision = make_package("torchvision", axes)
    upstream = make_build(torchvision, axes, version="0.20", subdir="linux-64")
    check = record_cell(
        build=build,
        release=release,
        variant=cpu,
        platform=linux,
        verdicts=["passed"],
        kind=Job.Kind.INSTALL_CHECK,
        solved_packages=[{"name": "pytorch", "version": "2.5.1", "build": "cpu_0"}],
    )
    CellResult.objects.filter(pk=check.cell.pk).delete()
    test = record_cell(
        build=build,
        release=release,
        variant=cpu,
        platform=linux,
        verdicts=["failed"],
        kind=Job.Kind.TEST,
        pinned_build=upstream,
        failure_excerpt="E   AssertionError: hue differs by 0.02",
    )
    content = client.get("/matrix/cell/kornia/2.5.1/cpu/linux-64/").content.decode()
    assert "Why it did not pass" in content
    assert "hue differs by 0.02" in content
    assert "pytorch-2.5.1-cpu_0" in content  # the install check's solve, the test has none
    assert upstream.filename in content
    tests_table = content.split('class="data compact history-tests"')[1].split("</table>")[0]
    checks_table = content.split('class="data compact history-checks"')[1].split("</table>")[0]
    assert f"/jobs/{test.jobs[0].pk}/" in tests_table
    assert f"/jobs/{check.jobs[0].pk}/" not in tests_table
    assert f"/jobs/{check.jobs[0].pk}/" in checks_table


def test_cell_page_is_404_for_unknown_axes(axes, client):
    make_package("kornia", axes)
    assert client.get("/matrix/cell/kornia/9.9.9/cpu/linux-64/").status_code == 404
    assert client.get("/matrix/cell/nope/2.5.1/cpu/linux-64/").status_code == 404


def test_package_page_matrix_hides_not_applicable_releases_until_asked(axes, client):
    package = make_package("kornia", axes)
    _not_applicable(package, axes, subdir="osx-arm64")
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    record_cell(
        build=build,
        release=axes.releases[2],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["passed"],
    )
    content = client.get("/packages/kornia/").content.decode()
    assert "1 of 3 PyTorch releases" in content
    assert "PyTorch 2.4.1</th>" in content
    assert "PyTorch 2.5.1</th>" not in content
    everything = client.get("/packages/kornia/?mcols=all").content.decode()
    assert "PyTorch 2.5.1</th>" in everything


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.24, "0.2 s"), (4.56, "4.6 s"), (59.9, "59.9 s"), (75, "1 min 15 s"), (None, "—")],
)
def test_durations_under_a_minute_show_tenths(seconds, shown):
    assert duration(seconds) == shown
