"""The compatibility matrix: aggregation, honesty about in-flight cells, filters, query counts."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from testing_app.selectors.matrix import MatrixFilters
from testing_app.selectors.matrix import get_results_matrix
from testing_app.selectors.matrix import list_platforms
from testing_app.selectors.matrix import list_variants
from testing_app.selectors.matrix import parse_matrix_filters
from tests import factories
from tests.testing_app.matrix_scenarios import fill_package
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

pytestmark = pytest.mark.django_db


@pytest.fixture
def axes():
    return make_axes()


def _cell(matrix, package_name: str, version: str):
    row = next(r for r in matrix.rows if r.package.name == package_name)
    column = [r.version for r in matrix.columns].index(version)
    return row.cells[column]


def test_matrix_columns_are_supported_releases_newest_first_in_conda_order(axes):
    factories.TorchReleaseFactory(version="2.9.0", supported=False)
    matrix = get_results_matrix(filters=MatrixFilters())
    # 2.10.0 > 2.5.1 > 2.4.1 as conda versions (a string sort would put 2.10.0 between them).
    assert [r.version for r in matrix.columns] == ["2.10.0", "2.5.1", "2.4.1"]


def test_matrix_cell_shows_worst_verdict_with_counts(axes):
    package = make_package("kornia", axes)
    records = fill_package(package, axes, verdict="passed")
    failing = next(
        r
        for r in records
        if r.cell.torch_release.version == "2.5.1" and r.cell.variant.name == "cuda12.4"
    )
    failing.cell.verdict = "failed"
    failing.cell.save()
    matrix = get_results_matrix(filters=MatrixFilters())
    cell = _cell(matrix, "kornia", "2.5.1")
    assert cell.worst == "failed"
    assert dict(cell.counts) == {"failed": 1, "passed": 3}
    assert cell.total == 4
    assert _cell(matrix, "kornia", "2.10.0").worst == "passed"


def test_matrix_never_shows_queued_running_or_missing_as_failed(axes):
    package = make_package("fastai", axes)
    linux, osx = axes.platforms
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    release = axes.releases[0]
    record_cell(
        build=build, release=release, variant=axes.variants[0], platform=linux, verdicts=["passed"]
    )
    record_cell(
        build=build, release=release, variant=axes.variants[1], platform=linux, verdicts=["queued"]
    )
    record_cell(
        build=build,
        release=axes.releases[1],
        variant=axes.variants[1],
        platform=linux,
        verdicts=["failed", "running"],
    )
    matrix = get_results_matrix(filters=MatrixFilters())
    assert _cell(matrix, "fastai", "2.5.1").worst == "queued"
    assert _cell(matrix, "fastai", "2.10.0").worst == "running"
    assert _cell(matrix, "fastai", "2.4.1").worst == "missing"
    assert _cell(matrix, "fastai", "2.4.1").total == 0


def test_matrix_reads_only_the_latest_version_builds(axes):
    package = make_package("mmf", axes, version="2.0")
    fill_package(package, axes, verdict="failed", version="1.0")
    fill_package(package, axes, verdict="passed", version="2.0")
    matrix = get_results_matrix(filters=MatrixFilters())
    assert {cell.worst for cell in matrix.rows[0].cells} == {"passed"}


def test_matrix_platform_and_variant_filters_limit_the_cells(axes, client):
    package = make_package("detectron2", axes)
    for record in fill_package(package, axes, verdict="passed"):
        if record.cell.platform.subdir == "osx-arm64" and record.cell.variant.name == "cpu":
            record.cell.verdict = "uninstallable"
            record.cell.save()
    variants, platforms = list_variants(), list_platforms()
    filters, errors = parse_matrix_filters(
        {"platform": "linux-64"}, variants=variants, platforms=platforms
    )
    assert not errors
    assert _cell(get_results_matrix(filters=filters), "detectron2", "2.5.1").worst == "passed"
    filters, _ = parse_matrix_filters(
        {"platform": "osx-arm64", "variant": "cpu"}, variants=variants, platforms=platforms
    )
    cell = _cell(get_results_matrix(filters=filters), "detectron2", "2.5.1")
    assert cell.worst == "uninstallable"
    assert cell.total == 1


def test_matrix_status_filters_pick_packages_by_their_cells(axes):
    fill_package(make_package("good", axes), axes, verdict="passed")
    fill_package(make_package("bad", axes), axes, verdict="failed")
    fill_package(make_package("busy", axes), axes, verdict="queued")
    make_package("fresh", axes)

    def names(status):
        return [
            r.package.name for r in get_results_matrix(filters=MatrixFilters(status=status)).rows
        ]

    assert names("failing") == ["bad"]
    assert names("in_flight") == ["busy"]
    assert names("passing") == ["good"]
    assert names("untested") == ["fresh"]
    assert names("") == ["bad", "busy", "fresh", "good"]


def test_matrix_filters_by_name_and_maintainer_and_sorts(axes):
    ada = factories.MaintainerFactory(name="Ada Lovelace", github_handle="ada")
    fill_package(make_package("torchmetrics", axes, maintainer=ada), axes, verdict="passed")
    fill_package(make_package("torchtext", axes), axes, verdict="failed")
    fill_package(make_package("kornia", axes), axes, verdict="passed")
    assert [
        r.package.name for r in get_results_matrix(filters=MatrixFilters(search="torch")).rows
    ] == [
        "torchmetrics",
        "torchtext",
    ]
    for who in ("ada", "@ada", "lovelace", ada.email.upper()):
        rows = get_results_matrix(filters=MatrixFilters(maintainer=who)).rows
        assert [r.package.name for r in rows] == ["torchmetrics"], who
    assert (
        get_results_matrix(filters=MatrixFilters(sort="failing")).rows[0].package.name
        == "torchtext"
    )
    assert (
        get_results_matrix(filters=MatrixFilters(sort="-name")).rows[0].package.name == "torchtext"
    )


def test_matrix_excludes_proposed_and_removed_packages(axes):
    make_package("listed", axes)
    make_package("gone", axes, status="removed")
    make_package("maybe", axes, status="proposed")
    assert [r.package.name for r in get_results_matrix(filters=MatrixFilters()).rows] == ["listed"]


def test_matrix_page_shows_symbol_text_and_legend(axes, client):
    fill_package(make_package("kornia", axes), axes, verdict="failed")
    content = client.get("/matrix/").content.decode()
    assert 'class="cell v-failed"' in content
    # The symbol for the eye and the word for screen readers (the column headers say the rest).
    assert '<span class="sym" aria-hidden="true">✗</span><span class="visually-hidden">failed' in (
        content
    )
    assert 'class="verdict-legend"' in content
    for label in ("passed", "failed", "uninstallable", "queued", "running", "no result"):
        assert f"</span> {label}</span>" in content


def test_matrix_page_rejects_unknown_filter_values_with_field_errors(axes, client):
    response = client.get("/matrix/?platform=amiga-68k&sort=bogus")
    assert response.status_code == 400
    content = response.content.decode()
    assert "Unknown platform &#x27;amiga-68k&#x27;" in content
    assert "Unknown sort" in content


def test_matrix_page_paginates_and_keeps_filters_in_links(axes, client, settings):
    settings.MATRIX_PAGE_SIZE = 2
    for index in range(5):
        make_package(f"lib{index}", axes)
    content = client.get("/matrix/?q=lib&status=untested").content.decode()
    assert "Page 1 of 3" in content
    assert 'href="?q=lib&amp;status=untested&amp;page=2"' in content


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(captured)


@pytest.mark.parametrize(
    "url",
    [
        "/matrix/",
        "/matrix/?status=failing&sort=failing&platform=linux-64",
        "/matrix/?maintainer=ada&view=heatmap",
        "/matrix/export.csv",
    ],
)
def test_matrix_query_count_does_not_grow_with_packages(axes, client, url):
    ada = factories.MaintainerFactory(github_handle="ada")
    fill_package(make_package("p00", axes, maintainer=ada), axes, verdict="failed")
    small = _queries(client, url)
    for index in range(1, 8):
        package = make_package(f"p{index:02d}", axes, maintainer=ada)
        fill_package(package, axes, verdict="failed" if index % 2 else "passed")
    large = _queries(client, url)
    assert large == small
    assert small <= 15


def test_matrix_heatmap_view_renders_plotly_figure_without_cdn(axes, client):
    fill_package(make_package("kornia", axes), axes, verdict="passed")
    content = client.get("/matrix/?view=heatmap").content.decode()
    assert "vendor/plotly/plotly.min.js" in content
    assert "cdn.plot.ly" not in content
    assert '"type":"heatmap"' in content
    assert "kornia" in content


def test_matrix_csv_exports_every_matching_row(axes, client):
    fill_package(make_package("kornia", axes), axes, verdict="failed")
    fill_package(make_package("fastai", axes), axes, verdict="passed")
    response = client.get("/matrix/export.csv?status=failing")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["package", "latest_version", "status", "maintainers"]
    assert rows[0][4] == "pytorch 2.10.0"
    assert [row[0] for row in rows[1:]] == ["kornia"]
    assert rows[1][4] == "failed"
    assert rows[1][5] == "failed=4"


def test_matrix_csv_rejects_unknown_filters(axes, client):
    response = client.get("/matrix/export.csv?variant=cuda99")
    assert response.status_code == 400
    assert b"variant: Unknown variant" in response.content
