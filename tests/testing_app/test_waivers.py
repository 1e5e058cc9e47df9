"""Waivers: granted with a reason by release managers only, shown on the cell and in the gate,
revocable, expiring, and never deleted (the audit)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError
from django.utils import timezone

from testing_app.models import CellResult
from testing_app.models import Waiver
from testing_app.selectors.gate import get_build_gate
from testing_app.services.waivers import expire_waivers
from testing_app.services.waivers import grant_waiver
from testing_app.services.waivers import revoke_waiver
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def rm(db):
    user = factories.UserFactory(username="rm")
    user.groups.add(Group.objects.get(name="release managers"))
    return user


@pytest.fixture
def failing(db):
    """A build whose one required cell (PyTorch 2.5.1 x cpu x linux-64) failed."""
    platform = factories.PlatformFactory(subdir="linux-64")
    variant = factories.VariantFactory(name="cpu")
    release = factories.TorchReleaseFactory(version="2.5.1", supported=True)
    release.variants.set([variant])
    release.platforms.set([platform])
    package = factories.PackageFactory(name="kornia")
    package.maintainers.add(factories.MaintainerFactory())
    build = factories.BuildFactory(
        package=package, name="kornia", depends=["pytorch >=2.5,<2.6"], channel__role="staging"
    )
    job = factories.JobFactory(
        build=build, torch_release=release, variant=variant, platform=platform
    )
    cell = factories.CellResultFactory(
        build=build,
        package=package,
        torch_release=release,
        variant=variant,
        platform=platform,
        verdict="failed",
        latest_job=job,
    )
    return {
        "build": build,
        "cell": cell,
        "release": release,
        "variant": variant,
        "platform": platform,
    }


def _cell_kwargs(failing):
    return {
        "torch_release": failing["release"],
        "variant": failing["variant"],
        "platform": failing["platform"],
    }


def test_grant_cell_waiver_marks_the_cell_waived_and_the_gate_waives_it(failing, rm):
    waiver = grant_waiver(
        build=failing["build"], created_by=rm, reason="known driver bug", **_cell_kwargs(failing)
    )
    cell = CellResult.objects.get(pk=failing["cell"].pk)
    assert (cell.verdict, cell.previous_verdict) == ("waived", "failed")
    result = get_build_gate(failing["build"].pk).policy("cells")
    assert result.status == "pass"
    assert "waived by rm" in result.lines[0].note
    assert "known driver bug" in result.lines[0].note
    assert waiver.created_by == rm


def test_grant_waiver_without_reason_is_refused(failing, rm):
    with pytest.raises(ValidationError) as excinfo:
        grant_waiver(build=failing["build"], created_by=rm, reason="  ", **_cell_kwargs(failing))
    assert "reason" in excinfo.value.message_dict
    assert not Waiver.objects.exists()


def test_grant_waiver_by_a_maintainer_is_denied(failing):
    maintainer = factories.UserFactory(username="maint")
    with pytest.raises(PermissionDenied):
        grant_waiver(build=failing["build"], created_by=maintainer, reason="mine", policy="lint")


def test_grant_waiver_of_a_passing_cell_is_refused(failing, rm):
    CellResult.objects.filter(pk=failing["cell"].pk).update(verdict="passed")
    with pytest.raises(ValidationError, match="not failing"):
        grant_waiver(build=failing["build"], created_by=rm, reason="x", **_cell_kwargs(failing))


def test_grant_waiver_of_an_unwaivable_policy_is_refused(failing, rm):
    with pytest.raises(ValidationError, match="cannot be waived"):
        grant_waiver(build=failing["build"], created_by=rm, reason="x", policy="license")


def test_grant_waiver_twice_is_refused(failing, rm):
    grant_waiver(build=failing["build"], created_by=rm, reason="first", policy="lint")
    with pytest.raises(ValidationError, match="Already waived"):
        grant_waiver(build=failing["build"], created_by=rm, reason="second", policy="lint")


def test_grant_waiver_with_past_expiry_is_refused(failing, rm):
    with pytest.raises(ValidationError) as excinfo:
        grant_waiver(
            build=failing["build"],
            created_by=rm,
            reason="x",
            policy="lint",
            expires_at=timezone.now() - timedelta(hours=1),
        )
    assert "expires_at" in excinfo.value.message_dict


def test_revoke_waiver_brings_the_failure_back_and_keeps_the_row(failing, rm):
    waiver = grant_waiver(
        build=failing["build"], created_by=rm, reason="known", **_cell_kwargs(failing)
    )
    revoke_waiver(waiver=waiver, revoked_by=rm)
    cell = CellResult.objects.get(pk=failing["cell"].pk)
    assert cell.verdict == "failed"
    waiver.refresh_from_db()
    assert waiver.revoked_by == rm
    assert waiver.revoked_at is not None
    assert get_build_gate(failing["build"].pk).policy("cells").status == "fail"
    with pytest.raises(ValidationError, match="already revoked"):
        revoke_waiver(waiver=waiver, revoked_by=rm)


def test_expired_waiver_sweep_restores_the_cell(failing, rm):
    waiver = grant_waiver(
        build=failing["build"],
        created_by=rm,
        reason="for a day",
        expires_at=timezone.now() + timedelta(days=1),
        **_cell_kwargs(failing),
    )
    assert expire_waivers() == 0  # still valid
    Waiver.objects.filter(pk=waiver.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert get_build_gate(failing["build"].pk).policy("cells").status == "fail"
    assert expire_waivers() == 1
    assert CellResult.objects.get(pk=failing["cell"].pk).verdict == "failed"


# --- pages ------------------------------------------------------------------------------------


def test_waiver_page_requires_a_reason_and_shows_the_field_error(client, failing, rm):
    client.force_login(rm)
    build = failing["build"]
    url = f"/builds/{build.pk}/waive/"
    page = client.get(
        url,
        {
            "torch": failing["release"].pk,
            "variant": failing["variant"].pk,
            "platform": failing["platform"].pk,
        },
    )
    assert "PyTorch 2.5.1 × cpu × linux-64" in page.content.decode()
    response = client.post(
        url,
        {
            "torch_release": failing["release"].pk,
            "variant": failing["variant"].pk,
            "platform": failing["platform"].pk,
            "reason": "",
        },
    )
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not Waiver.objects.exists()


def test_waiver_page_post_waives_and_shows_it_on_the_excuses_page(client, failing, rm):
    client.force_login(rm)
    build = failing["build"]
    response = client.post(
        f"/builds/{build.pk}/waive/",
        {
            "torch_release": failing["release"].pk,
            "variant": failing["variant"].pk,
            "platform": failing["platform"].pk,
            "reason": "flaky GPU host",
            "expires_at": (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
        },
        follow=True,
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "flaky GPU host" in body
    assert "in force" in body
    assert Waiver.objects.get().expires_at is not None


def test_waiver_page_is_forbidden_to_maintainers(client, failing):
    user = factories.UserFactory(username="maint")
    failing["build"].package.maintainers.update(user=user)
    client.force_login(user)
    response = client.post(
        f"/builds/{failing['build'].pk}/waive/", {"policy": "lint", "reason": "trust me"}
    )
    assert response.status_code == 403
    assert not Waiver.objects.exists()


def test_revoke_page_revokes(client, failing, rm):
    waiver = grant_waiver(build=failing["build"], created_by=rm, reason="x", policy="lint")
    client.force_login(rm)
    response = client.post(f"/waivers/{waiver.pk}/revoke/")
    assert response.status_code == 302
    waiver.refresh_from_db()
    assert waiver.revoked_at is not None


def test_sweep_marks_a_cell_that_failed_again_while_waived(failing, rm):
    grant_waiver(build=failing["build"], created_by=rm, reason="known", **_cell_kwargs(failing))
    # A retry ran and failed again: the service that finishes jobs wrote the new failure.
    CellResult.objects.filter(pk=failing["cell"].pk).update(
        verdict="failed", previous_verdict="waived"
    )
    assert expire_waivers() == 1
    cell = CellResult.objects.get(pk=failing["cell"].pk)
    assert (cell.verdict, cell.previous_verdict) == ("waived", "failed")
