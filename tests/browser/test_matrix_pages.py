"""A maintainer in Chromium: the matrix, its filters, a failing cell down to the job's excerpt,
a run page that updates live, the hosts page. Screenshots go to var/screenshots/.

The verdicts are written as the execution service leaves them (finished jobs + CellResults),
through the factories, until the worker of the hosts issue can produce them in this test.
"""

import re

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

FAILURE_LOG = "\n".join(
    [f"collected line {i}" for i in range(30)]
    + [
        "tests/test_color.py::test_rgb_to_hsv FAILED",
        "E   AssertionError: hue differs by 0.02 on cuda",
        "TESTS FAILED: kornia-0.7.3-py311_linux_64_0.conda",
    ]
)


@pytest.fixture
def dashboard(transactional_db, settings, tmp_path):
    settings.LOG_DIR = tmp_path
    axes = make_axes(
        versions=("2.5.1", "2.4.1", "2.6.0"),
        variants=("cpu", "cuda12.4"),
        platforms=("linux-64", "osx-arm64"),
    )
    ada = factories.MaintainerFactory(name="Ada", github_handle="ada")
    kornia = make_package("kornia", axes, version="0.7.3", maintainer=ada)
    records = fill_package(kornia, axes, verdict="passed")
    failing = next(
        r
        for r in records
        if r.cell.torch_release.version == "2.5.1"
        and r.cell.variant.name == "cuda12.4"
        and r.cell.platform.subdir == "linux-64"
    )
    job = failing.jobs[-1]
    (tmp_path / f"{job.pk}.log").write_text(FAILURE_LOG)
    Job.objects.filter(pk=job.pk).update(
        status="finished",
        verdict="failed",
        log_path=f"{job.pk}.log",
        exit_code=1,
        failure_excerpt="\n".join(FAILURE_LOG.splitlines()[-3:]),
        host=factories.HostFactory(name="gpu-a"),
    )
    failing.cell.verdict = "failed"
    failing.cell.previous_verdict = "passed"
    failing.cell.save()
    fill_package(make_package("fastai", axes, version="2.7.0"), axes, verdict="passed")
    fill_package(make_package("mmf", axes, version="1.0"), axes, verdict="queued")
    make_package("newcomer", axes)
    return {"axes": axes, "failed_job": job}


def test_matrix_shows_verdicts_filters_and_leads_to_the_failure(
    dashboard, live_server, page, screenshot
):
    page.goto(live_server.url + "/matrix/")
    headers = page.locator("table.matrix thead th.release").all_inner_texts()
    assert headers == ["2.6.0", "2.5.1", "2.4.1"]
    variants = page.locator("table.matrix thead th.variant").evaluate_all(
        "cells => cells.map(c => c.dataset.release + ' ' + c.dataset.variant)"
    )
    assert variants[:4] == ["2.6.0 cpu", "2.6.0 cuda12.4", "2.5.1 cpu", "2.5.1 cuda12.4"]
    # One row per package and platform; the failing cell is 2.5.1 x cuda12.4 on linux-64.
    kornia_linux = page.locator("tr[data-package=kornia][data-platform=linux-64] td.cell")
    expect(kornia_linux.nth(3)).to_contain_text("failed")
    expect(kornia_linux.nth(2)).to_contain_text("passed")
    expect(
        page.locator("tr[data-package=kornia][data-platform=osx-arm64] td.cell").nth(3)
    ).to_contain_text("passed")
    # In flight is never failure; nothing reported is "no result".
    expect(page.locator("tr[data-package=mmf] td.cell").first).to_contain_text("queued")
    expect(page.locator("tr[data-package=newcomer]")).to_contain_text("no result yet")
    screenshot("matrix")

    page.get_by_label("Status").select_option("failing")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=failing"))
    # Failing only: the failing cell, its row and its column, nothing else.
    expect(page.locator("table.matrix tbody tr")).to_have_count(1)
    expect(page.locator("table.matrix thead th.variant")).to_have_count(1)
    page.get_by_role("link", name="Heatmap view").click()
    expect(page.locator("#matrix-heatmap .js-plotly-plot")).to_be_visible()
    screenshot("matrix-heatmap")
    page.get_by_role("link", name="Table view").click()

    page.locator("tr[data-package=kornia] td.cell.v-failed").get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text("kornia on PyTorch 2.5.1, cuda12.4, linux-64")
    expect(page.locator(".cell-reason")).to_contain_text("AssertionError: hue differs by 0.02")
    screenshot("matrix-cell")
    page.goto(live_server.url + "/packages/kornia/")
    expect(page.locator("#test-matrix")).to_be_visible()
    screenshot("package-matrix")
    page.goto(live_server.url + f"/jobs/{dashboard['failed_job'].pk}/")
    expect(page.locator(".excerpt")).to_contain_text("AssertionError: hue differs by 0.02")
    assert (
        page.locator(".excerpt").bounding_box()["y"] < page.locator("#job-log").bounding_box()["y"]
    )
    screenshot("job")


def test_run_page_updates_live_while_jobs_finish(dashboard, live_server, page, screenshot):
    axes = dashboard["axes"]
    run = factories.RunFactory(
        trigger="new_build",
        state="running",
        started_at=timezone.now(),
        trigger_detail="sync of channel staging",
    )
    build = make_build(
        make_package("torchmetrics", axes, version="1.4"), axes, version="1.4", subdir="linux-64"
    )
    linux = axes.platforms[0]
    record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[0],
        platform=linux,
        verdicts=["passed"],
        run=run,
    )
    running = record_cell(
        build=build,
        release=axes.releases[1],
        variant=axes.variants[0],
        platform=linux,
        verdicts=["running"],
        run=run,
    ).jobs[-1]
    record_cell(
        build=build,
        release=axes.releases[2],
        variant=axes.variants[1],
        platform=linux,
        verdicts=["queued"],
        run=run,
    )
    page.goto(live_server.url + f"/runs/{run.pk}/")
    progress = page.locator("#run-progress .progress-text")
    expect(progress).to_contain_text("1 of 3 jobs done")
    screenshot("run")
    # The worker finishes a job: the page shows it without a reload.
    Job.objects.filter(pk=running.pk).update(status="finished", verdict="failed", duration_s=42)
    expect(progress).to_contain_text("2 of 3 jobs done", timeout=15_000)
    row = page.locator(f'tr[data-job="{running.pk}"]')
    expect(row.locator(".job-state")).to_contain_text("failed")
    expect(row.locator(".job-duration")).to_contain_text("42.0 s")
    screenshot("run-updated")


def test_hosts_page_shows_hosts_and_unserved_queues(dashboard, live_server, page, screenshot):
    factories.HostFactory(
        name="gpu-b",
        last_heartbeat_at=timezone.now(),
        queues=["test.linux-64.cuda12.4", "test.linux-64.cpu"],
    )
    factories.HostFactory(
        name="mac-1",
        platform=factories.PlatformFactory(subdir="osx-arm64"),
        gpus=[],
        driver_version="",
        max_cuda="",
        last_heartbeat_at=timezone.now(),
        state="draining",
        queues=["test.osx-arm64.cpu"],
    )
    page.goto(live_server.url + "/hosts/")
    expect(page.locator("#host-gpu-b")).to_contain_text("NVIDIA H100")
    expect(page.get_by_role("alert")).to_contain_text("No online host serves")
    screenshot("hosts")
