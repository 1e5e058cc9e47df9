"""A short-lived cache of whole read pages for anonymous readers (settings.PAGE_CACHE_SECONDS).

The matrix, the package pages and the API's lists are what most readers load, most often, and
what they show changes when a job finishes, which takes minutes. Serving an anonymous reader a
copy rendered at most PAGE_CACHE_SECONDS ago (10 by default) saves rendering the same page for
every reader: bench/load_test.py measured ~25 ms of CPU for a matrix page and ~1 ms for a copy.

What is never cached, or never served from the cache:
- anything but GET; any response but a plain 200 (errors, redirects, 304s, streams);
- signed-in users, and any request carrying a session or a messages cookie (a page may show
  that person's messages or links): they always get a freshly rendered page;
- a response that sets a cookie or whose rendering used a CSRF token (a form that posts).

The copy is keyed by the absolute URL (scheme, host, path, query) and the Accept header (the
API renders JSON or HTML from it), stored in the "pages" cache (Redis, shared by every web
process; memory in the demo without Redis). A copy older than PAGE_CACHE_SECONDS is never
served, whatever the cache backend still holds; responses served from it carry an `Age`
header. When the cache cannot be reached, pages are rendered as if it were off (logged).
Redis holds at most the distinct URLs read within PAGE_CACHE_SECONDS: at 100 requests/s of
~130 KB pages, under 130 MB, and each copy expires with its bound.
"""

import hashlib
import logging
import time
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.cache import caches
from django.http import HttpResponse
from django.utils.cache import get_conditional_response
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CACHE_ALIAS = "pages"
# Request cookies that mean "this reader may see something personal on the page".
PERSONAL_COOKIES = (settings.SESSION_COOKIE_NAME, CookieStorage.cookie_name)


@dataclass(frozen=True)
class CachedPage:
    content: bytes
    headers: dict[str, str]
    stored_at: float


def _now() -> float:
    return time.time()


def _key(request) -> str:
    identity = f"{request.build_absolute_uri()}\n{request.headers.get('Accept', '')}"
    return "page:" + hashlib.sha256(identity.encode()).hexdigest()


def _may_use_cache(request) -> bool:
    return (
        settings.PAGE_CACHE_SECONDS > 0
        and request.method == "GET"
        and not any(name in request.COOKIES for name in PERSONAL_COOKIES)
        and not request.user.is_authenticated
    )


def _may_store(request, response) -> bool:
    return (
        response.status_code == 200
        and not response.streaming
        and not response.cookies
        and not request.META.get("CSRF_COOKIE_NEEDS_UPDATE")
    )


def _serve(request, page: CachedPage) -> HttpResponse:
    response = HttpResponse(page.content, headers=page.headers)
    response["Age"] = str(max(0, int(_now() - page.stored_at)))
    if "ETag" in response:
        # The API's conditional GET (testing_app/api/conditional.py) still answers 304.
        return get_conditional_response(request, etag=response["ETag"], response=response)
    return response


def cache_anonymous_get(view):
    """Serve anonymous GETs of `view` from a copy at most PAGE_CACHE_SECONDS old."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not _may_use_cache(request):
            return view(request, *args, **kwargs)
        cache, key, max_age = caches[CACHE_ALIAS], _key(request), settings.PAGE_CACHE_SECONDS
        try:
            page = cache.get(key)
        except RedisError as exc:
            logger.warning("page cache unreachable, rendering %s: %s", request.path, exc)
            return view(request, *args, **kwargs)
        if page is not None and _now() - page.stored_at < max_age:
            return _serve(request, page)
        response = view(request, *args, **kwargs)
        if hasattr(response, "render") and not response.is_rendered:
            response.render()
        if _may_store(request, response):
            headers = {name: value for name, value in response.headers.items()}
            try:
                cache.set(key, CachedPage(response.content, headers, _now()), timeout=max_age)
            except RedisError as exc:
                logger.warning("page cache unreachable, %s not stored: %s", request.path, exc)
        return response

    return wrapper
