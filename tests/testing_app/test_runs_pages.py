"""Run, job, host and trend pages: progress, ETA, excerpts, logs, queues, access."""

import gzip
from datetime import timedelta

import django_rq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from testing_app.models import Job
from testing_app.selectors.hosts import get_queue_depths
from testing_app.selectors.logs import extract_failure_excerpt
from testing_app.selectors.runs import get_run_progress
from tests import factories
from tests.testing_app.matrix_scenarios import make_axes
from tests.testing_app.matrix_scenarios import make_build
from tests.testing_app.matrix_scenarios import make_package
from tests.testing_app.matrix_scenarios import record_cell

pytestmark = pytest.mark.django_db

SOLVER_LOG = """TEST START: kornia-0.7.3-pyhd8ed1ab_0.conda
failed to get package records, retrying
Cannot solve the request because of: torchvision 0.18.1 would require
└─ pytorch ==2.3.1, for which no candidates were found.
TESTS FAILED: kornia-0.7.3-pyhd8ed1ab_0.conda
"""
TEST_FAILURE_LOG = "\n".join(
    [f"setup line {i}" for i in range(100)]
    + [
        "tests/test_color.py::test_rgb_to_hsv FAILED",
        "E   AssertionError: tensors differ by 0.02",
        "TESTS FAILED: kornia-0.7.3-pyhd8ed1ab_0.conda",
    ]
)


@pytest.fixture
def axes():
    return make_axes()


@pytest.fixture
def run_with_jobs(axes):
    """A running run: 3 passed, 1 failed, 1 running, 2 queued on two queues."""
    run = factories.RunFactory(
        trigger="torch_release",
        state="running",
        torch_release=axes.releases[0],
        started_at=timezone.now(),
    )
    package = make_package("kornia", axes)
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    linux = axes.platforms[0]
    plan = [
        ("passed", 0, 0),
        ("passed", 1, 0),
        ("passed", 2, 0),
        ("failed", 0, 1),
        ("running", 1, 1),
        ("queued", 2, 1),
    ]
    for verdict, release_index, variant_index in plan:
        record_cell(
            build=build,
            release=axes.releases[release_index],
            variant=axes.variants[variant_index],
            platform=linux,
            verdicts=[verdict],
            run=run,
        )
    other = make_build(package, axes, version="1.0", subdir="osx-arm64")
    record_cell(
        build=other,
        release=axes.releases[0],
        variant=axes.variants[0],
        platform=axes.platforms[1],
        verdicts=["queued"],
        run=run,
    )
    return run


def test_run_progress_counts_by_verdict_and_estimates_remaining_time(run_with_jobs):
    progress = get_run_progress(run_with_jobs)
    assert (progress.total, progress.done, progress.running, progress.queued) == (7, 4, 1, 2)
    assert progress.by_verdict == {"passed": 3, "failed": 1}
    assert [s.key for s in progress.segments] == ["failed", "passed", "running", "queued"]
    # Every finished job took ~300 s; 2 queued + half of 1 running, spread over 1 running job.
    assert progress.remaining_s == pytest.approx(2.5 * 301.5, rel=0.02)


def test_run_without_finished_jobs_has_no_estimate(axes):
    run = factories.RunFactory(state="running")
    build = make_build(make_package("p", axes), axes, version="1.0", subdir="linux-64")
    record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["queued"],
        run=run,
    )
    assert get_run_progress(run).remaining_s is None


def test_run_page_shows_trigger_progress_and_filters_jobs(run_with_jobs, client):
    content = client.get(f"/runs/{run_with_jobs.pk}/").content.decode()
    assert "New PyTorch release" in content
    assert 'role="progressbar"' in content
    assert '4</strong> of <strong class="total-count">7</strong> jobs done' in content
    assert "left, estimated from observed durations" in content
    assert "js/run_live.js" in content
    filtered = client.get(f"/runs/{run_with_jobs.pk}/?verdict=failed").content.decode()
    assert filtered.count("<tr data-job=") == 1
    assert client.get(f"/runs/{run_with_jobs.pk}/?status=bogus").status_code == 400


