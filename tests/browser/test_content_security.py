"""The strict Content-Security-Policy in Chromium: every page with a chart or a script runs with
no policy violation and no console error, and the plotly charts are actually drawn."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from testing_app.models import Job
from tests import factories
from tests.testing_app.matrix_scenarios import fill_package
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Reports every violation to the console as an error, before any script of the page runs.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " blocked " + event.blockedURI
    + " at " + event.sourceFile + ":" + event.lineNumber);
});
"""


@pytest.fixture
def site(transactional_db, settings, tmp_path):
    settings.LOG_DIR = tmp_path
    axes = make_axes(versions=("2.5.1", "2.4.1"), variants=("cpu",), platforms=("linux-64",))
    kornia = make_package("kornia", axes, version="0.7.3")
    records = fill_package(kornia, axes, verdict="passed")
    host = factories.HostFactory(name="gpu-a", last_heartbeat_at=timezone.now())
    Job.objects.filter(pk__in=[r.jobs[-1].pk for r in records]).update(
        host=host, duration_s=90, finished_at=timezone.now()
    )
    run = factories.RunFactory(state="running", started_at=timezone.now())
    build = make_build(kornia, axes, version="0.7.4", subdir="linux-64")
    release, variant, platform = axes.releases[0], axes.variants[0], axes.platforms[0]
    running = record_cell(
        build=build,
        release=release,
        variant=variant,
        platform=platform,
        verdicts=["running"],
        run=run,
    ).jobs[-1]
    (tmp_path / f"{running.pk}.log").write_text("solving the test environment\n")
    Job.objects.filter(pk=running.pk).update(log_path=f"{running.pk}.log")
    return {"release": release.version, "run": run, "running": running}


@pytest.fixture
def console_errors(page):
    errors = []
    page.add_init_script(REPORT_VIOLATIONS)

    def keep(message):
        # Chromium asks every site for /favicon.ico, which this one does not have.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            errors.append(message.text)

    page.on("console", keep)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


CHART_PAGES = {
    "matrix-heatmap": ("/matrix/?view=heatmap", 1),
    "trends": ("/trends/", 2),
    "trends-package": ("/trends/?package=kornia", 2),
    "hosts": ("/hosts/", 2),
}


@pytest.mark.parametrize("name", sorted(CHART_PAGES))
def test_chart_pages_draw_their_charts_without_violations(
    name, site, live_server, page, console_errors, screenshot
):
    path, charts = CHART_PAGES[name]
    page.goto(live_server.url + path)
    plots = page.locator(".plotly-chart.js-plotly-plot")
    expect(plots).to_have_count(charts)
    for index in range(charts):
        expect(plots.nth(index).locator("svg.main-svg").first).to_be_visible()
    screenshot(f"csp-{name}")
    assert console_errors == []


def test_release_wave_chart_draws_without_violations(
    site, live_server, page, console_errors, screenshot
):
    page.goto(f"{live_server.url}/releases/{site['release']}/")
    expect(page.locator("#wave-chart .js-plotly-plot svg.main-svg").first).to_be_visible()
    screenshot("csp-release-wave")
    assert console_errors == []


def test_live_run_and_job_pages_update_without_violations(site, live_server, page, console_errors):
    run, running = site["run"], site["running"]
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    progress = page.locator("#run-progress .progress-text")
    expect(progress).to_contain_text("0 of 1 jobs done")
    Job.objects.filter(pk=running.pk).update(status="finished", verdict="passed", duration_s=7)
    # Only run_live.js (a static file) can change the page without a reload.
    expect(progress).to_contain_text("1 of 1 jobs done", timeout=15_000)
    page.goto(f"{live_server.url}/jobs/{running.pk}/")
    expect(page.locator("#job-log")).to_be_visible()
    page.goto(f"{live_server.url}/propose/")
    expect(page.locator("form")).not_to_have_count(0)
    assert console_errors == []


def test_admin_and_browsable_api_run_without_violations(site, live_server, page, console_errors):
    admin = factories.UserFactory(username="root", is_staff=True, is_superuser=True)
    admin.set_password("a-long-test-password")
    admin.save()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "a-long-test-password")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/testing_app/job/")
    page.locator("#action-toggle").check()
    # The admin's own action script (a static file) ticks every row.
    expect(page.locator("input.action-select:checked")).not_to_have_count(0)
    page.goto(f"{live_server.url}/api/packages/?format=api")
    expect(page.locator(".response-info")).to_be_visible()
    assert console_errors == []
