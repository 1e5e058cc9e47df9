"""Template helpers that show a verdict as symbol + text + colour class, and durations."""

from functools import lru_cache
from html import escape  # what django.utils.html.escape runs, without its lazy wrapper

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from distro_site.url_templates import matrix_cell_url
from distro_site.url_templates import package_url
from distro_site.url_templates import url_pieces
from testing_app.selectors.verdict_display import DISPLAY_ORDER
from testing_app.selectors.verdict_display import VERDICT_STYLES
from testing_app.selectors.verdict_display import style_of

register = template.Library()


@register.filter
def verdict_symbol(verdict: str) -> str:
    return style_of(verdict).symbol


@register.filter
def verdict_label(verdict: str) -> str:
    return style_of(verdict).label


@register.simple_tag
def verdict_chip(verdict: str, text: str = ""):
    """A chip that says the verdict in a symbol and in words, coloured by its class."""
    style = style_of(verdict)
    return format_html(
        '<span class="verdict v-{}" title="{}"><span aria-hidden="true">{}</span> {}</span>',
        style.key,
        style.label,
        style.symbol,
        text or style.label,
    )


@register.simple_tag
def verdict_legend_items():
    return [VERDICT_STYLES[key] for key in DISPLAY_ORDER]


@register.filter
def duration(seconds) -> str:
    """Seconds as "1 h 02 min", "3 min 12 s" or "4.5 s"; empty input gives an em dash.

    Under a minute to the tenth of a second: install checks and small tests take well under
    one, and rounding to whole seconds showed every one of them as "0 s"."""
    if seconds in (None, ""):
        return "—"
    if float(seconds) < 59.95:
        return f"{float(seconds):.1f} s"
    seconds = int(round(float(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@lru_cache(maxsize=64)
def _escaped_style(verdict: str) -> tuple[str, str, str]:
    """(key, label, symbol) of a verdict's style, HTML-escaped once."""
    style = style_of(verdict)
    return escape(style.key), escape(style.label), escape(style.symbol)


@lru_cache(maxsize=4096)
def _matrix_cell_parts(cell) -> tuple[str, str]:
    """A matrix cell's HTML before and after its link target. A page repeats few distinct
    verdict spreads, so each is formatted once per process."""
    key, label, symbol = _escaped_style(cell.worst)
    title = ", ".join(f"{n} {style_of(v).label}" for v, n in cell.counts) or "no result yet"
    count = f" <small>{cell.worst_count}/{cell.total}</small>" if cell.total else ""
    return (
        f'<td class="cell v-{key}" data-verdict="{key}" title="{escape(title)}"><a href="',
        f'"><span class="sym" aria-hidden="true">{symbol}</span> {label}{count}</a></td>',
    )


@register.simple_tag
def matrix_cells(row):
    """A matrix row's cells, rendered in Python from pre-escaped parts: 500 cells a page
    through template tags or format_html cost more than every query of the page together
    (bench/matrix_scale.py, bench/load_test.py)."""
    url = escape(package_url(row.package.name) + "#test-matrix")
    return mark_safe(  # noqa: S308 (every part is escaped above)
        "".join(before + url + after for before, after in map(_matrix_cell_parts, row.cells))
    )


def _variant_cell_html(cell, job_head: str, job_tail: str, cell_url: str) -> str:
    """One variant's chip and its last tests; job links are job_head + id + job_tail (escaped).
    With cell_url the chip opens the cell's page (reason, inputs, tests and install checks)."""
    key, label, symbol = _escaped_style(cell.verdict)
    name = escape(cell.variant + (f" py{cell.python}" if cell.python else ""))
    before = (
        f" (before: {_escaped_style(cell.previous_verdict)[1]})" if cell.previous_verdict else ""
    )
    reason = f" — {escape(cell.detail)}" if cell.detail else ""
    inner = (
        f'<span aria-hidden="true">{symbol}</span> {name} '
        f'<span class="visually-hidden">{label}</span>'
    )
    if cell_url:
        chip = (
            f'<a class="verdict v-{key}" href="{escape(cell_url)}" '
            f'title="{name}: {label}{before}{reason}">{inner}</a>'
        )
    elif cell.latest_job_id:
        chip = (
            f'<a class="verdict v-{key}" href="{job_head}{int(cell.latest_job_id)}{job_tail}" '
            f'title="{name}: {label}{before}{reason}">{inner}</a>'
        )
    else:
        chip = (
            f'<span class="verdict v-{key}" title="{label}, no job recorded{reason}">{inner}</span>'
        )
    history = "".join(
        f'<a class="h v-{h_key}" href="{job_head}{int(entry.job_id)}{job_tail}" title="test job '
        f'{entry.job_id}: {h_label}, {entry.created_at.strftime("%Y-%m-%d %H:%M")}">'
        f"{h_symbol}</a>"
        for entry in cell.history
        for h_key, h_label, h_symbol in (_escaped_style(entry.verdict),)
    )
    if history:
        history = f'<span class="history" aria-label="last tests">{history}</span>'
    return f'<div class="variant-cell">{chip}{history}</div>'


@register.simple_tag
def variant_cells(cells, package: str = ""):
    """One package-matrix cell: a chip per variant (latest verdict, link to its cell page, or to
    its latest job without a package name) and that cell's last tests. Rendered from
    pre-escaped parts for the same reason as matrix_cells (a package page has ~200 of them with
    ~1,000 job links)."""
    if not cells:
        return format_html('<span class="muted" title="{}">·</span>', "no result for this release")
    job_head, job_tail = map(escape, url_pieces("testing:job-detail", "pk"))
    html = "".join(
        _variant_cell_html(
            cell,
            job_head,
            job_tail,
            matrix_cell_url(package, cell.release, cell.variant, cell.platform) if package else "",
        )
        for cell in cells
    )
    return mark_safe(html)  # noqa: S308 (every part is escaped in _variant_cell_html)
