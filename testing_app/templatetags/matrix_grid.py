"""The three-axis matrix's cells, rendered in Python from pre-escaped parts (a design-scale page
has ~12,000 of them: through template tags they would cost more than every query together)."""

from functools import lru_cache
from html import escape
from urllib.parse import quote

from django import template
from django.utils.safestring import mark_safe

from distro_site.url_templates import matrix_cell_prefix
from distro_site.url_templates import package_url
from testing_app.selectors.verdict_display import style_of

register = template.Library()


@lru_cache(maxsize=4096)
def _cell_parts(cell) -> tuple[str, str]:
    """A grid cell's HTML before and after its link target; a page repeats few distinct cells."""
    style = style_of(cell.summary.worst)
    key, label, symbol = escape(style.key), escape(style.label), escape(style.symbol)
    counts = ", ".join(f"{n} {style_of(v).label}" for v, n in cell.summary.counts)
    title = counts + (f" — {cell.reason}" if cell.reason else "")
    count = (
        f"<small>{cell.summary.worst_count}/{cell.summary.total}</small>"
        if cell.summary.total > 1
        else ""
    )
    return (
        f'<td class="cell v-{key}" data-verdict="{key}" title="{escape(title)}"><a href="',
        f'"><span class="sym" aria-hidden="true">{symbol}</span>'
        f'<span class="visually-hidden">{label}</span>{count}</a></td>',
    )


MISSING_CELL = (
    '<td class="cell v-missing" title="no result yet"><span aria-hidden="true">·</span></td>'
)
BLANK_CELL = '<td class="cell blank"></td>'


@register.simple_tag
def grid_cells(row, columns, failing_only=False):
    """A grid row's cells; each links to its cell page (reason, inputs, history). quote() leaves
    only characters that are safe in HTML, so the URL parts need no escaping."""
    prefix = escape(matrix_cell_prefix()) + quote(row.package.name, safe="") + "/"
    platform = quote(row.platform, safe="") + "/"
    empty = BLANK_CELL if failing_only else MISSING_CELL
    parts = []
    for column, cell in zip(columns, row.cells, strict=True):
        if cell is None:
            html = empty
        else:
            before, after = _cell_parts(cell)
            html = before + prefix + column.path + platform + after
        if column.first_of_release:
            html = html.replace('<td class="cell ', '<td class="cell group-start ', 1)
        parts.append(html)
    return mark_safe("".join(parts))  # noqa: S308 (every part is escaped or quoted above)


@register.filter
def variant_short(name: str) -> str:
    """A variant's name in two short lines ("cuda" over "12.4"), so that a sub-column stays
    about as narrow as its cells."""
    kind = name.rstrip("0123456789.")
    version = name[len(kind) :]
    if not kind or not version:
        return escape(name)
    return mark_safe(f"{escape(kind)}<br>{escape(version)}")  # noqa: S308 (escaped)


def _package_header(row) -> str:
    """The package's cell, spanning its platform rows: name, version, status, maintainers."""
    package = row.package
    status = (
        f' <span class="status status-{escape(package.status)}">'
        f"{escape(str(package.get_status_display()))}</span>"
        if package.status != "active"
        else ""
    )
    people = ", ".join(escape(m.github_handle or m.name) for m in row.maintainers)
    return (
        f'<th scope="rowgroup" rowspan="{int(row.package_rowspan)}" class="pkg">'
        f'<a href="{escape(package_url(package.name))}">{escape(package.name)}</a> '
        f'<span class="mono small muted">{escape(package.latest_version or "")}</span>{status}'
        f'<br><small class="muted">{people or "no maintainer"}</small></th>'
    )


@register.simple_tag
def grid_rows(grid, failing_only=False):
    """The grid's body in Python: through template tags, its ~200 rows cost more than the
    page's queries (bench/matrix_scale.py)."""
    note_span = len(grid.columns) + 1
    parts = []
    for row in grid.rows:
        start = ' class="package-start"' if row.package_rowspan else ""
        parts.append(
            f'<tr data-package="{escape(row.package.name)}" '
            f'data-platform="{escape(row.platform)}"{start}>'
        )
        if row.package_rowspan:
            parts.append(_package_header(row))
        if row.platform:
            parts.append(f'<th scope="row" class="plat mono small">{escape(row.platform)}</th>')
            parts.append(grid_cells(row, grid.columns, failing_only))
        else:
            parts.append(
                f'<td class="plat muted">—</td>'
                f'<td class="note muted" colspan="{note_span}">{escape(row.note)}</td>'
            )
        parts.append("</tr>")
    return mark_safe("".join(parts))  # noqa: S308 (every value is escaped above)
