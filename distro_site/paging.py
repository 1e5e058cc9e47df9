"""Pagination helpers shared by list pages: filters live in the query string (permalinks)."""

from django.conf import settings
from django.core.paginator import Page
from django.core.paginator import Paginator


def paginate(request, items, *, per_page: int | None = None) -> tuple[Page, str]:
    """The requested page and the query string (minus `page`) to carry into page links."""
    page = Paginator(items, per_page or settings.PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return page, (query.urlencode() + "&") if query else ""
