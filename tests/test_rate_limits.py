"""Rate limits kept in Redis (issue 9): failed sign-ins per address and per username on the
site, the admin and the password change, and CI requests per package token. Real views, the
real cache (the Redis database of REDIS_URL)."""

import json
from datetime import timedelta

import pytest
import redis
import time_machine
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.test import Client
from django.utils import timezone

from packages_app.services.tokens import create_package_token
from tests import factories

pytestmark = pytest.mark.django_db
PASSWORD = "the-right-password-0123"  # noqa: S105
LOGIN = "/accounts/login/"


@pytest.fixture
def limits(settings):
    settings.SIGN_IN_FAILURES_PER_ADDRESS = 6
    settings.SIGN_IN_FAILURES_PER_USERNAME = 3
    settings.SIGN_IN_WINDOW_S = 900
    return settings


def _user(username: str, **extra):
    user = factories.UserFactory(username=username, **extra)
    user.set_password(PASSWORD)
    user.save()
    return user


def _sign_in(client, username, password, *, path=LOGIN, **meta):
    return client.post(path, {"username": username, "password": password}, **meta)


def test_the_limits_live_in_redis_shared_by_every_process(limits):
    assert isinstance(caches["rate_limits"], RedisCache)
    _user("ada")
    for _ in range(2):
        _sign_in(Client(), "ada", "wrong")
    keys = redis.Redis.from_url(settings.REDIS_URL).keys("rate-limit:*")
    assert keys, "the counts are in Redis, where every web process sees them"
    # Only keyed hashes of the subjects are stored: no username, no address.
    assert not [k for k in keys if b"ada" in k or b"127.0.0.1" in k]


def test_repeated_failures_for_one_username_pause_its_sign_in(limits):
    _user("ada")
    client = Client()
    for _ in range(2):
        response = _sign_in(client, "ada", "wrong")
        assert response.status_code == 200
        assert "enter a correct username and password" in response.content.decode()
    third = _sign_in(client, "ada", "wrong")
    assert third.status_code == 429
    assert "Too many failed sign-ins" in third.content.decode()
    assert "try again in 15 minutes" in third.content.decode()
    assert int(third["Retry-After"]) == 900
    # The right password is not even checked while the pause lasts, from any address.
    assert _sign_in(Client(), "ada", PASSWORD, REMOTE_ADDR="198.51.100.4").status_code == 429
    # The username as typed: case and spaces make no other target.
    assert _sign_in(Client(), " ADA", "wrong", REMOTE_ADDR="198.51.100.5").status_code == 429
    assert "_auth_user_id" not in client.session
    # Someone else signs in as usual.
    _user("grace")
    assert _sign_in(Client(), "grace", PASSWORD).status_code == 302
    # After the pause the right password works again.
    with time_machine.travel(timezone.now() + timedelta(seconds=901)):
        assert _sign_in(client, "ada", PASSWORD).status_code == 302


def test_successful_sign_ins_do_not_count_and_clear_the_username_count(limits):
    _user("ada")
    # Two failures and a success, three times: six failures for "ada", never three in a row.
    # (From three addresses: the per-address count is never cleared by a success.)
    for round_ in range(3):
        address = {"REMOTE_ADDR": f"192.0.2.{round_}"}
        for _ in range(2):
            assert _sign_in(Client(), "ada", "wrong", **address).status_code == 200
        assert _sign_in(Client(), "ada", PASSWORD, **address).status_code == 302


def test_repeated_failures_from_one_address_pause_it_whatever_the_username(limits):
    _user("ada")
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    for index in range(5):
        assert _sign_in(Client(), f"guess-{index}", "wrong", **attacker).status_code == 200
    assert _sign_in(Client(), "guess-5", "wrong", **attacker).status_code == 429
    # One valid account does not reset the address's count.
    assert _sign_in(Client(), "ada", PASSWORD, **attacker).status_code == 429
    assert _sign_in(Client(), "ada", PASSWORD, REMOTE_ADDR="192.0.2.1").status_code == 302


def test_behind_the_proxy_the_address_is_the_last_forwarded_hop(limits):
    limits.BEHIND_TLS_PROXY = True
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    for index in range(6):
        # Whatever the client writes before the proxy's own entry changes nothing.
        forwarded = f"1.1.1.{index}, 203.0.113.7"
        _sign_in(Client(), f"guess-{index}", "wrong", HTTP_X_FORWARDED_FOR=forwarded, **proxy)
    refused = _sign_in(
        Client(), "guess-6", "wrong", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7", **proxy
    )
    assert refused.status_code == 429
    other = _sign_in(Client(), "guess-7", "wrong", HTTP_X_FORWARDED_FOR="198.51.100.9", **proxy)
    assert other.status_code == 200


def test_the_admin_sign_in_shares_the_counts(limits):
    _user("root", is_staff=True, is_superuser=True)
    for _ in range(2):
        assert _sign_in(Client(), "root", "wrong", path="/admin/login/").status_code == 200
    refused = _sign_in(Client(), "root", "wrong", path="/admin/login/")
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode()
    assert _sign_in(Client(), "root", PASSWORD).status_code == 429
    assert _sign_in(Client(), "root", PASSWORD, path="/admin/login/").status_code == 429


