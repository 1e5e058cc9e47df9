"""The page cache for anonymous readers (distro_site/page_cache.py): what it serves, for how
long, and to whom it never serves a copy."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from distro_site import page_cache
from distro_site.page_cache import cache_anonymous_get
from tests import factories
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_package

pytestmark = pytest.mark.django_db

BOUND_S = 10


@pytest.fixture(autouse=True)
def page_cache_on(settings):
    settings.PAGE_CACHE_SECONDS = BOUND_S
    caches[page_cache.CACHE_ALIAS].clear()
    yield
    caches[page_cache.CACHE_ALIAS].clear()


@pytest.fixture
def axes():
    axes = make_axes()
    make_package("kornia", axes)
    return axes


def test_anonymous_reader_gets_the_copy_until_it_is_older_than_the_bound(client, axes, monkeypatch):
    stored_at = page_cache._now()
    monkeypatch.setattr(page_cache, "_now", lambda: stored_at)
    first = client.get("/matrix/")
    assert first.status_code == 200
    assert "Age" not in first
    make_package("torchmetrics", axes)

    monkeypatch.setattr(page_cache, "_now", lambda: stored_at + BOUND_S - 1)
    with CaptureQueriesContext(connection) as queries:
        copy = client.get("/matrix/")
    assert copy.content == first.content
    assert b"torchmetrics" not in copy.content
    assert copy["Age"] == str(BOUND_S - 1)
    # Served without running the view (ATOMIC_REQUESTS still opens its savepoint around it).
    assert [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]] == []
    assert copy["X-Frame-Options"] == "DENY"  # middleware headers are still added

    monkeypatch.setattr(page_cache, "_now", lambda: stored_at + BOUND_S)
    fresh = client.get("/matrix/")
    assert b"torchmetrics" in fresh.content
    assert "Age" not in fresh


def test_each_query_string_is_its_own_page(client, axes):
    client.get("/matrix/")
    other = client.get("/matrix/?q=nothing-matches")
    assert "Age" not in other
    assert b"No package matches these filters." in other.content


def test_signed_in_user_never_gets_a_copy_and_leaves_none(client, axes):
    client.get("/matrix/")  # an anonymous copy exists
    make_package("torchmetrics", axes)
    client.force_login(factories.UserFactory())

    signed_in = client.get("/matrix/")
    assert b"torchmetrics" in signed_in.content
    assert "Age" not in signed_in
    client.logout()
    caches[page_cache.CACHE_ALIAS].clear()

    client.force_login(factories.UserFactory())
    client.get("/packages/kornia/")
    client.logout()
    anonymous = client.get("/packages/kornia/")
    assert "Age" not in anonymous  # the signed-in rendering was not stored
    assert b"Log out" not in anonymous.content


def test_reader_with_pending_messages_gets_a_fresh_page(client, axes):
    client.get("/matrix/")
    make_package("torchmetrics", axes)
    client.cookies["messages"] = "pending"
    page = client.get("/matrix/")
    assert b"torchmetrics" in page.content
    assert "Age" not in page


def test_errors_are_not_stored(client, axes):
    assert client.get("/matrix/?status=bogus").status_code == 400
    again = client.get("/matrix/?status=bogus")
    assert again.status_code == 400
    assert "Age" not in again


def test_api_copy_keeps_its_etag_and_answers_conditional_get(client, axes):
    first = client.get("/api/matrix/")
    copy = client.get("/api/matrix/")
    assert "Age" in copy
    assert copy["ETag"] == first["ETag"]
    assert copy.json() == first.json()
    not_modified = client.get("/api/matrix/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert not_modified.status_code == 304


def test_json_and_browsable_renderings_are_kept_apart(client, axes):
    as_json = client.get("/api/packages/", HTTP_ACCEPT="application/json")
    as_html = client.get("/api/packages/", HTTP_ACCEPT="text/html")
    assert as_json["Content-Type"].startswith("application/json")
    assert as_html["Content-Type"].startswith("text/html")
    assert "Age" not in as_html
    assert client.get("/api/packages/", HTTP_ACCEPT="application/json").json() == as_json.json()


def _counting_view(body):
    calls = []

    def view(request):
        calls.append(request.path)
        return body(request)

    return cache_anonymous_get(view), calls


def _anonymous_get(path="/form/"):
    request = RequestFactory().get(path)
    request.user = AnonymousUser()
    return request


def test_page_with_a_csrf_token_is_never_stored():
    def form(request):
        return HttpResponse(f'<input name="csrfmiddlewaretoken" value="{get_token(request)}">')

    view, calls = _counting_view(form)
    view(_anonymous_get())
    view(_anonymous_get())
    assert len(calls) == 2


def test_response_that_sets_a_cookie_is_never_stored():
    def with_cookie(request):
        response = HttpResponse("hello")
        response.set_cookie("seen", "1")
        return response

    view, calls = _counting_view(with_cookie)
    view(_anonymous_get())
    view(_anonymous_get())
    assert len(calls) == 2


def test_plain_page_is_rendered_once_within_the_bound():
    view, calls = _counting_view(lambda request: HttpResponse("hello"))
    assert view(_anonymous_get()).content == b"hello"
    assert view(_anonymous_get()).content == b"hello"
    assert len(calls) == 1


def test_page_cache_off_renders_every_time(settings):
    settings.PAGE_CACHE_SECONDS = 0
    view, calls = _counting_view(lambda request: HttpResponse("hello"))
    view(_anonymous_get())
    view(_anonymous_get())
    assert len(calls) == 2


def test_unreachable_cache_renders_the_page_and_says_so(client, axes, monkeypatch, caplog):
    nothing_listens = RedisCache("redis://127.0.0.1:1/0", {})
    monkeypatch.setattr(page_cache, "caches", {page_cache.CACHE_ALIAS: nothing_listens})
    page = client.get("/matrix/")
    assert page.status_code == 200
    assert b"kornia" in page.content
    assert "page cache unreachable" in caplog.text
