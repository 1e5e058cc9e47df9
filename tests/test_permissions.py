"""Who may write what (issue 9): every write URL and every admin action, for the five roles.

Every URL of the URLconf is either a write URL below (with the roles that may use it) or listed
as read-only, so a new URL fails `test_every_url_is_classified` until its policy is written here.
"""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.test import RequestFactory

from packages_app.services.trusted_publishers import register_trusted_publisher
from testing_app.models import Job
from tests import factories
from tests.url_inventory import all_urls

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "maintainer", "reviewer", "release_manager", "admin")
EVERYONE = set(ROLES)
SIGNED_IN = EVERYONE - {"anonymous"}
REVIEW = {"reviewer", "admin"}
RELEASE = {"release_manager", "admin"}

# Write URL name -> roles that may use it. Capability-token URLs (proposal status, notification
# preferences) are open to whoever holds the token; test_security checks a wrong token finds
# nothing.
WRITE_POLICY = {
    "proposals:propose": EVERYONE,
    "proposals:proposal-note": EVERYONE,
    "proposals:proposal-withdraw": EVERYONE,
    "proposals:proposal-update": EVERYONE,
    "proposals:review-detail": REVIEW,
    "proposals:review-note": REVIEW,
    "proposals:review-decide": REVIEW,
    "proposals:review-rerun": REVIEW,
    "packages:package-tokens": {"maintainer", "admin"},
    "packages:package-token-revoke": {"maintainer", "admin"},
    "packages:package-publishers": {"maintainer", "admin"},
    "packages:package-publisher-remove": {"maintainer", "admin"},
    "testing:job-retry": {"maintainer", "release_manager", "admin"},
    "testing:torchrelease-register": RELEASE,
    "testing:notification-preferences": EVERYONE,
    "testing:notification-unsubscribe": EVERYONE,
    "testing:notification-reset": EVERYONE,
    "testing:notification-issue": EVERYONE,
    "testing:package-remove": RELEASE,
    "testing:package-reinstate": RELEASE,
    "testing:claim-new": EVERYONE,
    "testing:claim-detail": REVIEW,
    "testing:promotion-create": RELEASE,
    "testing:installability-request": {"maintainer", "release_manager", "admin"},
    "testing:promotion-resume": RELEASE,
    "testing:promotion-cancel": RELEASE,
    "testing:build-waive": RELEASE,
    "testing:waiver-revoke": RELEASE,
    "api-test-this-build": set(),  # package tokens only, never a session (test_test_this_build_api)
    "accounts:login": EVERYONE,
    "accounts:logout": EVERYONE,
    "accounts:password-change": SIGNED_IN,
    # Sign in with GitHub (django-allauth): starting it, GitHub's redirect back, and the form
    # for a pending GitHub sign-in. Off by default (404 for everyone, so nothing reaches
    # GitHub); tests/packages_app/test_github_sign_in.py runs the flows with it on.
    "github_login": EVERYONE,
    "github_callback": EVERYONE,
    "socialaccount_signup": EVERYONE,
}

# GET-only pages and the read-only API: a POST changes nothing there.
READ_ONLY = {
    "home",
    "packages:package-list",
    "packages:package-detail",
    "proposals:proposal-summary",
    "proposals:proposal-status",
    "proposals:review-queue",
    "testing:matrix",
    "testing:matrix-csv",
    "testing:matrix-cell",
    "favicon",
    "testing:run-list",
    "testing:run-detail",
    "testing:run-progress",
    "testing:job-detail",
    "testing:job-log",
    "testing:job-reproduce",
    "guide-index",
    "guide-page",
    "channel-stack",
    "testing:job-log-tail",
    "testing:host-list",
    "testing:trends",
    "testing:torchrelease-list",
    "testing:torchrelease-wave",
    "testing:maintenance",
    "testing:claim-queue",
    "testing:promotion-queue",
    "testing:promotion-confirm",  # shows the plan; the POST goes to promotion-create
    "testing:promotion-target",
    "testing:promotion-detail",
    "testing:build-excuses",
    "testing:badge-package",
    "testing:badge-package-release",
    "accounts:home",
    "accounts:password-change-done",
    "socialaccount_login_cancelled",
    "socialaccount_login_error",
    "account_inactive",
    "account_login",  # a redirect to accounts:login, for allauth's own links
}


def _user(username: str, **extra):
    return factories.UserFactory(username=username, **extra)


