"""Trusted publishing (issue 21): GitHub Actions OIDC tokens on POST /api/test-this-build/.

Tokens are signed with RSA keys generated here; GitHub's JWKS endpoint is served by `responses`
with those public keys, shaped as https://token.actions.githubusercontent.com/.well-known/jwks
answers (kty, alg, use, kid, n, e). The claims are those GitHub documents for Actions OIDC tokens.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.serialization import PublicFormat
from django.test import Client
from jwt.algorithms import RSAAlgorithm

from packages_app.models import Package
from packages_app.models import TrustedPublisher
from packages_app.models import UsedPublishingToken
from packages_app.services.sync import sync_channels
from packages_app.services.trusted_publishers import register_trusted_publisher
from testing_app.adapters import github_oidc
from testing_app.models import Run
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.planning_world import sample_world

pytestmark = pytest.mark.django_db
URL = "/api/test-this-build/"
PASSES = "sample-passes-1.0.0-sample_0.conda"
AUDIENCE = "https://distro.example.org"
REPOSITORY = "sample-org/sample-passes"
WORKFLOW_REF = f"{REPOSITORY}/.github/workflows/release.yml@refs/tags/v1.0.0"


class GitHubKeys:
    """RSA keys standing in for GitHub's, and the JWKS reply that publishes them."""

    def __init__(self):
        self.private = {}
        self.published = []
        self.fetches = 0
        self.down = False  # GitHub unreachable: its JWKS endpoint answers 503

    def new_key(self, kid: str, *, publish: bool = True):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private[kid] = key
        if publish:
            self.publish(kid)
        return key

    def publish(self, kid: str):
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private[kid].public_key()))
        self.published.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})

    def jwks_reply(self, request):
        self.fetches += 1
        if self.down:
            return 503, {}, "Service Unavailable"
        return 200, {"Content-Type": "application/json"}, json.dumps({"keys": self.published})

    def sign(self, claims: dict, kid: str = "key-1") -> str:
        return jwt.encode(claims, self.private[kid], algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hand_made_jwt(header: dict, payload: dict, hmac_key: bytes) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@dataclass(frozen=True)
class FromNow:
    """A time claim this many seconds from the moment the token is made. Parameters are made at
    collection, and a test may run many minutes later (a long or parallel run): an absolute
    `nbf` ten minutes ahead would by then be in the past."""

    seconds: int


def claims(**overrides) -> dict:
    now = int(time.time())
    overrides = {
        key: now + value.seconds if isinstance(value, FromNow) else value
        for key, value in overrides.items()
    }
    base = {
        "jti": str(uuid.uuid4()),
        "sub": f"repo:{REPOSITORY}:environment:release",
        "aud": AUDIENCE,
        "ref": "refs/tags/v1.0.0",
        "repository": REPOSITORY,
        "repository_id": "123456789",
        "repository_owner": "sample-org",
        "repository_owner_id": "987654",
        "run_id": "4242",
        "run_attempt": "1",
        "environment": "release",
        "workflow": "release",
        "workflow_ref": WORKFLOW_REF,
        "job_workflow_ref": WORKFLOW_REF,
        "event_name": "push",
        "iss": "https://token.actions.githubusercontent.com",
        "nbf": now - 5,
        "iat": now - 5,
        "exp": now + 300,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


@pytest.fixture
def github(settings):
    settings.TRUSTED_PUBLISHING_ENABLED = True
    settings.TRUSTED_PUBLISHING_AUDIENCE = AUDIENCE
    settings.TRUSTED_PUBLISHING_JWKS_MIN_REFRESH_S = 0
    github_oidc.forget_cached_keys()
    keys = GitHubKeys()
    keys.new_key("key-1")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, github_oidc.GITHUB_ACTIONS_JWKS_URL, keys.jwks_reply)
        yield keys
    github_oidc.forget_cached_keys()


@pytest.fixture
def world(tmp_path, settings):
    settings.PUBLIC_READ = False
    world = sample_world(tmp_path)
    sync_channels(channels=[world.channel], plan=False)
    return world


@pytest.fixture
def publisher(world):
    return register_trusted_publisher(
        package=Package.objects.get(name="sample-passes"),
        repository=REPOSITORY,
        workflow="release.yml",
        environment="release",
    )


def _post(token: str, body=None):
    client = Client(enforce_csrf_checks=True)
    return client.post(
        URL,
        data=json.dumps(body or {"filename": PASSES, "subdir": SUBDIR}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_matching_token_plans_the_build_and_records_the_publisher(
    github, publisher, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(github.sign(claims()))

    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["run"])
    assert run.trigger_build.filename == PASSES
    assert WORKFLOW_REF in run.trigger_detail
    assert "sample-passes" in run.trigger_detail
    publisher.refresh_from_db()
    assert publisher.last_used_at is not None
    assert publisher.repository_id == "123456789"  # pinned at first use
    assert UsedPublishingToken.objects.count() == 1


def test_handles_and_names_compare_case_insensitively(github, publisher):
    ref = "Sample-Org/Sample-Passes/.github/workflows/Release.yml@refs/heads/main"
    token = github.sign(
        claims(repository="Sample-Org/Sample-Passes", job_workflow_ref=ref, environment="Release")
    )
    assert _post(token).status_code == 201


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"aud": "https://other-site.example.org"}, "wrong_audience"),
        ({"aud": "pypi"}, "wrong_audience"),
        ({"repository": "mallory/sample-passes"}, "no_trusted_publisher"),
        (
            {"job_workflow_ref": f"{REPOSITORY}/.github/workflows/other.yml@refs/heads/main"},
            "no_trusted_publisher",
        ),
        # A reusable workflow of another repository is not the registered workflow.
        (
            {"job_workflow_ref": "mallory/tools/.github/workflows/release.yml@refs/heads/main"},
            "no_trusted_publisher",
        ),
        ({"environment": "staging"}, "no_trusted_publisher"),
        ({"environment": None}, "no_trusted_publisher"),
        ({"iss": "https://accounts.google.com"}, "invalid_token"),
        ({"exp": FromNow(-120), "iat": FromNow(-600)}, "token_expired"),
        ({"nbf": FromNow(600)}, "invalid_token"),
        ({"jti": None}, "invalid_token"),
        ({"repository_id": "555"}, None),  # checked below, after a first use pinned the id
    ],
)
def test_refused_claims(github, publisher, overrides, code):
    if code is None:
        assert _post(github.sign(claims())).status_code == 201
        code = "no_trusted_publisher"
    response = _post(github.sign(claims(**overrides)))
    assert response.status_code == 401, response.content
    assert response.json()["code"] == code
    assert not Run.objects.filter(trigger_detail__contains="mallory").exists()


