"""Security review (issue 9): CSRF on every write URL, headers, planted secrets, hashed tokens,
the Jinja sandbox, oversized input and the recipe fetch's address policy."""

import json
import logging
import re
import socket

import plotly.graph_objects as go
import pytest
from django.test import Client

from packages_app.adapters.recipe import render_recipe
from packages_app.adapters.recipe_fetch import BlockedAddressError
from packages_app.adapters.recipe_fetch import RecipeFetchError
from packages_app.adapters.recipe_fetch import check_target
from packages_app.adapters.recipe_jinja import RecipeRenderError
from packages_app.models import Maintainer
from packages_app.models import PackageToken
from packages_app.models import Proposal
from packages_app.models import hash_token
from packages_app.services.tokens import create_package_token
from testing_app.models import EnrollmentToken
from testing_app.services.hosts import create_enrollment_token
from testing_app.services.notifications import get_maintainer_by_token
from testing_app.views import charts
from tests import factories
from tests.url_inventory import all_urls

pytestmark = pytest.mark.django_db

# Write URLs that deliberately take no CSRF token, and why. Anything else must refuse a POST
# without one, so a new exempt view fails this test until it is argued for here.
CSRF_EXEMPT = {
    # Token-authenticated CI endpoint: no cookies, so nothing for a forged request to ride on.
    "api-test-this-build",
    # RFC 8058 one-click unsubscribe: mail clients POST without a token; the capability token
    # in the URL is the authorisation and the only effect is muting notices.
    "testing:notification-unsubscribe",
}