@pytest.fixture
def world():
    maintainer_user = _user("maintainer-user")
    package = factories.PackageFactory(name="kornia")
    maintainer = factories.MaintainerFactory(user=maintainer_user)
    package.maintainers.add(maintainer)
    reviewer = _user("reviewer-user", is_staff=True)
    reviewer.groups.add(Group.objects.get(name="reviewers"))
    manager = _user("manager-user", is_staff=True)
    manager.groups.add(Group.objects.get(name="release managers"))
    users = {
        "anonymous": None,
        "maintainer": maintainer_user,
        "reviewer": reviewer,
        "release_manager": manager,
        "admin": _user("admin-user", is_staff=True, is_superuser=True),
    }
    build = factories.BuildFactory(package=package, channel__label="")
    job = factories.JobFactory(build=build, status="finished", verdict="failed")
    return {
        "users": users,
        "package": package,
        "maintainer": maintainer,
        "build": build,
        "job": job,
        "proposal": factories.ProposalFactory(),
        "claim": factories.MaintainerClaimFactory(package=package),
        "token": factories.PackageTokenFactory(package=package),
        "publisher": register_trusted_publisher(
            package=package, repository="kornia/kornia", workflow="release.yml"
        ),
        "waiver": factories.WaiverFactory(build=build),
        "promotion": factories.PromotionFactory(),
        "release": factories.TorchReleaseFactory(),
    }


def _paths(world) -> dict[str, str]:
    """Concrete paths of the write URLs, pointing at rows that exist."""
    package = world["package"].name
    token = world["maintainer"].unsubscribe_token
    return {
        "proposals:propose": "/propose/",
        # Status-token URLs: a made-up token is a 404 for everyone alike; role plays no part.
        "proposals:proposal-note": "/proposals/not-a-token/note/",
        "proposals:proposal-withdraw": "/proposals/not-a-token/withdraw/",
        "proposals:proposal-update": "/proposals/not-a-token/update/",
        "proposals:review-detail": f"/review/{world['proposal'].pk}/",
        "proposals:review-note": f"/review/{world['proposal'].pk}/note/",
        "proposals:review-decide": f"/review/{world['proposal'].pk}/decide/",
        "proposals:review-rerun": f"/review/{world['proposal'].pk}/rerun/",
        "packages:package-tokens": f"/packages/{package}/tokens/",
        "packages:package-token-revoke": f"/packages/{package}/tokens/{world['token'].pk}/revoke/",
        "packages:package-publishers": f"/packages/{package}/tokens/publishers/",
        "packages:package-publisher-remove": (
            f"/packages/{package}/tokens/publishers/{world['publisher'].pk}/remove/"
        ),
        "testing:job-retry": f"/jobs/{world['job'].pk}/retry/",
        "testing:torchrelease-register": "/releases/new/",
        "testing:notification-preferences": f"/notifications/{token}/",
        "testing:notification-unsubscribe": f"/notifications/{token}/unsubscribe/",
        "testing:notification-reset": f"/notifications/{token}/reset/",
        "testing:notification-issue": f"/notifications/{token}/issue/{package}/",
        "testing:package-remove": f"/maintenance/{package}/remove/",
        "testing:package-reinstate": f"/maintenance/{package}/reinstate/",
        "testing:claim-new": f"/packages/{package}/claim/",
        "testing:claim-detail": f"/review/claims/{world['claim'].pk}/",
        "testing:promotion-create": "/promotions/create/",
        "testing:installability-request": "/promotions/check/",
        "testing:promotion-resume": f"/promotions/{world['promotion'].pk}/resume/",
        "testing:promotion-cancel": f"/promotions/{world['promotion'].pk}/cancel/",
        "testing:build-waive": f"/builds/{world['build'].pk}/waive/",
        "testing:waiver-revoke": f"/waivers/{world['waiver'].pk}/revoke/",
        "api-test-this-build": "/api/test-this-build/",
        "accounts:login": "/accounts/login/",
        "accounts:logout": "/accounts/logout/",
        "accounts:password-change": "/accounts/password/",
        "github_login": "/accounts/oauth/github/login/",
        "github_callback": "/accounts/oauth/github/login/callback/",
        "socialaccount_signup": "/accounts/oauth/signup/",
    }


def _denied(response) -> bool:
    if response.status_code in (401, 403):
        return True
    return response.status_code == 302 and "/login/" in response["Location"]


def test_every_url_is_classified():
    # The admin and the RQ dashboard are staff-only as a whole (test_admin_*); the API is
    # read-only (test_read_only_api_refuses_writes_for_every_role).
    ours = {
        url.name
        for url in all_urls()
        if not url.path.startswith(("/admin/", "/django-rq/", "/api/"))
        or url.name == "api-test-this-build"
    }
    unclassified = ours - set(WRITE_POLICY) - READ_ONLY
    assert not unclassified, f"add these to WRITE_POLICY or READ_ONLY: {sorted(unclassified)}"
    assert not (set(WRITE_POLICY) | READ_ONLY) - ours, "stale entries"