def test_run_progress_json_reports_segments_and_listed_jobs(run_with_jobs, client):
    job = run_with_jobs.jobs.get(status="running")
    data = client.get(f"/runs/{run_with_jobs.pk}/progress.json?jobs={job.pk}").json()
    assert data["live"] is True
    assert data["done"] == 4
    assert {s["key"]: s["count"] for s in data["segments"]}["queued"] == 2
    assert data["jobs"][str(job.pk)]["key"] == "running"
    # The worker finishes the job: the next poll says so.
    Job.objects.filter(pk=job.pk).update(status="finished", verdict="passed", duration_s=10)
    data = client.get(f"/runs/{run_with_jobs.pk}/progress.json?jobs={job.pk}").json()
    assert data["jobs"][str(job.pk)]["label"] == "passed"
    assert data["done"] == 5
    too_many = ",".join(str(i) for i in range(1, 300))
    assert client.get(f"/runs/{run_with_jobs.pk}/progress.json?jobs={too_many}").status_code == 400


def test_run_pages_query_count_does_not_grow_with_jobs(run_with_jobs, client, axes):
    urls = ["/runs/", f"/runs/{run_with_jobs.pk}/", f"/runs/{run_with_jobs.pk}/progress.json"]

    def count(url):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    small = [count(url) for url in urls]
    build = run_with_jobs.jobs.first().build
    for release in axes.releases:
        record_cell(
            build=build,
            release=release,
            variant=axes.variants[0],
            platform=axes.platforms[1],
            verdicts=["passed", "failed"],
            run=run_with_jobs,
            python="3.12",
        )
    factories.RunFactory.create_batch(5)
    assert [count(url) for url in urls] == small
    assert max(small) <= 15


def test_excerpt_prefers_the_solver_explanation():
    excerpt = extract_failure_excerpt(SOLVER_LOG)
    assert excerpt.splitlines()[2].startswith("Cannot solve the request")
    assert "no candidates were found" in excerpt


def test_excerpt_shows_the_lines_before_tests_failed():
    excerpt = extract_failure_excerpt(TEST_FAILURE_LOG)
    assert "AssertionError: tensors differ" in excerpt
    assert excerpt.rstrip().endswith("TESTS FAILED: kornia-0.7.3-pyhd8ed1ab_0.conda")
    assert "setup line 10\n" not in excerpt
    assert "setup line 80" in excerpt


def _failed_job(axes, tmp_path, settings, *, text: str, compressed=False, verdict="failed"):
    settings.LOG_DIR = tmp_path
    build = make_build(make_package("kornia", axes), axes, version="0.7.3", subdir="linux-64")
    record = record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[1],
        platform=axes.platforms[0],
        verdicts=[verdict],
        host=factories.HostFactory(name="gpu-a"),
        gpu_index=0,
        command=["conda-build", "--test", "kornia.conda"],
        runner="conda-build",
        runner_version="25.1.2",
        exit_code=1,
        solved_packages=[{"name": "pytorch", "version": "2.5.1", "build": "cuda"}],
    )
    job = record.jobs[-1]
    name = f"{job.pk}.log" + (".gz" if compressed else "")
    if compressed:
        with gzip.open(tmp_path / name, "wt") as handle:
            handle.write(text)
    else:
        (tmp_path / name).write_text(text)
    Job.objects.filter(pk=job.pk).update(log_path=name)
    return job


def test_job_page_puts_the_excerpt_first_then_facts_and_log(axes, client, tmp_path, settings):
    job = _failed_job(axes, tmp_path, settings, text=TEST_FAILURE_LOG)
    content = client.get(f"/jobs/{job.pk}/").content.decode()
    assert content.index("AssertionError: tensors differ") < content.index('id="job-log"')
    for fact in (
        "conda-build --test kornia.conda",
        "25.1.2",
        "gpu-a",
        "550.54.15",
        "exit code 1",
        "attempt 1 of 3",
        "pytorch 2.5.1 cuda",
        "History of this cell",
    ):
        assert fact in content, fact
    assert 'data-live="0"' in content  # finished: no live tail