@pytest.fixture
def superuser_csrf_client():
    user = factories.UserFactory(is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _is_csrf_refusal(response) -> bool:
    return response.status_code == 403 and b"CSRF" in response.content


def test_url_inventory_covers_the_write_urls_of_every_app():
    names = {url.name for url in all_urls()}
    for expected in (
        "proposals:propose",
        "proposals:review-decide",
        "packages:package-token-revoke",
        "testing:promotion-create",
        "testing:build-waive",
        "testing:job-retry",
        "admin:packages_app_package_changelist",
        "api:package-list",
    ):
        assert expected in names


def test_every_url_refuses_a_post_without_csrf_token(superuser_csrf_client):
    # Signed in as a superuser, so only the CSRF check can stop the request.
    not_refused = {}
    for url in all_urls():
        response = superuser_csrf_client.post(url.path, {"x": "1"})
        if not _is_csrf_refusal(response):
            not_refused[url.path] = (url.name, response.status_code)
    assert {name for name, _ in not_refused.values()} == CSRF_EXEMPT, not_refused


def test_forms_render_a_csrf_token(superuser_csrf_client):
    package = factories.PackageFactory()
    for path in ("/propose/", "/accounts/password/", "/releases/new/", "/promotions/"):
        content = superuser_csrf_client.get(path).content
        assert b"csrfmiddlewaretoken" in content, path
    tokens_page = superuser_csrf_client.get(f"/packages/{package.name}/tokens/")
    assert b"csrfmiddlewaretoken" in tokens_page.content


def test_security_headers_are_set(client, settings):
    response = client.get("/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    policy = response["Content-Security-Policy"]
    for directive in ("frame-ancestors 'none'", "form-action 'self'", "object-src 'none'"):
        assert directive in policy


def test_content_security_policy_allows_scripts_from_static_files_only(client):
    policy = client.get("/")["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["script-src"] == ["'self'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    # django-rq's staff dashboard alone runs the inline scripts of its own templates.
    rq_policy = client.get("/django-rq/")["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-inline'" in rq_policy


# A script element that runs (no src, not a JSON data block), or an event-handler attribute.
INLINE_SCRIPT = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>|<[a-z][^>]*\son[a-z]+=",
    re.IGNORECASE,
)


def test_no_page_carries_an_inline_script(client, reference_data):
    admin = factories.UserFactory(is_staff=True, is_superuser=True)
    for verdict in ("passed", "failed"):
        factories.JobFactory(status="finished", verdict=verdict)
    client.force_login(admin)
    checked = 0
    # The chart pages with data (matrix heatmap, trends, hosts, a release wave) and every URL.
    chart_pages = ["/matrix/?view=heatmap", "/trends/", "/hosts/", "/releases/2.5.1/"]
    for path in chart_pages:
        assert 'class="plotly-chart"' in client.get(path).content.decode(), path
    paths = list(chart_pages)
    for url in all_urls():
        if url.path.startswith(SKIPPED_IN_CRAWL) or url.name == "accounts:logout":
            continue
        paths.append(url.path)
    for path in paths:
        response = client.get(path)
        if response.streaming or not response["Content-Type"].startswith("text/html"):
            continue
        found = INLINE_SCRIPT.findall(response.content.decode())
        assert not found, (path, found)
        checked += 1
    assert checked > 40


def test_chart_data_blocks_cannot_be_closed_by_the_data():
    title = "</script><script>alert(1)</script> & <!--"
    fragment = str(charts._html(go.Figure(layout={"title": {"text": title}})))
    data = re.search(r'<script type="application/json" id="[^"]+">(.*?)</script>', fragment)[1]
    assert "<" not in data
    assert ">" not in data
    assert json.loads(data)["layout"]["title"]["text"] == title


def test_hsts_is_sent_on_https_when_debug_is_off(client, settings):
    assert not settings.DEBUG
    assert settings.SECURE_HSTS_SECONDS >= 31536000
    response = client.get("/", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


SKIPPED_IN_CRAWL = ("/django-rq/", "/admin/django_rq/", "/admin/r/")

PLANTED = {
    "ANACONDA_API_TOKEN": "planted-anaconda-secret-5f0c2e9d",
    "GITHUB_TOKEN": "ghp_planted0github0secret0a1b2c3d4e5",
    "SECRET_KEY": "planted-secret-key-9a8b7c6d5e4f3a2b1c0d-never-shown-anywhere",
}


def test_planted_secrets_never_appear_in_pages_api_or_logs(client, settings, monkeypatch, caplog):
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
        setattr(settings, name, value)
    admin = factories.UserFactory(is_staff=True, is_superuser=True)
    factories.JobFactory()
    factories.PackageTokenFactory()
    factories.ProposalFactory()
    client.force_login(admin)
    caplog.set_level(logging.DEBUG)
    seen = 0
    for url in all_urls():
        # The RQ dashboards read Redis, not the database; logout ends the session mid-crawl; the
        # admin's view-on-site shortcut needs a real content type.
        if url.path.startswith(SKIPPED_IN_CRAWL) or url.name == "accounts:logout":
            continue
        response = client.get(url.path)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode(errors="replace") + str(response.headers)
        for value in PLANTED.values():
            assert value not in text, url.name
        seen += response.status_code == 200
    # Also what the write paths log when they refuse bad input.
    client.post("/api/test-this-build/", {"token": PLANTED["GITHUB_TOKEN"][:-1]})
    assert seen > 40
    for value in PLANTED.values():
        assert value not in caplog.text


def test_package_tokens_are_stored_hashed():
    package = factories.PackageFactory()
    token, plain = create_package_token(package=package, name="ci", created_by=None)
    stored = PackageToken.objects.filter(pk=token.pk).values().get()
    assert plain not in str(stored)
    assert stored["token_hash"] == hash_token(plain)


def test_enrollment_tokens_are_stored_hashed():
    token, plain = create_enrollment_token(name="gpu-box")
    stored = EnrollmentToken.objects.filter(pk=token.pk).values().get()
    assert plain not in str(stored)


def test_proposal_status_tokens_are_stored_hashed():
    proposal = factories.ProposalFactory()
    stored = Proposal.objects.filter(pk=proposal.pk).values().get()
    assert "status_token" not in stored
    assert len(stored["status_token_hash"]) == 64


def test_maintainer_links_are_not_derivable_from_the_table(settings):
    maintainer = factories.MaintainerFactory()
    token = maintainer.unsubscribe_token
    stored = Maintainer.objects.filter(pk=maintainer.pk).values().get()
    assert token not in str(stored)
    assert token.split(".", 1)[1] not in str(stored)
    assert get_maintainer_by_token(token) == maintainer
    # The same row under another SECRET_KEY (a stolen dump without the key) gives another link.
    settings.SECRET_KEY = "another-secret-key-for-the-attacker-0123456789abcdef"
    assert Maintainer.objects.get(pk=maintainer.pk).unsubscribe_token != token
    assert get_maintainer_by_token(token) is None


@pytest.mark.parametrize(
    "token", ["", "1", "1.", "abc.def", "1." + "0" * 64, "x" * 10_000, "99999999999999999999.a"]
)
def test_malformed_maintainer_tokens_find_nobody(token):
    factories.MaintainerFactory()
    assert get_maintainer_by_token(token) is None


SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__['os'].system('id') }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ environ.__class__.__init__.__globals__ }}",
    "{{ 'x' * 1000000000 }}",
    "{{ 'x' | center(1000000000) }}",
    "{{ range(1000000000) | list }}",
    "{{ '%1000000000s' % 'x' }}",
]


