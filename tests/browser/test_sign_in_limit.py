"""Someone guessing a password in Chromium: after a few failures the sign-in form says to wait,
and the right password is refused until the pause ends. Screenshot in var/screenshots/."""

import pytest
from playwright.sync_api import expect

from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-test-password"  # noqa: S105


def test_repeated_failures_pause_sign_in_with_a_clear_message(
    settings, live_server, page, screenshot
):
    settings.SIGN_IN_FAILURES_PER_USERNAME = 3
    user = factories.UserFactory(username="ada")
    user.set_password(PASSWORD)
    user.save()

    def sign_in(password):
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", "ada")
        page.fill("input[name=password]", password)
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.click("button[type=submit]")
        return answer.value

    for _ in range(2):
        assert sign_in("wrong").status == 200
        expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    assert sign_in("wrong").status == 429
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Too many failed sign-ins")
    expect(alert).to_contain_text("try again in 15 minutes")
    screenshot("sign-in-paused")
    assert sign_in(PASSWORD).status == 429
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