def test_job_page_excerpt_of_an_uninstallable_cell_is_the_solver_text(
    axes, client, tmp_path, settings
):
    job = _failed_job(
        axes, tmp_path, settings, text=SOLVER_LOG, compressed=True, verdict="uninstallable"
    )
    content = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "could not be installed" in content
    assert "no candidates were found" in content


def test_job_log_download_and_tail_from_offset(axes, client, tmp_path, settings):
    job = _failed_job(axes, tmp_path, settings, text="line one\nline two\n")
    response = client.get(f"/jobs/{job.pk}/log/?download=1")
    assert response["Content-Disposition"].startswith("attachment")
    assert b"".join(response.streaming_content) == b"line one\nline two\n"
    shown = client.get(f"/jobs/{job.pk}/log/")
    assert shown["Content-Type"] == "text/plain; charset=utf-8"
    assert shown["Content-Disposition"].startswith("inline")
    data = client.get(f"/jobs/{job.pk}/log.json?offset=9").json()
    assert data["text"] == "line two\n"
    assert data["next_offset"] == 18
    assert client.get(f"/jobs/{job.pk}/log.json?offset=-1").status_code == 400


def test_compressed_log_is_plain_text_unless_the_client_asks_for_gzip(
    axes, client, tmp_path, settings
):
    job = _failed_job(axes, tmp_path, settings, text="solve\ninstall\ntest\n", compressed=True)
    plain = client.get(f"/jobs/{job.pk}/log/?download=1")
    assert plain["Content-Type"] == "text/plain; charset=utf-8"
    assert "Content-Encoding" not in plain
    assert plain["Content-Disposition"] == f'attachment; filename="job-{job.pk}.log"'
    assert b"".join(plain.streaming_content) == b"solve\ninstall\ntest\n"
    packed = client.get(f"/jobs/{job.pk}/log/", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert packed["Content-Encoding"] == "gzip"
    assert gzip.decompress(b"".join(packed.streaming_content)) == b"solve\ninstall\ntest\n"
    refused = client.get(f"/jobs/{job.pk}/log/", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused


def test_job_log_tail_follows_a_growing_file_while_running(axes, client, tmp_path, settings):
    settings.LOG_DIR = tmp_path
    build = make_build(make_package("p", axes), axes, version="1", subdir="linux-64")
    job = record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["running"],
    ).jobs[-1]
    log = tmp_path / "running.log"
    log.write_text("collecting\npartial")
    Job.objects.filter(pk=job.pk).update(log_path=str(log))
    assert 'data-live="1"' in client.get(f"/jobs/{job.pk}/").content.decode()
    first = client.get(f"/jobs/{job.pk}/log.json?offset=0").json()
    assert first["text"] == "collecting\n"  # the half-written line waits for its end
    assert first["live"] is True
    with log.open("a") as handle:
        handle.write(" line\nTESTS FAILED: p\n")
    second = client.get(f"/jobs/{job.pk}/log.json?offset={first['next_offset']}").json()
    assert second["text"] == "partial line\nTESTS FAILED: p\n"


def test_job_log_outside_log_dir_is_never_served(axes, client, tmp_path, settings):
    settings.LOG_DIR = tmp_path / "logs"
    (tmp_path / "logs").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    build = make_build(make_package("p", axes), axes, version="1", subdir="linux-64")
    job = record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["failed"],
    ).jobs[-1]
    Job.objects.filter(pk=job.pk).update(log_path="../secret.txt")
    assert client.get(f"/jobs/{job.pk}/log/").status_code == 404
    assert "password" not in client.get(f"/jobs/{job.pk}/").content.decode()


