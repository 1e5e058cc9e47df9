"""A package's own matrix on /packages/<name>/: builds x cells, history, last known good."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from testing_app.selectors.package_matrix import HISTORY_LENGTH
from testing_app.selectors.package_matrix import get_package_matrix
from tests.testing_app.matrix_scenarios import fill_package
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

pytestmark = pytest.mark.django_db


@pytest.fixture
def axes():
    return make_axes()


def test_package_matrix_rows_are_builds_and_cells_link_to_latest_job(axes, client):
    package = make_package("kornia", axes, version="0.7.3")
    records = fill_package(package, axes, verdict="passed")
    matrix = get_package_matrix(name="kornia", versions=["0.7.3"])
    assert matrix.has_results
    assert [r.platform_subdir for r in matrix.rows] == ["linux-64", "osx-arm64"]
    assert [c.version for c in matrix.columns] == ["2.10.0", "2.5.1", "2.4.1"]
    first = matrix.rows[0].cells[0]
    assert [c.variant for c in first] == ["cpu", "cuda12.4"]
    content = client.get("/packages/kornia/").content.decode()
    assert f'href="/jobs/{records[0].jobs[-1].pk}/"' in content
    assert 'id="test-matrix"' in content


def test_package_matrix_cell_history_lists_last_jobs_newest_first(axes):
    package = make_package("fastai", axes)
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    verdicts = ["passed", "error", "passed", "failed", "error", "timeout", "failed"]
    record = record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[1],
        platform=axes.platforms[0],
        verdicts=verdicts,
    )
    matrix = get_package_matrix(name="fastai", versions=["1.0"])
    column = [r.version for r in matrix.columns].index("2.5.1")
    cell = matrix.rows[0].cells[column][0]
    assert cell.verdict == "failed"
    assert cell.previous_verdict == "timeout"
    assert cell.latest_job_id == record.jobs[-1].pk
    assert [h.verdict for h in cell.history] == list(reversed(verdicts))[:HISTORY_LENGTH]
    assert cell.history[0].job_id == record.jobs[-1].pk


def test_package_matrix_last_known_good_per_platform_and_variant(axes):
    package = make_package("mmf", axes, version="2.0")
    linux, osx = axes.platforms
    cpu, cuda = axes.variants
    old = make_build(package, axes, version="1.0", subdir="linux-64")
    new = make_build(package, axes, version="2.0", subdir="linux-64")
    by_version = {r.version: r for r in axes.releases}
    record_cell(
        build=old, release=by_version["2.10.0"], variant=cuda, platform=linux, verdicts=["passed"]
    )
    record_cell(
        build=new, release=by_version["2.10.0"], variant=cuda, platform=linux, verdicts=["failed"]
    )
    record_cell(
        build=new, release=by_version["2.4.1"], variant=cpu, platform=linux, verdicts=["passed"]
    )
    record_cell(
        build=new, release=by_version["2.5.1"], variant=cpu, platform=linux, verdicts=["passed"]
    )
    matrix = get_package_matrix(name="mmf", versions=["2.0", "1.0"])
    good = {(g.platform, g.variant): (g.release, g.build_version) for g in matrix.last_known_good}
    assert good == {
        ("linux-64", "cpu"): ("2.5.1", "2.0"),
        ("linux-64", "cuda12.4"): ("2.10.0", "1.0"),
    }


def test_package_matrix_switches_version_and_shows_untested_builds(axes, client):
    package = make_package("ignite", axes, version="0.5")
    fill_package(package, axes, verdict="failed", version="0.4")
    make_build(package, axes, version="0.5", subdir="linux-64")
    matrix = get_package_matrix(name="ignite", versions=["0.5", "0.4"])
    assert matrix.version == "0.5"
    assert len(matrix.rows) == 1
    assert not matrix.rows[0].has_results
    older = get_package_matrix(name="ignite", versions=["0.5", "0.4"], requested_version="0.4")
    assert older.version == "0.4"
    assert all(c.verdict == "failed" for row in older.rows for cells in row.cells for c in cells)
    # An unknown version falls back to the newest rather than failing.
    assert (
        get_package_matrix(name="ignite", versions=["0.5"], requested_version="9").version == "0.5"
    )
    content = client.get("/packages/ignite/?mv=0.4").content.decode()
    assert '<option value="0.4" selected>' in content


def test_package_without_results_says_so(axes, client):
    package = make_package("newcomer", axes)
    make_build(package, axes, version="1.0", subdir="linux-64")
    content = client.get("/packages/newcomer/").content.decode()
    assert "No test results for newcomer yet" in content


def _queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_package_page_query_count_does_not_grow_with_builds_cells_or_jobs(axes, client):
    package = make_package("kornia", axes, version="1.0")
    fill_package(package, axes, verdict="passed")
    small = _queries(client, "/packages/kornia/")
    fill_package(package, axes, verdict="failed", version="0.9")
    build = package.builds.filter(version="1.0").first()
    for release in axes.releases:
        record_cell(
            build=build,
            release=release,
            variant=axes.variants[0],
            platform=axes.platforms[1],
            verdicts=["error", "passed", "failed", "passed"],
            python="3.12",
        )
    large = _queries(client, "/packages/kornia/")
    assert large == small
    # 15 for the page and its matrix, plus the install command (channels), the badges (releases)
    # and the re-tests of this package pinned to upstream builds.
    assert small <= 18
