"""The compatibility matrix page (table and heatmap) and its CSV export."""

import csv

from django.conf import settings
from django.http import HttpResponseBadRequest
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from distro_site.page_cache import cache_anonymous_get
from testing_app.selectors.matrix import SORT_CHOICES
from testing_app.selectors.matrix import STATUS_CHOICES
from testing_app.selectors.matrix import get_results_matrix
from testing_app.selectors.matrix import iter_matrix_rows
from testing_app.selectors.matrix import list_platforms
from testing_app.selectors.matrix import list_variants
from testing_app.selectors.matrix import parse_matrix_filters
from testing_app.selectors.matrix_cell import get_cell_page
from testing_app.selectors.matrix_grid import COLUMN_CHOICES
from testing_app.selectors.matrix_grid import get_results_grid
from testing_app.selectors.verdict_display import style_of
from testing_app.views import charts


@cache_anonymous_get
def matrix(request):
    variants, platforms = list_variants(), list_platforms()
    filters, errors = parse_matrix_filters(request.GET, variants=variants, platforms=platforms)
    heatmap_view = request.GET.get("view") == "heatmap"
    columns = request.GET.get("columns", "")
    if columns not in COLUMN_CHOICES:
        errors["columns"] = f"Unknown columns {columns!r}; choose 'all' or leave it out."
        columns = ""
    # The table shows all three axes (package x platform rows, release x variant columns); the
    # heatmap keeps one cell per package and release.
    if heatmap_view:
        result = get_results_matrix(
            filters=filters, page_number=request.GET.get("page"), per_page=settings.PAGE_SIZE
        )
        grid = None
    else:
        grid = result = get_results_grid(
            filters=filters,
            all_columns=columns == "all",
            page_number=request.GET.get("page"),
            per_page=settings.MATRIX_PAGE_SIZE,
        )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "testing_app/matrix.html",
        {
            "matrix": result,
            "grid": grid,
            "failing_only": filters.status == "failing",
            "filters": filters,
            "errors": errors,
            "variants": variants,
            "platforms": platforms,
            "status_choices": STATUS_CHOICES,
            "sort_choices": SORT_CHOICES,
            "heatmap_view": heatmap_view,
            "heatmap": charts.matrix_heatmap(result) if heatmap_view else "",
            "page_query": (query.urlencode() + "&") if query else "",
            "export_query": "&".join(f"{k}={v}" for k, v in filters.as_query().items()),
        },
        status=400 if errors else 200,
    )


@cache_anonymous_get
def matrix_cell(request, package, release, variant, platform):
    """One cell explained: its verdict's reason, its inputs and its history."""
    page = get_cell_page(package=package, release=release, variant=variant, platform=platform)
    return render(request, "testing_app/matrix_cell.html", {"cell": page})


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a streaming response."""

    def write(self, value):
        return value


def matrix_csv(request):
    """Every row matching the filters (not just one page), streamed as CSV."""
    filters, errors = parse_matrix_filters(
        request.GET, variants=list_variants(), platforms=list_platforms()
    )
    if errors:
        message = "\n".join(f"{field}: {text}" for field, text in errors.items())
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
    releases, rows = iter_matrix_rows(filters=filters)
    writer = csv.writer(_Echo())

    def lines():
        header = ["package", "latest_version", "status", "maintainers"]
        for release in releases:
            header += [f"pytorch {release.version}", f"pytorch {release.version} counts"]
        yield writer.writerow(header)
        for row in rows:
            line = [
                row.package.name,
                row.package.latest_version,
                row.package.status,
                "; ".join(m.github_handle or m.name for m in row.maintainers),
            ]
            for cell in row.cells:
                line += [
                    style_of(cell.worst).key,
                    " ".join(f"{verdict}={n}" for verdict, n in cell.counts),
                ]
            yield writer.writerow(line)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="conda-distro-matrix-{stamp}.csv"'
    return response
