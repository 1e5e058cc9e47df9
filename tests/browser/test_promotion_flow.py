"""A release manager promotes a green build in Chromium and then sees it in the target channel:
queue -> excuses -> confirmation -> the promote job on a real RQ worker -> the target page."""

import pytest

from packages_app.models import Build
from testing_app.adapters.solver import solve_environment
from testing_app.services.set_solves import request_set_partner_solves
from tests.testing_app.promotion_world import drain

pytest_plugins = ["tests.testing_app.promotion_fixtures"]
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a long release manager passphrase"


def test_release_manager_promotes_a_green_build_into_the_target(
    live_server, page, screenshot, world, run_checks, release_manager
):
    kornia = world.stage("kornia", version="0.7.3")
    run_checks([kornia])
    waiting = world.stage("fastai", depends=("kornia ==0.7.3", "pytorch >=2.5,<2.6"))
    # The set-partner solves (the sweep's first step): fastai installs only with kornia.
    request_set_partner_solves(candidates=[kornia, waiting])
    drain("install")
    release_manager.set_password(PASSWORD)
    release_manager.save()

    page.goto(f"{live_server.url}/accounts/login/?next=/promotions/")
    page.get_by_label("Username").fill("rm")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # The queue: kornia is promotable; fastai waits (never checked) and goes with kornia.
    page.wait_for_url("**/promotions/")
    promotable = page.locator('table[data-group="promotable"]')
    assert "kornia" in promotable.inner_text()
    assert "Every policy passes" in promotable.inner_text()
    waiting_row = page.locator(f"#candidate-{waiting.pk}")
    assert "solver checks still to run" in waiting_row.inner_text()
    assert waiting_row.locator(".gate-fail").count() == 0
    assert "Coordinated sets" in page.content()
    screenshot("promotion-queue")

    # The excuses page says why, policy by policy.
    page.get_by_role("link", name="kornia 0.7.3").first.click()
    assert page.locator("#gate-summary").inner_text() == "Every policy passes"
    assert page.locator(".gate-policy").count() == 8
    screenshot("promotion-excuses")

    # The confirmation step shows exactly what is copied from where to where.
    page.get_by_role("link", name="Promote…").click()
    plan = page.locator("#copy-plan").inner_text()
    assert kornia.filename in plan
    assert str(world.staging_dir) in plan
    assert str(world.target_dir) in plan
    screenshot("promotion-confirm")
    page.get_by_role("button", name="Promote 1 build into target").click()
    assert page.locator("#promotion-state").get_attribute("data-state") == "pending"

    drain("promote")  # the promote queue's worker (in this process, no fork)
    page.reload()
    assert page.locator("#promotion-state").get_attribute("data-state") == "done"
    assert "1 of 1 item landed" in page.content()
    screenshot("promotion-done")

    # The target channel now holds the build; a solver pointed at it installs it.
    page.goto(f"{live_server.url}/promotions/target/")
    assert kornia.filename in page.locator("#target-builds").inner_text()
    assert "solves" in page.content()
    screenshot("promotion-target")
    assert Build.objects.get(pk=kornia.pk).state == Build.State.PROMOTED
    solved = solve_environment(
        channels=[world.target.base_url, world.upstream.base_url],
        platform="linux-64",
        specs=["kornia ==0.7.3"],
        virtual_packages=["__unix=0", "__linux=5.15"],
    )
    assert solved.find("kornia").channel.rstrip("/") == world.target.base_url


def test_release_manager_reads_excuses_and_waives_a_failing_cell(
    live_server, page, screenshot, world, run_checks, release_manager
):
    flaky = world.stage("flaky", passed=False)
    world.cell(flaky, "failed")
    run_checks([flaky])
    release_manager.set_password(PASSWORD)
    release_manager.save()
    page.goto(f"{live_server.url}/accounts/login/?next=/builds/{flaky.pk}/excuses/")
    page.get_by_label("Username").fill("rm")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url(f"**/builds/{flaky.pk}/excuses/")
    assert page.locator("#gate-summary").inner_text().startswith("Required cells passed: 1 of 1")
    cells = page.locator("#policy-cells")
    assert cells.locator(".gate-fail").count() >= 1
    screenshot("promotion-excuses-blocked")

    cells.get_by_role("link", name="Waive cell…").click()
    assert page.locator("#waived-cell").inner_text() == "PyTorch 2.5.1 × cpu × linux-64"
    page.get_by_role("button", name="Waive").click()
    # No reason, no waiver: the browser refuses to send the form (the server refuses too).
    assert page.locator("textarea[name=reason]").evaluate("el => el.validity.valueMissing")
    assert "/waive/" in page.url
    page.get_by_label("Reason (required)").fill("The CI GPU driver crashes; upstream bug 123.")
    page.get_by_role("button", name="Waive").click()

    page.wait_for_url(f"**/builds/{flaky.pk}/excuses/")
    assert page.locator("#gate-summary").inner_text() == "Every policy passes (1 waived)"
    assert "upstream bug 123" in page.locator("#policy-cells").inner_text()
    assert "in force" in page.locator("#waivers-title ~ table").inner_text()
    screenshot("promotion-excuses-waived")