@pytest.mark.parametrize("name", sorted(WRITE_POLICY))
def test_write_url_permission_matrix(world, name):
    path = _paths(world)[name]
    outcome = {}
    for role in ROLES:
        client = Client()
        if world["users"][role] is not None:
            client.force_login(world["users"][role])
        jobs_before = Job.objects.count()
        data = {"build": str(world["build"].pk)} if "installability" in name else {}
        response = client.post(path, data)
        if name == "testing:job-retry":
            # Refusals are shown as a message on the job page; a retry is a new job. Remove it,
            # or the next role is refused because the cell already has a job in flight.
            outcome[role] = Job.objects.count() > jobs_before
            Job.objects.exclude(pk=world["job"].pk).delete()
        else:
            outcome[role] = not _denied(response)
        assert response.status_code < 500, (role, response.status_code)
    allowed = {role for role, ok in outcome.items() if ok}
    assert allowed == WRITE_POLICY[name], outcome


def _row_counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.managed
    }


def test_posts_to_read_only_urls_change_nothing(world, admin_client):
    before = _row_counts()
    for url in all_urls():
        if url.name in READ_ONLY:
            response = admin_client.post(url.path, {"x": "1"})
            assert response.status_code < 500, url.path
    assert _row_counts() == before


def test_read_only_api_refuses_writes_for_every_role(world):
    for role in ROLES:
        client = Client()
        if world["users"][role] is not None:
            client.force_login(world["users"][role])
        for url in all_urls():
            if url.name.startswith("api:") and url.name != "api:schema":
                for method in (client.post, client.put, client.patch, client.delete):
                    assert method(url.path).status_code in (403, 404, 405), (role, url.path)


# Admin actions each role sees, per model admin (the admin's own delete is gated by the
# model's delete permission: only the superuser has any).
EXPECTED_ADMIN_ACTIONS = {
    "anonymous": set(),
    "maintainer": set(),
    "reviewer": {("packages_app.proposal", "rerun_prechecks")},
    "release_manager": {("packages_app.build", "promote_builds")},
}


def _admin_actions_for(user) -> set[tuple[str, str]]:
    request = RequestFactory().post("/admin/")
    request.user = user
    seen = set()
    for model, model_admin in admin.site._registry.items():
        # The changelist, where actions run, needs the view or change permission.
        if not model_admin.has_view_or_change_permission(request):
            continue
        for action in model_admin.get_actions(request):
            seen.add((model._meta.label_lower, action))
    return seen


def test_admin_actions_per_role(world):
    from django.contrib.auth.models import AnonymousUser

    users = {**world["users"], "anonymous": AnonymousUser()}
    for role, expected in EXPECTED_ADMIN_ACTIONS.items():
        user = users[role]
        visible = _admin_actions_for(user) if user.is_authenticated and user.is_staff else set()
        assert visible == expected, (role, sorted(visible))
    every = _admin_actions_for(users["admin"])
    assert ("testing_app.job", "retry_selected") in every
    assert ("testing_app.enrollmenttoken", "revoke_selected") in every


def test_admin_action_posts_are_refused_to_roles_without_the_permission(world):
    """POSTing each action by hand (not from the menu) changes nothing for the other roles."""
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        if not opts.managed:  # django-rq's dashboard: a view over Redis, no table, no actions
            continue
        url = f"/admin/{opts.app_label}/{opts.model_name}/"
        request = RequestFactory().post(url)
        request.user = world["users"]["admin"]
        for action in model_admin.get_actions(request):
            for role in ("anonymous", "maintainer", "reviewer", "release_manager"):
                if (opts.label_lower, action) in EXPECTED_ADMIN_ACTIONS[role]:
                    continue
                client = Client()
                if world["users"][role] is not None:
                    client.force_login(world["users"][role])
                before = model.objects.count()
                selected = [str(pk) for pk in model.objects.values_list("pk", flat=True)[:5]]
                response = client.post(
                    url, {"action": action, "_selected_action": selected or ["1"], "post": "yes"}
                )
                assert response.status_code in (200, 302, 403), (role, action)
                if response.status_code == 302:
                    # To the admin login, or back to the list with "No action selected".
                    location = response["Location"]
                    assert "/login/" in location or location == url, (role, action)
                assert model.objects.count() == before, (role, action)
