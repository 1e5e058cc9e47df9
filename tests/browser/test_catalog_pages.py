"""A maintainer browses the real demo catalog in Chromium: home, package list, package page."""

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_catalog(transactional_db):
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115


def test_maintainer_finds_torchvision_and_its_admitted_pytorch(
    demo_catalog, live_server, page, screenshot
):
    page.goto(live_server.url + "/")
    assert page.locator(".counts").inner_text().count("packages") == 1
    screenshot("catalog-home")

    page.get_by_role("link", name="Packages").first.click()
    page.get_by_label("Search").fill("torchvision")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("table.data tbody tr").count() == 1
    screenshot("catalog-package-list")

    page.get_by_role("link", name="torchvision").click()
    assert page.locator("h1").inner_text().startswith("torchvision")
    # Expand the 0.16.0 version and check the real pytorch-channel record's admitted release.
    page.locator("summary", has_text="torchvision 0.16.0").click()
    row = page.locator("tr", has_text="torchvision-0.16.0-py310_cu121.tar.bz2")
    row.first.scroll_into_view_if_needed()
    assert "pytorch-cuda 12.1.*" in row.first.inner_text()
    assert "admits 1 of 48 registered releases" in row.first.inner_text()
    screenshot("catalog-package-detail")


def test_reverse_dependencies_of_pytorch_list_registered_packages(demo_catalog, live_server, page):
    page.goto(live_server.url + "/packages/pytorch/")
    rdeps = page.locator("section[aria-labelledby=rdeps]").inner_text()
    for name in ("torchvision", "torchaudio", "ignite"):
        assert name in rdeps