def _recipe_with_license(expression: str) -> str:
    # The license is kept verbatim in the rendered recipe, so whatever leaks would show there.
    return f"package:\n  name: demo\n  version: '1.0'\nabout:\n  license: \"{expression}\"\n"


@pytest.mark.parametrize("expression", SANDBOX_ESCAPES)
def test_jinja_sandbox_escapes_fail(expression):
    try:
        recipe = render_recipe(_recipe_with_license(expression), filename="meta.yaml")
    except RecipeRenderError as exc:
        message = str(exc)
        assert "unsafe" in message or "huge" in message or "too many" in message, message
        return
    # Private attributes are undefined in the sandbox (rendered empty), never their values.
    assert recipe.license == "", recipe.license


def test_jinja_environ_exposes_nothing_of_the_server(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", PLANTED["GITHUB_TOKEN"])
    for expression in ("{{ environ }}", "{{ environ.GITHUB_TOKEN }}", "{{ environ.items() }}"):
        recipe = render_recipe(_recipe_with_license(expression), filename="meta.yaml")
        assert PLANTED["GITHUB_TOKEN"] not in str(recipe)


def _resolver(address: str):
    def resolve(host, port, type=0):  # noqa: A002 - the getaddrinfo keyword
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 - the address under test
        "::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
    ],
)
def test_recipe_fetch_refuses_private_and_loopback_targets(address):
    with pytest.raises(BlockedAddressError):
        check_target(
            "https://recipes.example.org/meta.yaml", allow_private=False, resolve=_resolver(address)
        )


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/x", "gopher://x", "https://:80/"]
)
def test_recipe_fetch_refuses_other_schemes_and_hostless_urls(url):
    with pytest.raises(RecipeFetchError):
        check_target(url, allow_private=False, resolve=_resolver("93.184.216.34"))


def test_oversized_request_bodies_are_refused(client, settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= 4 * 1024 * 1024
    huge = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = client.post("/propose/", {"package_name": "demo", "rationale": huge})
    assert response.status_code == 400
    assert Proposal.objects.count() == 0
    _, plain = create_package_token(package=factories.PackageFactory(), name="ci", created_by=None)
    api = client.post(
        "/api/test-this-build/",
        data=huge,
        content_type="application/json",
        headers={"Authorization": f"Bearer {plain}"},
    )
    assert api.status_code == 400


def test_oversized_form_fields_are_field_errors(client):
    response = client.post(
        "/propose/",
        {"package_name": "a" * 129, "summary": "s" * 301, "rationale": "r" * 5001},
    )
    assert response.status_code in (200, 400)
    errors = response.context["form"].errors
    for field in ("package_name", "summary", "rationale"):
        assert field in errors
    assert Proposal.objects.count() == 0


def test_too_many_form_fields_are_refused(client, settings):
    fields = {f"f{i}": "1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = client.post("/propose/", fields)
    assert response.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/builds/?version=%C2%A0%00",
        "/api/packages/?q=%00",
        "/packages/?q=a%00b",
        "/matrix/?q=%00",
    ],
)
def test_a_nul_character_in_a_query_parameter_is_a_400_not_a_500(client, path):
    """Found by the schema fuzzing: PostgreSQL text cannot hold NUL."""
    response = client.get(path)
    assert response.status_code == 400
    assert b"NUL" in response.content