def test_hosts_page_shows_hosts_queues_and_warns_about_unserved_queues(axes, client):
    now = timezone.now()
    factories.HostFactory(name="gpu-a", last_heartbeat_at=now, queues=["test.linux-64.cuda12.4"])
    factories.HostFactory(
        name="gpu-b", last_heartbeat_at=now - timedelta(hours=1), queues=["test.linux-64.cuda13.0"]
    )
    build = make_build(make_package("p", axes), axes, version="1", subdir="linux-64")
    record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["queued"],
        queue_name="test.osx-arm64.cpu",
    )
    django_rq.get_queue("default").connection.rpush("rq:queue:test.osx-arm64.cpu", "x")
    content = client.get("/hosts/").content.decode()
    assert "gpu-a" in content
    assert 'host-offline">offline' in content  # gpu-b is silent
    assert "No online host serves 2 queues" in content
    assert "<code>test.osx-arm64.cpu</code> (1 waiting)" in content
    assert "Jobs finished per day" in content


def test_queue_depths_report_an_unreachable_redis_instead_of_failing(axes):
    host = factories.HostFactory(queues=["test.linux-64.cpu"])

    def unreachable(names):
        raise RedisConnectionError("connection refused")

    report = get_queue_depths([host], redis_counts=unreachable)
    assert report.redis_error.startswith("Redis could not be read")
    assert report.queues[0].in_redis is None


def test_trends_and_release_wave_pages_render_charts(run_with_jobs, client, axes):
    content = client.get("/trends/").content.decode()
    assert "pass rate of test jobs per day" in content
    assert "test job durations per variant" in content
    content = client.get("/trends/?package=kornia").content.decode()
    assert "kornia: pass rate" in content
    wave = client.get(f"/releases/{axes.releases[0].version}/").content.decode()
    assert "cells by current verdict over time" in wave
    assert client.get("/releases/9.9.9/").status_code == 404


def test_read_pages_are_public_by_default_and_private_when_configured(axes, client, settings):
    assert client.get("/matrix/").status_code == 200
    settings.PUBLIC_READ = False
    response = client.get("/matrix/?q=x")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/matrix/")
    assert client.get("/packages/").status_code == 302
    api = client.get("/api/packages/")
    assert api.status_code == 401
    assert api.json()["code"] == "not_authenticated"
    user = factories.UserFactory()
    client.force_login(user)
    assert client.get("/matrix/").status_code == 200
    assert client.get("/api/packages/").status_code == 200


def _finished_job_of_maintained_package(axes, user):
    maintainer = factories.MaintainerFactory(user=user)
    package = make_package("kornia", axes, maintainer=maintainer)
    build = make_build(package, axes, version="1.0", subdir="linux-64")
    return record_cell(
        build=build,
        release=axes.releases[0],
        variant=axes.variants[0],
        platform=axes.platforms[0],
        verdicts=["failed"],
    ).jobs[-1]


def test_maintainer_retries_a_failed_job_from_its_page(axes, client):
    user = factories.UserFactory()
    job = _finished_job_of_maintained_package(axes, user)
    client.force_login(user)
    assert "Retry this cell" in client.get(f"/jobs/{job.pk}/").content.decode()
    response = client.post(f"/jobs/{job.pk}/retry/")
    retry = Job.objects.get(retry_of=job)
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{retry.pk}/"
    assert retry.status == "queued"
    assert retry.run.trigger == "retry"
    assert retry.run.triggered_by == user


def test_retry_is_refused_to_others_and_asks_anonymous_users_to_sign_in(axes, client):
    job = _finished_job_of_maintained_package(axes, factories.UserFactory())
    assert "Retry this cell" not in client.get(f"/jobs/{job.pk}/").content.decode()
    response = client.post(f"/jobs/{job.pk}/retry/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    stranger = factories.UserFactory()
    client.force_login(stranger)
    assert "Retry this cell" not in client.get(f"/jobs/{job.pk}/").content.decode()
    response = client.post(f"/jobs/{job.pk}/retry/", follow=True)
    assert "Only the package&#x27;s maintainers and release managers may retry it." in (
        response.content.decode()
    )
    assert not Job.objects.filter(retry_of=job).exists()
    assert client.get(f"/jobs/{job.pk}/retry/").status_code == 405
