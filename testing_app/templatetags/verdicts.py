"""Template helpers that show a verdict as symbol + text + colour class, and durations."""

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.html import format_html_join

from testing_app.verdict_display import DISPLAY_ORDER
from testing_app.verdict_display import VERDICT_STYLES
from testing_app.verdict_display import style_of

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
    """Seconds as "1 h 02 min", "3 min 12 s" or "45 s"; empty input gives an em dash."""
    if seconds in (None, ""):
        return "—"
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


@register.simple_tag
def matrix_cells(row):
    """A matrix row's cells, rendered in Python: 500 cells per page through template tags cost
    more than every query of the page together (bench/matrix_scale.py)."""
    url = row.package.get_absolute_url() + "#test-matrix"
    cells = []
    for cell in row.cells:
        style = style_of(cell.worst)
        title = ", ".join(f"{n} {style_of(v).label}" for v, n in cell.counts) or "no result yet"
        count = (
            format_html(" <small>{}/{}</small>", cell.worst_count, cell.total) if cell.total else ""
        )
        cells.append(
            format_html(
                '<td class="cell v-{key}" data-verdict="{key}" title="{title}"><a href="{url}">'
                '<span class="sym" aria-hidden="true">{symbol}</span> {label}{count}</a></td>',
                key=style.key,
                title=title,
                url=url,
                symbol=style.symbol,
                label=style.label,
                count=count,
            )
        )
    return format_html_join("", "{}", ((cell,) for cell in cells))


def _variant_cell_html(cell):
    style = style_of(cell.verdict)
    name = cell.variant + (f" py{cell.python}" if cell.python else "")
    before = f" (before: {style_of(cell.previous_verdict).label})" if cell.previous_verdict else ""
    inner = format_html(
        '<span aria-hidden="true">{}</span> {} <span class="visually-hidden">{}</span>',
        style.symbol,
        name,
        style.label,
    )
    if cell.latest_job_id:
        chip = format_html(
            '<a class="verdict v-{}" href="{}" title="{}: {}{}">{}</a>',
            style.key,
            reverse("testing:job-detail", kwargs={"pk": cell.latest_job_id}),
            name,
            style.label,
            before,
            inner,
        )
    else:
        chip = format_html(
            '<span class="verdict v-{}" title="{}, no job recorded">{}</span>',
            style.key,
            style.label,
            inner,
        )
    history = format_html_join(
        "",
        '<a class="h v-{}" href="{}" title="job {}: {}, {}">{}</a>',
        (
            (
                style_of(entry.verdict).key,
                reverse("testing:job-detail", kwargs={"pk": entry.job_id}),
                entry.job_id,
                style_of(entry.verdict).label,
                entry.created_at.strftime("%Y-%m-%d %H:%M"),
                style_of(entry.verdict).symbol,
            )
            for entry in cell.history
        ),
    )
    if history:
        history = format_html('<span class="history" aria-label="last jobs">{}</span>', history)
    return format_html('<div class="variant-cell">{}{}</div>', chip, history)


@register.simple_tag
def variant_cells(cells):
    """One package-matrix cell: a chip per variant (latest verdict, link to its latest job) and
    that cell's last jobs. Rendered in Python for the same reason as matrix_cells."""
    if not cells:
        return format_html('<span class="muted" title="{}">·</span>', "no result for this release")
    return format_html_join("", "{}", ((_variant_cell_html(cell),) for cell in cells))
