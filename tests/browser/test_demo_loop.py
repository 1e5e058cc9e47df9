"""The local demo's loop, for real: seed_demo builds and stages the sample channel, its sync
plans install checks, a real `distro_worker` subprocess (no conda-build: the rattler runner)
runs them and the tests, and Chromium shows the verdicts. Screenshots go to var/screenshots/."""

import io
import subprocess

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import Run
from tests.browser.helpers import ROOT
from tests.browser.helpers import trusted_worker_command
from tests.browser.helpers import worker_command
from tests.browser.helpers import worker_env

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(tmp_path, settings):
    settings.VAR_DIR = tmp_path / "var"
    call_command("seed_demo", stdout=io.StringIO())
    env = worker_env(tmp_path, settings)
    # The host's worker takes install checks and tests; the web side's worker the trusted
    # queue's jobs (planning, follow-ups) before and after, as the two do side by side.
    for command in (
        trusted_worker_command("default", burst=True),
        worker_command("demo-loop", "install", burst=True),
        trusted_worker_command("default", burst=True),
    ):
        worker = subprocess.run(  # noqa: S603
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert worker.returncode == 0, (worker.stdout + worker.stderr)[-4000:]
    return Run.objects.get(trigger="new_build")


def _verdict(name: str, version: str) -> str:
    return CellResult.objects.get(
        build__name=name,
        build__channel__name="samples",
        torch_release__version=version,
        variant__name="cpu",
        verdict__in=["passed", "failed", "uninstallable"],
    ).verdict


def test_demo_loop_from_staged_sample_to_verdicts_in_the_browser(
    demo, live_server, page, screenshot
):
    jobs = Job.objects.filter(run=demo)
    own = jobs.filter(pinned_build__isnull=True)  # the rest: dependents re-tested with a stand-in
    # The 12 cells of the samples with the two stand-in releases; cells the stand-ins cannot
    # decide (releases with no PyTorch record in the stack) are planned as unknown (issue 13).
    sample_cells = own.filter(
        kind="install_check",
        torch_release__version__in=["2.4.1", "2.5.1"],
        variant__name="cpu",
        platform__subdir="linux-64",
    )
    assert sample_cells.count() == 12
    # No conda-build here: the samples rattler-build built are tested by rattler-build, the
    # conda-build-layout one by the rattler runner's conda-build path.
    assert set(jobs.filter(kind="test").values_list("runner", flat=True)) == {
        "rattler",
        "rattler-build",
    }
    assert not jobs.exclude(status="finished").exists()
    assert _verdict("sample-passes", "2.4.1") == _verdict("sample-passes", "2.5.1") == "passed"
    assert _verdict("sample-fails-on-torch-2-5", "2.4.1") == "passed"
    assert _verdict("sample-fails-on-torch-2-5", "2.5.1") == "failed"
    assert _verdict("sample-unsatisfiable", "2.5.1") == "uninstallable"
    assert _verdict("pytorch", "2.5.1") == "passed"  # the stand-in's own test
    assert _verdict("sample-legacy-layout", "2.4.1") == "passed"
    assert _verdict("sample-legacy-layout", "2.5.1") == "failed"
    no_tests = own.filter(kind="test", build__name="sample-no-tests")
    assert set(no_tests.values_list("verdict", flat=True)) == {"no_tests"}
    demo.refresh_from_db()
    assert demo.state == "finished"

    page.goto(f"{live_server.url}/runs/{demo.pk}/")
    expect(page.locator("h1")).to_contain_text(f"Run {demo.pk}")
    screenshot("demo-loop-run")

    failed = own.get(kind="test", verdict="failed", build__name="sample-fails-on-torch-2-5")
    page.goto(f"{live_server.url}/jobs/{failed.pk}/")
    expect(page.locator(".excerpt-text")).to_contain_text("does not work with PyTorch 2.5")
    screenshot("demo-loop-failed-test")

    unsolvable = jobs.filter(verdict="uninstallable").first()
    page.goto(f"{live_server.url}/jobs/{unsolvable.pk}/")
    expect(page.locator("body")).to_contain_text("sample-passes >=99")
    screenshot("demo-loop-uninstallable")

    page.goto(f"{live_server.url}/packages/sample-fails-on-torch-2-5/")
    expect(page.locator("#test-matrix")).to_be_visible()
    screenshot("demo-loop-package")

    # The compatibility matrix shows the verdicts the real worker produced.
    page.goto(f"{live_server.url}/matrix/?q=sample")
    failing_row = page.locator("tr", has_text="sample-fails-on-torch-2-5")
    expect(failing_row.locator('td[data-verdict="failed"]')).to_have_count(1)
    expect(failing_row.locator('td[data-verdict="passed"]')).to_have_count(1)
    unsatisfiable_row = page.locator("tr", has_text="sample-unsatisfiable")
    # One row per package and platform: the linux-64 row has both stand-in releases
    # uninstallable; the noarch sample's rows for other platforms may add their own.
    expect(unsatisfiable_row.locator('td[data-verdict="uninstallable"]').nth(1)).to_be_visible()
    screenshot("demo-loop-matrix")


def test_maintainer_creates_and_revokes_a_ci_token_in_the_browser(
    transactional_db, live_server, page, screenshot
):
    from packages_app.models import PackageToken
    from packages_app.services.packages import register_package
    from tests import factories

    package = register_package(name="kornia", summary="Differentiable computer vision")
    user = factories.UserFactory(username="ada")
    user.set_password("a-long-test-password")
    user.save()
    package.maintainers.add(factories.MaintainerFactory(name="Ada", user=user))

    page.goto(f"{live_server.url}/accounts/login/?next=/packages/kornia/tokens/")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "a-long-test-password")
    page.click("button[type=submit]")
    page.fill("input[name=name]", "github-ci")
    page.click("form.token-form button[type=submit]")

    token = page.locator("#token-value").inner_text()
    assert token.startswith("cdt_")
    expect(page.locator("table.tokens")).to_contain_text("github-ci")
    screenshot("tokens-created")
    page.click("table.tokens button.danger")
    expect(page.locator("table.tokens")).to_contain_text("revoked")
    expect(page.locator("#token-value")).to_have_count(0)
    screenshot("tokens-revoked")
    assert PackageToken.objects.get().revoked_at is not None
