"""SVG badges per package and per package x PyTorch release, for READMEs."""

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from testing_app.selectors.badges import get_badge_status
from testing_app.views.badge_svg import render_badge

# Short enough that a README shows a fresh verdict, long enough that image proxies cache it.
BADGE_MAX_AGE_S = 300


def _svg(body: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(body, content_type="image/svg+xml; charset=utf-8", status=status)
    response["Cache-Control"] = f"public, max-age={BADGE_MAX_AGE_S}"
    return response


@require_GET
def package_badge(request, name, torch_version=""):
    badge = get_badge_status(name=name, torch_version=torch_version)
    body = render_badge(label=badge.label, message=badge.message, colour=badge.colour)
    return _svg(body, status=200 if badge.found else 404)