@pytest.mark.parametrize("path", ["/accounts/password/", "/admin/password_change/"])
def test_wrong_old_passwords_in_the_password_change_count_as_failures(limits, path):
    user = _user("ada", is_staff=True)
    client = Client()
    client.force_login(user)

    def change(old):
        return client.post(
            path,
            {
                "old_password": old,
                "new_password1": "n3w-passw0rd-x",
                "new_password2": "n3w-passw0rd-x",
            },
        )

    assert change("wrong").status_code == 200
    assert change("wrong").status_code == 200
    refused = change("wrong")
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode()
    assert change(PASSWORD).status_code == 429
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    with time_machine.travel(timezone.now() + timedelta(seconds=901)):
        done = change(PASSWORD)
    assert done.status_code == 302
    assert done["Location"].endswith(("/accounts/password/done/", "/admin/password_change/done/"))
    user.refresh_from_db()
    assert user.check_password("n3w-passw0rd-x")


def test_ci_requests_per_package_are_limited_whatever_the_token(settings):
    settings.TEST_THIS_BUILD_REQUESTS_PER_HOUR = 3
    package = factories.PackageFactory()
    _, plain = create_package_token(package=package, name="ci", created_by=None)
    _, second = create_package_token(package=package, name="second-ci", created_by=None)
    _, elsewhere = create_package_token(
        package=factories.PackageFactory(), name="ci", created_by=None
    )

    def post(token):
        return Client().post(
            "/api/test-this-build/",
            data=json.dumps({"filename": "nothing-1.0-0.conda"}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )

    for _ in range(3):
        assert post(plain).status_code == 404  # served: no such staged build
    refused = post(plain)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 3600
    # A new token of the same package does not start a new count; another package does.
    assert post(second).status_code == 429
    assert post(elsewhere).status_code == 404
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        assert post(plain).status_code == 404


# How each write URL is kept from being hammered. A new write URL fails the test below until its
# line is written here.
WRITE_URL_LIMITS = {
    # Rate limits.
    "proposals:propose": "PROPOSAL_RATE_LIMIT_PER_HOUR per client address (stored proposals)",
    "testing:claim-new": "CLAIM_RATE_LIMIT_PER_HOUR per client address (stored claims)",
    "testing:job-retry": "MANUAL_RETRY_LIMIT_PER_HOUR per person, one job in flight per cell",
    "accounts:login": "SIGN_IN_FAILURES_PER_ADDRESS / _PER_USERNAME (Redis)",
    "accounts:password-change": "wrong old passwords count as failed sign-ins (Redis)",
    "api-test-this-build": "TEST_THIS_BUILD_REQUESTS_PER_HOUR per package (Redis)",
    # Bounded by state: each can succeed once per state change, the rest are refusals.
    "proposals:proposal-withdraw": "once: open proposals only",
    "proposals:proposal-update": "once per change request; one pre-check each",
    "proposals:proposal-note": "a short row on one's own open proposal; nothing sent or run",
    "testing:installability-request": "checks already queued or running are not queued again",
    "packages:package-token-revoke": "idempotent",
    "packages:package-publisher-remove": "idempotent: deletes one row",
    "testing:notification-preferences": "one maintainer's own preferences row",
    "testing:notification-unsubscribe": "idempotent",
    "testing:notification-reset": "replaces one link; nothing sent",
    "testing:notification-issue": "stores a URL; nothing fetched",
    "accounts:logout": "ends one's own session",
    # Sign in with GitHub: a redirect to GitHub, which limits its own sign-ins; each OAuth state
    # is issued to one session and used once; the form serves only a pending GitHub sign-in.
    "github_login": "a redirect to GitHub (GitHub limits sign-ins); off by default",
    "github_callback": "one code exchange per OAuth state this site issued; off by default",
    "socialaccount_signup": "only with a GitHub sign-in pending in the session",
    # Trusted roles only (reviewers, release managers, maintainers of the package), audited.
    "packages:package-tokens": "the package's maintainers; one active token per name",
    "packages:package-publishers": "the package's maintainers; one per repository/workflow/env",
    "proposals:review-detail": "reviewers",
    "proposals:review-note": "reviewers",
    "proposals:review-decide": "reviewers",
    "proposals:review-rerun": "reviewers",
    "testing:claim-detail": "reviewers",
    "testing:torchrelease-register": "release managers; one per version",
    "testing:package-remove": "release managers",
    "testing:package-reinstate": "release managers",
    "testing:promotion-create": "release managers",
    "testing:promotion-resume": "release managers",
    "testing:promotion-cancel": "release managers",
    "testing:build-waive": "release managers",
    "testing:waiver-revoke": "release managers",
}


def test_every_write_url_says_how_it_is_kept_from_being_hammered():
    from tests.test_permissions import WRITE_POLICY

    assert set(WRITE_URL_LIMITS) == set(WRITE_POLICY)
