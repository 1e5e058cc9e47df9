"""The three-axis matrix's cells, rendered in Python from pre-escaped parts (a design-scale page
has ~12,000 of them: through template tags they would cost more than every query together)."""

from functools import lru_cache
from html import escape
from urllib.parse import quote

from django import template
from django.utils.safestring import mark_safe

from distro_site.url_templates import matrix_cell_prefix
from testing_app.verdict_display import style_of

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
