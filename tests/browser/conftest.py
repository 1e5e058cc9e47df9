"""Browser fixtures: Debian's Chromium driven by Playwright (never `playwright install`)."""

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def _chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "Debian's chromium is not installed (apt-get install chromium); make test does it"
        )
    return path


@pytest.fixture(scope="session")
def browser():
    # Playwright's sync API runs an event loop in this thread; Django's ORM must still be usable.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=_chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    """Save a full-page screenshot under var/screenshots/<name>.png for people to look at; of
    the `page` fixture's page, or of another person's page (`of=`)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)

    def take(name: str, of=None) -> Path:
        path = SCREENSHOT_DIR / f"{name}.png"
        target = of or page
        try:
            target.screenshot(path=str(path), full_page=True)
        except PlaywrightError:
            # Chromium without a GPU now and then answers "Unable to capture screenshot" for a
            # full page while other browsers share the two cores: try again once, then take
            # the viewport (what the tests assert is in view); a second failure is raised.
            target.wait_for_timeout(500)
            try:
                target.screenshot(path=str(path), full_page=True)
            except PlaywrightError:
                target.screenshot(path=str(path))
        return path

    return take
