"""A job's log in Chromium: a test job run by a real `distro_worker` subprocess (the rattler
runner) shows its steps (set up, solve, install, each test) with start times and durations,
anchored in the text; a running job's page adds steps as the log grows. Screenshots at 1400 px
go to var/screenshots/."""

import re
import subprocess

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from packages_app.models import Build
from packages_app.models import TorchRelease
from packages_app.services.sync import sync_channels
from testing_app.adapters.job_log import JobLog
from testing_app.adapters.job_log import Redactor
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Run
from testing_app.models import Variant
from testing_app.services.dispatch import enqueue_jobs
from tests.browser.helpers import ROOT
from tests.browser.helpers import worker_command
from tests.browser.helpers import worker_env
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.planning_world import sample_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDE = {"width": 1400, "height": 1000}
# Live updates come every POLL_MS (3 s); a busy machine may need a few rounds.
LIVE_TIMEOUT_MS = 30_000
CLOCK_TIME = re.compile(r"^\d\d:\d\d:\d\d$")
DURATION = re.compile(r"^\d+\.\d s$| min ")


@pytest.fixture
def world(tmp_path, settings):
    settings.VAR_DIR = tmp_path / "var"
    settings.LOG_DIR = tmp_path / "logs"
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    world = sample_world(tmp_path)
    sync_channels(channels=[world.channel], plan=False)
    return world


def _queued_test_job(world, name: str, release: str) -> Job:
    build = Build.objects.get(channel=world.channel, name=name, version__in=["1.0.0", release])
    (job,) = enqueue_jobs(
        run=Run.objects.create(trigger=Run.Trigger.MANUAL),
        jobs=[
            Job(
                kind=Job.Kind.TEST,
                build=build,
                torch_release=TorchRelease.objects.get(version=release),
                variant=Variant.objects.get(name="cpu"),
                platform=Platform.objects.get(subdir=SUBDIR),
                extra_specs=["pytorch * cpu*"],
                timeout_s=300,
                required_runner="rattler",
            )
        ],
    )
    return job


def test_a_finished_jobs_log_shows_its_steps_and_anchors_them(
    world, tmp_path, settings, live_server, page, screenshot
):
    job = _queued_test_job(world, "sample-legacy-layout", "2.5.1")
    worker = subprocess.run(  # noqa: S603
        worker_command("log-steps", burst=True),
        env=worker_env(tmp_path, settings), cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert worker.returncode == 0, (worker.stdout + worker.stderr)[-4000:]
    job.refresh_from_db()
    assert job.verdict == "failed", job.log_tail

    page.set_viewport_size(WIDE)
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    steps = page.locator("#log-steps li")
    expect(steps).to_have_count(4)
    expect(steps.nth(0)).to_contain_text("set up")
    expect(steps.nth(1)).to_contain_text("solve the test environment")
    expect(steps.nth(2)).to_contain_text("install the test environment")
    expect(steps.nth(3)).to_contain_text("test 1: bash -e run_test.sh")
    for index in range(4):  # a start time and a duration each: the job has ended
        expect(steps.nth(index).locator("time")).to_have_text(CLOCK_TIME)
        expect(steps.nth(index).locator(".step-duration")).to_have_text(DURATION)
    steps.nth(3).locator("a").click()
    assert page.url.endswith("#log-step-4")
    test_line = page.locator("#log-step-4")
    expect(test_line).to_be_in_viewport()
    expect(test_line).to_contain_text("##[step ")
    # The test's own output follows its step's line in the text.
    text = page.locator("#job-log").inner_text()
    assert "does not work with PyTorch 2.5" in text.split("test 1: bash -e run_test.sh", 1)[1]
    screenshot("job-log-steps-finished")


def test_a_running_jobs_page_adds_steps_as_the_log_grows(
    world, tmp_path, settings, live_server, page, screenshot
):
    job = _queued_test_job(world, "sample-passes", "2.5.1")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, started_at=timezone.now())
    settings.LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = JobLog(settings.LOG_DIR / f"{job.pk}.log", redact=Redactor([]))
    Job.objects.filter(pk=job.pk).update(log_path=log.path.name)
    log.step("set up: fetch the package, prepare the test")
    log.write("fetching sample-passes")

    page.set_viewport_size(WIDE)
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    steps = page.locator("#log-steps li")
    expect(steps).to_have_count(1)
    expect(steps.nth(0).locator(".step-duration")).to_have_text("running")

    log.write("##[step] solve the test environment")  # as the rattler runner asks for it
    log.write("solving for linux-64: sample-passes")
    expect(steps).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
    expect(steps.nth(1)).to_contain_text("solve the test environment")
    expect(steps.nth(1).locator(".step-duration")).to_have_text("running")
    expect(steps.nth(0).locator(".step-duration")).not_to_have_text("running")
    expect(page.locator("#log-step-2")).to_contain_text("solve the test environment")
    expect(page.locator("#job-log")).to_contain_text("solving for linux-64: sample-passes")
    screenshot("job-log-steps-live")
    log.close()
