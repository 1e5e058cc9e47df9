"""The matrix at the widths people use (1400 and 1920 px), with data shaped like the demo's: many
supported releases, most of them "not applicable" to the packages, results on old releases only.
A verdict must be on screen without scrolling sideways, on the matrix and on the package page.
Screenshots go to var/screenshots/matrix-<width>.png and package-matrix-<width>.png.
"""

import pytest
from playwright.sync_api import expect

from testing_app.models import CellResult
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Newest first as the matrix orders them; the demo's verdicts sit on the two oldest.
RELEASES = ("2.13.0", "2.12.1", "2.11.0", "2.10.0", "2.9.1", "2.8.0", "2.7.1", "2.6.0")
OLD_RELEASES = ("2.5.1", "2.4.1")
VARIANTS = ("cpu", "cuda11.8", "cuda12.1", "cuda12.4", "cuda12.6", "rocm6.2")


@pytest.fixture
def demo_shaped(transactional_db):
    axes = make_axes(versions=RELEASES + OLD_RELEASES, variants=VARIANTS, platforms=("linux-64",))
    by_version = {r.version: r for r in axes.releases}
    linux = axes.platforms[0]
    for name, verdict_on_251 in (("sample-fails", "failed"), ("sample-passes", "passed")):
        package = make_package(name, axes, version="1.0.0")
        build = make_build(package, axes, version="1.0.0", subdir="linux-64")
        for version in RELEASES:
            for variant in axes.variants:
                CellResult.objects.create(
                    build=build,
                    package=package,
                    torch_release=by_version[version],
                    variant=variant,
                    platform=linux,
                    verdict="not_applicable",
                    detail=f"depends on pytorch <2.6, release {version}",
                )
        record_cell(
            build=build,
            release=by_version["2.5.1"],
            variant=axes.variants[0],
            platform=linux,
            verdicts=[verdict_on_251],
        )
        record_cell(
            build=build,
            release=by_version["2.4.1"],
            variant=axes.variants[0],
            platform=linux,
            verdicts=["passed"],
        )
    for index in range(6):  # packages with nothing yet, as most of the demo's real catalog
        make_package(f"untested-{index}", axes, version="0.1")
    return axes


def _inside_viewport(page, locator) -> None:
    box = locator.bounding_box()
    width = page.viewport_size["width"]
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width, f"{box} is beyond the {width} px viewport"


@pytest.mark.parametrize("width", [1400, 1920])
def test_matrix_verdicts_are_on_screen_without_scrolling_sideways(
    demo_shaped, live_server, browser, width
):
    from tests.browser.conftest import SCREENSHOT_DIR

    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(live_server.url + "/matrix/")
        failed = page.locator("tr[data-package=sample-fails] td.cell.v-failed")
        expect(failed).to_have_count(1)
        _inside_viewport(page, failed)
        _inside_viewport(page, page.locator("tr[data-package=sample-passes] td.cell.v-passed").last)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / f"matrix-{width}.png"))

        # Every release and variant on request: wider than the screen, the package stays put.
        page.get_by_role("link", name="show all").click()
        expect(page.locator("table.matrix thead th.release")).to_have_count(10)
        page.locator(".grid-scroll").evaluate("box => box.scrollLeft = box.scrollWidth")
        _inside_viewport(page, page.locator("tr[data-package=sample-fails] th.pkg a"))

        page.goto(live_server.url + "/packages/sample-fails/")
        chip = page.locator("section.package-matrix a.verdict.v-failed")
        expect(chip).to_have_count(1)
        chip.scroll_into_view_if_needed()
        _inside_viewport(page, chip)
        page.screenshot(path=str(SCREENSHOT_DIR / f"package-matrix-{width}.png"))
        chip.click()
        expect(page.locator("h1")).to_contain_text("sample-fails on PyTorch 2.5.1, cpu, linux-64")
    finally:
        context.close()
