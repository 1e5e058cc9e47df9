"""Gate statuses shown as symbol + word + colour class (colour is never the only signal)."""

from django import template
from django.utils.html import format_html

register = template.Library()

GATE_STYLES = {
    "pass": ("✓", "passes"),
    "waived": ("≈", "waived"),
    "waiting": ("…", "waiting"),
    "fail": ("✗", "fails"),
    "promotable": ("✓", "promotable"),
    "blocked": ("✗", "blocked"),
    "skip": ("–", "skipped"),
}


@register.simple_tag
def gate_chip(status: str, text: str = ""):
    symbol, label = GATE_STYLES.get(status, ("·", status))
    return format_html(
        '<span class="gate gate-{}" data-gate="{}"><span aria-hidden="true">{}</span> {}</span>',
        status,
        status,
        symbol,
        text or label,
    )
