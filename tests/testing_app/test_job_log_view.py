"""A job's log on its page: the outline of its steps (start time, duration, anchor into the
text), the whole log on request, and the live endpoint's increments with their step markers."""

from datetime import UTC
from datetime import datetime
from datetime import timedelta

import pytest
from django.utils import timezone

from testing_app.adapters.job_log import JobLog
from testing_app.adapters.job_log import Redactor
from testing_app.models import Job
from testing_app.selectors.logs import TAIL_BYTES
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _clock(*seconds: float):
    times = iter([START + timedelta(seconds=s) for s in seconds])
    return lambda: next(times)


@pytest.fixture
def job(tmp_path, settings):
    settings.LOG_DIR = tmp_path
    axes = make_axes()
    build = make_build(make_package("kornia", axes), axes, version="0.7.3", subdir="linux-64")
    return record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["passed"],
    ).jobs[-1]


def _write_log(job, tmp_path, *, filler: str = "", finish: bool = True, clock=None):
    log = JobLog(
        tmp_path / f"{job.pk}.log", redact=Redactor([]), clock=clock or _clock(0, 2.5, 9.25, 10)
    )
    log.step("set up")
    log.write("fetching kornia-0.7.3.conda")
    if filler:
        log.write(filler)
    log.write("##[step] solve the test environment")  # as the rattler runner asks for it
    log.write("solved: 2 packages")
    log.step("test 1: pytest -x")
    log.write("1 passed")
    path = log.finish() if finish else log.path
    Job.objects.filter(pk=job.pk).update(log_path=path.name)
    return log


def test_job_page_outlines_the_steps_with_start_times_durations_and_anchors(job, client, tmp_path):
    _write_log(job, tmp_path)

    content = client.get(f"/jobs/{job.pk}/").content.decode()

    outline = content[content.index('id="log-steps"') : content.index("</ol>")]
    for number, name, started, duration in (
        (1, "set up", "12:00:00", "2.5 s"),
        (2, "solve the test environment", "12:00:02", "6.8 s"),
        (3, "test 1: pytest -x", "12:00:09", "0.8 s"),
    ):
        assert f'href="#log-step-{number}">{name}</a>' in outline
        assert f">{started}</time>" in outline
        assert duration in outline
    text = content[content.index('id="job-log"') :]
    assert (
        '<span class="log-step-line" id="log-step-2">'
        "##[step 2026-03-01T12:00:02.500Z] solve the test environment\n</span>solved: 2 packages"
    ) in text
    assert "##[end 2026-03-01T12:00:10.000Z]" in text


def test_steps_before_the_shown_tail_link_to_the_whole_log(job, client, tmp_path):
    _write_log(job, tmp_path, filler="x" * (TAIL_BYTES + 10))

    tail = client.get(f"/jobs/{job.pk}/").content.decode()
    full = client.get(f"/jobs/{job.pk}/?log=full").content.decode()

    assert 'href="?log=full#log-step-1">set up</a>' in tail
    assert 'id="log-step-1"' not in tail  # not in the shown text
    assert 'href="#log-step-3">test 1: pytest -x</a>' in tail
    assert 'id="log-step-3"' in tail
    assert 'id="log-step-1"' in full
    assert 'href="#log-step-1">set up</a>' in full


def test_live_endpoint_returns_the_increments_and_their_step_markers(job, client, tmp_path):
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, verdict="", finished_at=None, started_at=timezone.now()
    )
    log = JobLog(tmp_path / f"{job.pk}.log", redact=Redactor([]), clock=_clock(0, 3))
    Job.objects.filter(pk=job.pk).update(log_path=log.path.name)
    log.step("set up")
    log.write("fetching")

    first = client.get(f"/jobs/{job.pk}/log.json?offset=0").json()
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    log.step("solve the test environment")
    log.write("solving")
    second = client.get(f"/jobs/{job.pk}/log.json?offset={first['next_offset']}").json()
    third = client.get(f"/jobs/{job.pk}/log.json?offset={second['next_offset']}").json()

    assert first["live"] is True
    assert first["text"] == "##[step 2026-03-01T12:00:00.000Z] set up\nfetching\n"
    assert first["markers"] == [
        {"kind": "step", "name": "set up", "at": "2026-03-01T12:00:00+00:00"}
    ]
    assert second["text"] == (
        "##[step 2026-03-01T12:00:03.000Z] solve the test environment\nsolving\n"
    )
    assert [m["name"] for m in second["markers"]] == ["solve the test environment"]
    assert (third["text"], third["markers"]) == ("", [])
    # While the job runs, its last step has no duration yet.
    assert '<li data-started="2026-03-01T12:00:00+00:00" class="running">' in page
    assert ">running</span>" in page
    log.close()


def test_a_worker_that_died_leaves_its_last_step_ending_with_the_job(job, client, tmp_path):
    log = _write_log(job, tmp_path, finish=False)
    log.close()  # no end marker: the runner never finished the log
    Job.objects.filter(pk=job.pk).update(finished_at=START + timedelta(seconds=15))

    content = client.get(f"/jobs/{job.pk}/").content.decode()

    outline = content[content.index('id="log-steps"') : content.index("</ol>")]
    assert "running" not in outline
    assert "5.8 s" in outline  # 12:00:09.25 to the job's end at 12:00:15