def test_a_token_is_accepted_once(github, publisher):
    token = github.sign(claims())
    assert _post(token).status_code == 201
    replay = _post(token)
    assert replay.status_code == 401
    assert replay.json()["code"] == "token_replayed"
    assert Run.objects.count() == 1


def test_used_token_ids_are_dropped_after_expiry(github, publisher):
    UsedPublishingToken.objects.create(jti="old", expires_at="2020-01-01T00:00:00Z")
    assert _post(github.sign(claims())).status_code == 201
    assert UsedPublishingToken.objects.count() == 1
    assert not UsedPublishingToken.objects.filter(jti="old").exists()


def test_unsigned_and_foreign_tokens_are_refused(github, publisher):
    unsigned = jwt.encode(claims(), key=None, algorithm="none")
    response = _post(unsigned)
    assert (response.status_code, response.json()["code"]) == (401, "invalid_token")
    assert "none" in response.json()["detail"]

    # HS256 keyed with GitHub's public key: the classic algorithm-confusion forgery (built by
    # hand, since PyJWT itself refuses to make one).
    public_pem = (
        github.private["key-1"]
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    forged = _hand_made_jwt({"alg": "HS256", "typ": "JWT", "kid": "key-1"}, claims(), public_pem)
    response = _post(forged)
    assert (response.status_code, response.json()["code"]) == (401, "invalid_token")

    # Signed by a key GitHub never published, under GitHub's key id.
    github.new_key("attacker", publish=False)
    impostor = jwt.encode(
        claims(), github.private["attacker"], algorithm="RS256", headers={"kid": "key-1"}
    )
    response = _post(impostor)
    assert (response.status_code, response.json()["code"]) == (401, "invalid_token")
    assert Run.objects.count() == 0


def test_keys_are_cached_and_a_rotation_is_fetched_once(github, publisher, settings):
    assert _post(github.sign(claims())).status_code == 201
    assert _post(github.sign(claims())).status_code == 201
    assert github.fetches == 1  # cached

    github.new_key("key-2")  # GitHub rotates: the new key id is unknown to the cache
    assert _post(github.sign(claims(), kid="key-2")).status_code == 201
    assert github.fetches == 2

    github.new_key("never-published", publish=False)
    response = _post(github.sign(claims(), kid="never-published"))
    assert response.status_code == 401
    assert github.fetches == 3  # one refetch for the unknown id, no more
    assert _post(github.sign(claims(), kid="key-1")).status_code == 201  # old key still valid
    assert github.fetches == 3


def test_unknown_key_ids_do_not_hammer_github(github, publisher, settings):
    settings.TRUSTED_PUBLISHING_JWKS_MIN_REFRESH_S = 3600
    assert _post(github.sign(claims())).status_code == 201
    github.new_key("made-up", publish=False)
    for _ in range(3):
        assert _post(github.sign(claims(), kid="made-up")).status_code == 401
    assert github.fetches == 1


def test_github_unreachable_is_a_clear_refusal(settings, publisher):
    settings.TRUSTED_PUBLISHING_ENABLED = True
    settings.TRUSTED_PUBLISHING_AUDIENCE = AUDIENCE
    github_oidc.forget_cached_keys()
    keys = GitHubKeys()
    keys.new_key("key-1")
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, github_oidc.GITHUB_ACTIONS_JWKS_URL, status=503)
        response = _post(keys.sign(claims()))
    github_oidc.forget_cached_keys()
    assert response.status_code == 401
    assert response.json()["code"] == "issuer_unreachable"
    assert "package token" in response.json()["detail"]


