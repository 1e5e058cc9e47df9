"""Promotion pages and their permissions: the queue, excuses, the confirmation step, a promotion's
page, the admin action; maintainers cannot promote."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from packages_app.models import Build
from testing_app.models import InstallabilityCheck
from testing_app.models import Promotion
from testing_app.models import PromotionItem
from tests import factories

pytest_plugins = ["tests.testing_app.promotion_fixtures"]
pytestmark = pytest.mark.django_db


@pytest.fixture
def three(world, run_checks):
    """A promotable build, a waiting one (never checked) and a blocked one (unbounded pytorch),
    staged in that order."""
    ready = world.stage("ready")
    run_checks([ready])
    waiting = world.stage("waiting")
    blocked = world.stage("blocked", depends=("pytorch >=2.5",))
    run_checks([blocked])
    Build.objects.filter(pk=ready.pk).update(first_seen_at=timezone.now() - timedelta(days=3))
    Build.objects.filter(pk=waiting.pk).update(first_seen_at=timezone.now() - timedelta(days=2))
    return {"ready": ready, "waiting": waiting, "blocked": blocked}


def _group(body: str, status: str) -> str:
    match = re.search(rf'data-group="{status}">(.*?)</table>', body, re.S)
    return match.group(1) if match else ""


def test_queue_groups_candidates_with_one_line_reasons(client, three):
    body = client.get("/promotions/").content.decode()
    assert "ready" in _group(body, "promotable")
    assert "Every policy passes" in _group(body, "promotable")
    waiting = _group(body, "waiting")
    assert "Installable from the target channel: 2 of 2 solver checks still to run" in waiting
    assert "gate-fail" not in waiting  # waiting is never drawn as a failure
    assert "Upper bound on PyTorch (lint)" in _group(body, "blocked")
    # Anonymous readers see the queue, not the promote controls.
    assert 'name="build"' not in body
    assert "Promote…" not in body


def test_queue_lists_oldest_first(client, world, run_checks):
    older, newer = world.stage("older"), world.stage("newer")
    Build.objects.filter(pk=newer.pk).update(first_seen_at=timezone.now() - timedelta(days=1))
    Build.objects.filter(pk=older.pk).update(first_seen_at=timezone.now() - timedelta(days=5))
    body = client.get("/promotions/").content.decode()
    waiting = _group(body, "waiting")
    assert waiting.index("older") < waiting.index("newer")


def test_queue_shows_promote_controls_to_release_managers(client, three, release_manager):
    client.force_login(release_manager)
    body = client.get("/promotions/").content.decode()
    assert f"/promotions/confirm/?build={three['ready'].pk}" in body
    assert f'name="build" value="{three["waiting"].pk}"' in body


def test_excuses_page_lists_every_policy_with_evidence(client, three):
    blocked = three["blocked"]
    body = client.get(f"/builds/{blocked.pk}/excuses/").content.decode()
    for title in (
        "Package active with a maintainer",
        "Required cells passed",
        "Reverse dependencies did not regress",
        "Installable from the target channel",
        "Tests exist",
        "Upper bound on PyTorch (lint)",
        "License allows redistribution",
        "Not already promoted",
    ):
        assert title in body
    assert 'data-gate="blocked"' in body
    assert "package test matrix" in body
    assert 'id="check-' in body  # the solver output is on the page


def test_excuses_page_of_unknown_build_is_404(client, db):
    assert client.get("/builds/999999/excuses/").status_code == 404


def test_confirm_page_shows_what_is_copied_from_where_to_where(client, three, release_manager):
    client.force_login(release_manager)
    ready = three["ready"]
    body = client.get(f"/promotions/confirm/?build={ready.pk}").content.decode()
    assert ready.download_url in body
    assert f"/target/linux-64/{ready.filename}" in body
    assert re.search(r'name="idempotency_key" value="[0-9a-f]{32}"', body)
    assert "Promote 1 build into target" in body


def test_confirm_page_of_a_blocked_build_offers_no_promote_button(client, three, release_manager):
    client.force_login(release_manager)
    body = client.get(f"/promotions/confirm/?build={three['blocked'].pk}").content.decode()
    assert "Not promotable yet" in body
    assert "/promotions/create/" not in body


def test_maintainers_cannot_promote(client, three, maintainer_user):
    ready = three["ready"]
    ready.package.maintainers.update(user=maintainer_user)
    client.force_login(maintainer_user)
    assert client.get(f"/promotions/confirm/?build={ready.pk}").status_code == 403
    response = client.post(
        "/promotions/create/", {"build": [ready.pk], "idempotency_key": "a" * 32}
    )
    assert response.status_code == 403
    assert not Promotion.objects.exists()


def test_anonymous_confirm_redirects_to_sign_in(client, three):
    response = client.get(f"/promotions/confirm/?build={three['ready'].pk}")
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_posting_the_confirmation_twice_promotes_once(
    client, three, release_manager, django_capture_on_commit_callbacks
):
    client.force_login(release_manager)
    data = {"build": [three["ready"].pk], "idempotency_key": "f" * 32}
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post("/promotions/create/", data)
        second = client.post("/promotions/create/", data, follow=True)
    promotion = Promotion.objects.get()
    assert first["Location"] == f"/promotions/{promotion.pk}/"
    assert f"Already submitted: this is promotion #{promotion.pk}" in second.content.decode()
    assert promotion.requested_by == release_manager


def test_confirmation_of_a_blocked_build_is_refused_with_the_reason(client, three, release_manager):
    client.force_login(release_manager)
    response = client.post(
        "/promotions/create/",
        {"build": [three["blocked"].pk], "idempotency_key": "e" * 32},
        follow=True,
    )
    assert "Not promotable: Upper bound on PyTorch (lint)" in response.content.decode()
    assert not Promotion.objects.exists()


def test_partial_promotion_page_shows_what_landed_and_offers_resume(client, world, release_manager):
    alpha, beta = world.stage("alpha"), world.stage("beta")
    promotion = factories.PromotionFactory(
        source_channel=world.staging,
        target_channel=world.target,
        state="partial",
        error_message="unauthorized: token expired",
    )
    PromotionItem.objects.create(promotion=promotion, build=alpha, state="done", attempts=1)
    PromotionItem.objects.create(
        promotion=promotion, build=beta, state="failed", attempts=1, error_message="token expired"
    )
    client.force_login(release_manager)
    body = client.get(f"/promotions/{promotion.pk}/").content.decode()
    assert "1 of 2 items landed" in body
    assert 'data-item-state="done"' in body
    assert 'data-item-state="failed"' in body
    assert f"/promotions/{promotion.pk}/resume/" in body
    response = client.post(f"/promotions/{promotion.pk}/resume/")
    assert response.status_code == 302
    promotion.refresh_from_db()
    assert promotion.state == "pending"


def test_resume_by_a_maintainer_is_forbidden(client, world, maintainer_user):
    promotion = factories.PromotionFactory(
        source_channel=world.staging, target_channel=world.target, state="failed"
    )
    client.force_login(maintainer_user)
    assert client.post(f"/promotions/{promotion.pk}/resume/").status_code == 403


def test_admin_promote_action_is_for_release_managers_only(client, three, release_manager):
    ready = three["ready"]
    staff = factories.UserFactory(username="staff", is_staff=True, is_superuser=False)
    staff.user_permissions.add(*Permission.objects.filter(codename="view_build"))
    client.force_login(staff)
    page = client.get("/admin/packages_app/build/").content.decode()
    assert "promote_builds" not in page
    release_manager.is_staff = True
    release_manager.save()
    client.force_login(release_manager)
    page = client.get("/admin/packages_app/build/").content.decode()
    assert "promote_builds" in page
    response = client.post(
        "/admin/packages_app/build/",
        {"action": "promote_builds", "_selected_action": [ready.pk]},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/promotions/confirm/?build={ready.pk}"


def test_maintainer_may_ask_for_installability_checks_of_their_package(
    client, world, maintainer_user, django_capture_on_commit_callbacks
):
    build = world.stage("kornia")
    build.package.maintainers.update(user=maintainer_user)
    client.force_login(maintainer_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/promotions/check/", {"build": [build.pk], "next": f"/builds/{build.pk}/excuses/"}
        )
    assert response["Location"] == f"/builds/{build.pk}/excuses/"
    assert InstallabilityCheck.objects.filter(subject_key=f"build:{build.pk}").count() == 2
    stranger = factories.UserFactory(username="stranger")
    client.force_login(stranger)
    assert client.post("/promotions/check/", {"build": [build.pk]}).status_code == 403


def test_target_page_lists_promoted_builds(client, world):
    factories.BuildFactory(channel=world.target, name="kornia", state="promoted")
    body = client.get("/promotions/target/").content.decode()
    assert "Target channel: target" in body
    assert "kornia" in body
