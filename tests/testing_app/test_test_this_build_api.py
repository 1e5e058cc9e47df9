"""POST /api/test-this-build/ with per-package tokens, and the maintainers' tokens page."""

import json

import pytest
from django.test import Client

from packages_app.models import Build
from packages_app.models import Package
from packages_app.models import PackageToken
from packages_app.services.sync import sync_channels
from packages_app.services.tokens import create_package_token
from packages_app.services.tokens import revoke_package_token
from testing_app.models import Job
from testing_app.models import Run
from tests import factories
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.planning_world import sample_world

pytestmark = pytest.mark.django_db
URL = "/api/test-this-build/"
PASSES = "sample-passes-1.0.0-sample_0.conda"


@pytest.fixture
def world(tmp_path, settings):
    settings.PUBLIC_READ = False  # the endpoint must not depend on public reads
    world = sample_world(tmp_path)
    sync_channels(channels=[world.channel], plan=False)
    return world


@pytest.fixture
def token(world):
    _, plain = create_package_token(
        package=Package.objects.get(name="sample-passes"), name="github-ci"
    )
    return plain


def _post(token: str | None, body, *, raw: bytes | None = None):
    client = Client(enforce_csrf_checks=True)  # no session, no CSRF token: like a CI job
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", **headers)


def test_valid_token_plans_the_build_and_answers_with_the_run(
    world, token, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(token, {"filename": PASSES, "subdir": SUBDIR})

    assert response.status_code == 201, response.content
    answer = response.json()
    run = Run.objects.get(pk=answer["run"])
    assert answer["run_url"] == f"http://testserver/runs/{run.pk}/"
    assert (run.trigger, run.trigger_build.filename) == ("manual", PASSES)
    assert run.trigger_detail == "API token 'github-ci' of sample-passes"
    assert answer["install_checks"] == Job.objects.filter(run=run).count() == 2
    assert answer["not_applicable"] > 0
    token_row = PackageToken.objects.get()
    assert token_row.last_used_at is not None
    assert token_row.token_hash != token  # only the hash is stored

    again = _post(token, {"filename": PASSES}).json()
    assert (again["install_checks"], again["not_applicable"]) == (0, 0)
    assert again["already_decided"] == answer["install_checks"] + answer["not_applicable"]
    forced = _post(token, {"filename": PASSES, "force": True}).json()
    assert forced["install_checks"] == 2


@pytest.mark.parametrize(
    ("header", "code"),
    [(None, "invalid_token"), ("cdt_not-a-token", "invalid_token")],
)
def test_missing_or_unknown_token_is_401(world, header, code):
    response = _post(header, {"filename": PASSES})
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert not Run.objects.exists()


def test_revoked_token_is_401(world, token):
    revoke_package_token(token=PackageToken.objects.get())
    response = _post(token, {"filename": PASSES})
    assert response.status_code == 401
    assert "was revoked" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "raw", "code", "field"),
    [
        (None, b"{not json", "malformed", None),
        (None, b"[1, 2]", "malformed", None),
        ({}, None, "invalid", "filename"),
        ({"filename": ""}, None, "invalid", "filename"),
        ({"filename": PASSES, "force": "yes"}, None, "invalid", "force"),
        ({"filename": PASSES, "extra": 1}, None, "invalid", "extra"),
    ],
)
def test_malformed_body_is_400_with_field_errors(world, token, body, raw, code, field):
    response = _post(token, body, raw=raw)
    assert response.status_code == 400
    assert response.json()["code"] == code
    if field:
        assert field in response.json()["errors"]
    assert not Run.objects.exists()


def test_unknown_build_is_404_and_another_packages_build_is_403(world, token):
    missing = _post(token, {"filename": "sample-passes-9.9.9-sample_0.conda"})
    other = _post(token, {"filename": "sample-fails-on-torch-2-5-1.0.0-sample_0.conda"})

    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_build")
    assert (other.status_code, other.json()["code"]) == (403, "wrong_package")
    assert not Run.objects.exists()


def test_build_uploaded_after_the_last_sync_is_found_by_reading_staging_again(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    world = sample_world(tmp_path)  # staged on disk, never synced
    _, plain = create_package_token(package=Package.objects.get(name="sample-passes"), name="ci")

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(plain, {"filename": PASSES})

    assert response.status_code == 201
    assert Build.objects.filter(channel=world.channel).count() == 7
    assert Run.objects.count() == 1  # the read imported only; this request planned


def test_get_is_405(world):
    response = Client().get(URL)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def _maintainer_client(package: Package) -> tuple[Client, object]:
    user = factories.UserFactory()
    package.maintainers.add(factories.MaintainerFactory(user=user))
    client = Client()
    client.force_login(user)
    return client, user


def test_maintainer_creates_sees_once_and_revokes_a_token(world):
    package = Package.objects.get(name="sample-passes")
    client, _ = _maintainer_client(package)
    page = f"/packages/{package.name}/tokens/"

    created = client.post(page, {"name": "github-ci"})
    listing = client.get(page)
    duplicate = client.post(page, {"name": "github-ci"})
    token = PackageToken.objects.get(package=package)
    revoked = client.post(f"{page}{token.pk}/revoke/")

    assert created.status_code == 200
    plain = created.context["new_token"]
    assert plain.startswith("cdt_")
    assert plain in created.content.decode()
    assert plain not in listing.content.decode()  # shown once only
    assert duplicate.status_code == 400
    assert "already has an active token" in duplicate.content.decode()
    assert revoked.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token.created_by.user is not None
    assert _post(plain, {"filename": PASSES}).status_code == 401


def test_tokens_page_is_for_the_packages_maintainers_only(world):
    package = Package.objects.get(name="sample-passes")
    stranger = Client()
    stranger.force_login(factories.UserFactory())
    other_maintainer, _ = _maintainer_client(Package.objects.get(name="sample-unsatisfiable"))

    assert Client().get(f"/packages/{package.name}/tokens/").status_code == 302  # sign in first
    assert stranger.get(f"/packages/{package.name}/tokens/").status_code == 403
    assert (
        other_maintainer.post(f"/packages/{package.name}/tokens/", {"name": "x"}).status_code == 403
    )
    assert not PackageToken.objects.exists()
