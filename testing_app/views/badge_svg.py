"""Shields-style SVG badges ("label | message"), drawn here: two rectangles and two texts."""

from django.utils.html import escape

# Approximate advance widths of Verdana 11px (what shields.io renders with), in pixels.
_NARROW = set("fijlrt.,:;!|'()[] ")
_WIDE = set("mwMW@%")
HEIGHT = 20
PADDING = 6
LABEL_COLOUR = "#555"


def text_width(text: str) -> int:
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 3.9
        elif char in _WIDE:
            width += 10.0
        elif char.isupper() or char.isdigit():
            width += 7.4
        else:
            width += 6.6
    return int(round(width))


def render_badge(*, label: str, message: str, colour: str) -> str:
    """An SVG badge; text is escaped, and a <title> carries both parts for screen readers."""
    left = text_width(label) + 2 * PADDING
    right = text_width(message) + 2 * PADDING
    total = left + right
    label_x, message_x = left / 2, left + right / 2
    title = escape(f"{label}: {message}")
    label, message = escape(label), escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{HEIGHT}" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="{HEIGHT}" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="{HEIGHT}" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{left}" width="{right}" height="{HEIGHT}" fill="{colour}"/>'
        f'<rect width="{total}" height="{HEIGHT}" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'font-size="11">'
        f'<text x="{label_x}" y="15" fill="#010101" fill-opacity=".3">{label}</text>'
        f'<text x="{label_x}" y="14">{label}</text>'
        f'<text x="{message_x}" y="15" fill="#010101" fill-opacity=".3">{message}</text>'
        f'<text x="{message_x}" y="14">{message}</text></g></svg>'
    )
