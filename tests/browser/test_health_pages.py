"""A release manager and a maintainer in Chromium: register a PyTorch release and read its impact
and wave, a package's lint and maintainer-needed marker, the maintenance page, the notification
preferences. Screenshots go to var/screenshots/."""

import re

import pytest
from django.contrib.auth.models import Group
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from testing_app.models import Notification
from testing_app.models import ReleaseImpact
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-test-password"  # noqa: S105


@pytest.fixture
def catalog(transactional_db):
    ada = factories.MaintainerFactory(name="Ada Lovelace", github_handle="ada")
    for name, spec, maintainers in [
        ("kornia", "pytorch >=2.4,<2.8", [ada]),
        ("torchmetrics", "pytorch >=2.4,<2.6", [ada]),
        ("fastai", "pytorch >=1.10", []),
    ]:
        package = factories.PackageFactory(name=name, latest_version="1.0")
        package.maintainers.add(*maintainers)
        factories.BuildFactory(
            name=name, package=package, version="1.0", depends=[spec, "numpy >=1.21"]
        )
    factories.VariantFactory(name="cpu")
    factories.PlatformFactory(subdir="linux-64")
    manager = factories.UserFactory(username="rm")
    manager.set_password(PASSWORD)
    manager.save()
    # Transactional tests flush the groups the data migration made: grant the permission itself.
    group, _ = Group.objects.get_or_create(name="release managers")
    group.permissions.add(Permission.objects.get(codename="add_torchrelease"))
    manager.groups.add(group)
    return {"ada": ada}


def _sign_in(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "rm")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_register_release_then_follow_its_wave(catalog, page, live_server, screenshot):
    _sign_in(page, live_server)
    page.goto(f"{live_server.url}/releases/")
    page.get_by_role("link", name="Register a release").click()
    page.fill("input[name=version]", "2.6.0")
    page.fill("input[name=released_on]", "2025-01-29")
    page.get_by_label("cpu").check()
    page.get_by_label("linux-64").check()
    screenshot("release-register")
    page.get_by_role("button", name="Register and start the wave").click()
    expect(page).to_have_url(re.compile(r"/releases/2\.6\.0/$"))
    expect(page.locator(".impact-excludes strong")).to_have_text("1")
    expect(page.locator(".impact-admits strong")).to_have_text("1")
    expect(page.locator(".impact-unbounded strong")).to_have_text("1")
    needs_bump = page.locator("tr.wave-row-needs_bump")
    expect(needs_bump).to_have_count(1)
    expect(needs_bump).to_contain_text("torchmetrics")
    expect(needs_bump).to_contain_text("Ada Lovelace")
    expect(needs_bump.locator("a[href^='mailto:']")).to_have_count(1)
    expect(page.locator("tr", has_text="fastai").locator(".maintainer-needed")).to_be_visible()
    screenshot("release-wave")
    assert ReleaseImpact.objects.count() == 3
    assert Notification.objects.filter(kind="bump_needed").count() == 1


def test_package_lint_maintenance_and_preferences_pages(catalog, page, live_server, screenshot):
    page.goto(f"{live_server.url}/packages/fastai/")
    expect(page.locator(".maintainer-needed-banner")).to_contain_text("Nobody maintains fastai")
    lint = page.locator("section[aria-labelledby=lint]")
    expect(lint).to_contain_text("pytorch-unbounded")
    expect(lint).to_contain_text("pytorch >=1.10 has no upper bound")
    screenshot("package-lint")
    page.get_by_role("link", name="Offer to maintain it").click()
    page.fill("input[name=name]", "Alan Turing")
    page.fill("input[name=email]", "alan@example.org")
    page.fill("textarea[name=rationale]", "I use it every day.")
    page.get_by_role("button", name="Offer to maintain it").click()
    expect(page.locator(".messages")).to_contain_text("waits for a reviewer")
    page.goto(f"{live_server.url}/maintenance/")
    expect(page.locator("h1")).to_have_text("Maintenance")
    screenshot("maintenance")
    page.goto(f"{live_server.url}/notifications/{catalog['ada'].unsubscribe_token}/")
    page.get_by_label("Daily digest").check()
    page.get_by_label("Promotion done").uncheck()
    page.get_by_role("button", name="Save").first.click()
    expect(page.locator(".messages")).to_contain_text("preferences are saved")
    screenshot("notification-preferences")
    catalog["ada"].refresh_from_db()
    assert catalog["ada"].muted_kinds == ["promotion_done"]
