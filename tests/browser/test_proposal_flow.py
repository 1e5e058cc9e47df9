"""The proposal flow in Chromium: a proposer submits the form and follows the status page, the
pre-checks run on a real RQ worker, a reviewer approves, and the package page exists."""

import re

import pytest
from django.contrib.auth.models import Group
from django.core import mail

from packages_app.models import Proposal
from packages_app.services.reviews import decide_proposal
from tests.browser.conftest import SCREENSHOT_DIR
from tests.browser.helpers import fill_proposal_form
from tests.factories import UserFactory
from tests.packages_app.proposal_helpers import RecipeServer
from tests.packages_app.proposal_helpers import drain_default_queue
from tests.packages_app.proposal_helpers import restore_migrated_groups
from tests.packages_app.proposal_helpers import seed_catalog

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a long reviewer passphrase"


def _shot(page, name: str) -> None:
    """A screenshot of a page other than the `page` fixture's (the reviewer's)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)


@pytest.fixture
def recipe_url(settings):
    settings.RECIPE_FETCH_ALLOW_PRIVATE = True  # the recipe server is on 127.0.0.1
    with RecipeServer() as server:
        yield server.serve("/kornia-feedstock/recipe/meta.yaml", "kornia.meta.yaml")


@pytest.fixture
def reviewer():
    restore_migrated_groups()
    user = UserFactory(username="rita", first_name="Rita", last_name="Reviewer")
    user.set_password(PASSWORD)
    user.save()
    user.groups.add(Group.objects.get(name="reviewers"))
    return user


def _fill_form(page, recipe_url: str) -> None:
    fill_proposal_form(
        page,
        name="kornia",
        summary="Differentiable computer vision library for PyTorch",
        license_="Apache-2.0",
        home_url="https://kornia.github.io",
        repo_url="https://github.com/kornia/kornia",
        recipe_url=recipe_url,
        rationale="Kornia implements differentiable image processing on PyTorch tensors.",
        maintainers=[("Ada Lovelace", "ada@example.org", "ada")],
        contact_email="ada@example.org",
    )
    # The script adds rows beyond the three rendered ones.
    page.get_by_role("button", name="Add another maintainer").click()
    assert page.locator("tr.maintainer-row").count() == 4
    page.locator('[name="maintainers-3-name"]').fill("Grace Hopper")
    page.locator('[name="maintainers-3-email"]').fill("grace@example.org")


def test_propose_check_review_approve(
    recipe_url, reviewer, live_server, browser, page, screenshot, request
):
    seed_catalog()

    # 1. The proposer: a mistake first (the name), then a valid submission.
    page.goto(live_server.url + "/propose/")
    _fill_form(page, recipe_url)
    page.get_by_label("Package name").fill("Kornia")
    page.get_by_role("button", name="Submit the proposal").click()
    assert "Use lowercase letters" in page.locator(".field.has-error").first.inner_text()
    screenshot("proposal-form-error")
    page.get_by_label("Package name").fill("kornia")
    for label in ("PyTorch is a key dependency", "The maintainers commit to keeping"):
        page.get_by_label(label).check()
    page.get_by_label("Your email").fill("ada@example.org")
    page.locator('[name="maintainers-3-name"]').fill("Grace Hopper")
    page.locator('[name="maintainers-3-email"]').fill("grace@example.org")
    screenshot("proposal-form")
    page.get_by_role("button", name="Submit the proposal").click()

    # 2. The private status page: pending at first, then the worker runs the pre-checks.
    page.wait_for_url(re.compile(r"/proposals/[A-Za-z0-9_-]{20,}/$"))
    status_url = page.url
    assert "Proposal of kornia" in page.locator("h1").inner_text()
    assert page.locator("[data-prechecks-pending]").count() == 1
    (confirmation,) = mail.outbox
    assert status_url.removeprefix(live_server.url) in confirmation.body
    screenshot("proposal-status-pending")
    assert drain_default_queue() == 1
    page.reload()
    checks = page.locator("table.checks tbody tr")
    assert checks.count() == 9
    assert page.locator("table.checks .outcome-pass").count() == 9
    assert "Waiting for review" in page.locator("h1").inner_text()
    screenshot("proposal-status-checked")

    # 3. A reviewer signs in, finds it in the queue, approves with a note.
    reviewer_context = browser.new_context(viewport={"width": 1280, "height": 900})
    request.addfinalizer(reviewer_context.close)  # its keep-alive connections hold the DB open
    reviewer_page = reviewer_context.new_page()
    reviewer_page.set_default_timeout(10_000)
    reviewer_page.goto(live_server.url + "/review/")
    reviewer_page.get_by_label("Username").fill("rita")
    reviewer_page.get_by_label("Password").fill(PASSWORD)
    reviewer_page.get_by_role("button", name="Sign in").click()
    reviewer_page.wait_for_url(live_server.url + "/review/")
    row = reviewer_page.locator("table.review-queue tbody tr")
    assert row.count() == 1
    assert "kornia" in row.inner_text()
    _shot(reviewer_page, "review-queue")
    reviewer_page.get_by_role("link", name="kornia").click()
    reviewer_page.get_by_label("Approve: register the package and its maintainers").check()
    reviewer_page.get_by_label("Note to the proposer").fill("Welcome to the distribution.")
    _shot(reviewer_page, "review-detail")
    reviewer_page.get_by_role("button", name="Record the decision").click()
    assert "kornia: approved." in reviewer_page.locator(".messages").inner_text()
    assert "Rita Reviewer" in reviewer_page.locator(".thread").inner_text()

    # 4. The package page exists, with both maintainers; the proposer sees the decision.
    reviewer_page.get_by_role("link", name="kornia", exact=True).first.click()
    assert reviewer_page.locator("h1").inner_text().startswith("kornia")
    assert "Active" in reviewer_page.locator("h1").inner_text()
    maintainers = reviewer_page.locator("dl.facts").inner_text()
    assert "Ada Lovelace" in maintainers
    assert "Grace Hopper" in maintainers
    _shot(reviewer_page, "approved-package")

    drain_default_queue()  # the decision email
    assert "approved" in mail.outbox[-1].subject
    page.goto(status_url)
    assert "Approved" in page.locator("h1").inner_text()
    assert "Welcome to the distribution." in page.locator(".thread").inner_text()
    screenshot("proposal-status-approved")


def test_proposer_answers_a_change_request(recipe_url, reviewer, live_server, page, screenshot):
    seed_catalog()
    page.goto(live_server.url + "/propose/")
    _fill_form(page, recipe_url)
    page.get_by_role("button", name="Submit the proposal").click()
    page.wait_for_url(re.compile(r"/proposals/[A-Za-z0-9_-]{20,}/$"))
    status_url = page.url
    drain_default_queue()

    proposal = Proposal.objects.get(package_name="kornia")
    decide_proposal(
        proposal=proposal,
        reviewer=reviewer,
        decision="request_changes",
        note="Please point the recipe at the feedstock, not a fork.",
    )
    page.goto(status_url)
    assert "Changes requested" in page.locator("h1").inner_text()
    assert "not a fork" in page.locator(".thread").inner_text()
    page.get_by_role("link", name="Update the proposal").click()
    assert "(cannot change)" in page.locator(".proposal-form").inner_text()
    page.get_by_label("Summary").fill("Differentiable computer vision for PyTorch, v0.7")
    page.get_by_label("Your note").fill("Summary updated; the recipe is the feedstock's.")
    screenshot("proposal-update-form")
    page.get_by_role("button", name="Send the update").click()
    page.wait_for_url(status_url)
    assert "back in review" in page.locator(".messages").inner_text()
    assert "Submitted" in page.locator("h1").inner_text()
    drain_default_queue()
    page.reload()
    assert "Waiting for review" in page.locator("h1").inner_text()
    assert "Summary updated" in page.locator(".thread").inner_text()
    screenshot("proposal-status-updated")

    # The proposer has an account (made by staff): signed in, the proposal is listed.
    ada = UserFactory(username="ada", email="ada@example.org")
    ada.set_password(PASSWORD)
    ada.save()
    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot("sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(live_server.url + "/")
    page.get_by_role("link", name="ada", exact=True).click()
    proposals = page.locator("section[aria-labelledby=proposals]").inner_text()
    assert "kornia" in proposals
    assert "Waiting for review" in proposals
    screenshot("account-home")