def test_a_short_github_outage_uses_the_cached_keys(github, publisher, settings):
    settings.TRUSTED_PUBLISHING_JWKS_CACHE_S = 0  # every request tries to re-read the keys
    assert _post(github.sign(claims())).status_code == 201
    github.down = True
    assert _post(github.sign(claims())).status_code == 201  # known key, GitHub unreachable
    assert github.fetches == 2
    github.new_key("key-2")  # a key the cache never saw cannot be checked while GitHub is down
    response = _post(github.sign(claims(), kid="key-2"))
    assert (response.status_code, response.json()["code"]) == (401, "issuer_unreachable")


def test_off_by_default_refuses_oidc_tokens_without_calling_github(settings, publisher):
    assert settings.TRUSTED_PUBLISHING_ENABLED is False  # the default
    keys = GitHubKeys()
    keys.new_key("key-1")
    with responses.RequestsMock() as mock:  # any request to GitHub would fail the test
        response = _post(keys.sign(claims()))
        assert len(mock.calls) == 0
    assert response.status_code == 401
    assert response.json()["code"] == "trusted_publishing_off"
    assert "package token" in response.json()["detail"]


def test_a_publisher_of_several_packages_is_ambiguous(github, publisher, world):
    other = Package.objects.exclude(name="sample-passes").first()
    register_trusted_publisher(
        package=other, repository=REPOSITORY, workflow="release.yml", environment="release"
    )
    response = _post(github.sign(claims()))
    assert response.status_code == 401
    assert response.json()["code"] == "ambiguous_trusted_publisher"


def test_a_publisher_without_environment_accepts_any(github, world):
    register_trusted_publisher(
        package=Package.objects.get(name="sample-passes"),
        repository=REPOSITORY,
        workflow="release.yml",
    )
    assert _post(github.sign(claims(environment=None))).status_code == 201
    assert _post(github.sign(claims(environment="anything"))).status_code == 201
    assert TrustedPublisher.objects.get().last_used_at is not None


def test_a_token_for_another_packages_build_is_403(github, world):
    other = Package.objects.exclude(name="sample-passes").first()
    register_trusted_publisher(package=other, repository=REPOSITORY, workflow="release.yml")
    response = _post(github.sign(claims()))
    assert response.status_code == 403
    assert response.json()["code"] == "wrong_package"
