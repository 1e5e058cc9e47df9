"""The test runner end to end in one process: real package files, a file:// staging channel, the
conda-build stand-in as a real subprocess, and every fact recorded on the Job."""

import gzip
from pathlib import Path

import pytest

from packages_app.models import Channel
from testing_app.adapters.job_log import read_log_text
from testing_app.models import Job
from testing_app.models import Verdict
from testing_app.services.conda_runner import channel_urls
from testing_app.services.conda_runner import extra_deps
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import execute_job
from tests import factories

PASSING = {"module_source": "ANSWER = 42\n", "run_test_py": "import {n}\nassert {n}.ANSWER == 42\n"}


def _run(build, cell, **fields) -> Job:
    (job,) = enqueue_jobs(
        run=factories.RunFactory(), jobs=[Job(kind="test", build=build, **cell, **fields)]
    )
    finished = execute_job(job_id=job.pk)
    assert finished is not None
    return Job.objects.get(pk=finished.pk)


def _log(job: Job) -> str:
    from django.conf import settings

    return read_log_text(Path(settings.LOG_DIR) / job.log_path)


@pytest.mark.django_db
def test_passing_package_records_every_fact(engine_settings, make_build, cpu_cell):
    build = make_build(
        "kornia",
        depends=("pytorch >=2.4,<2.6",),
        module_source=PASSING["module_source"],
        run_test_py=PASSING["run_test_py"].format(n="kornia"),
    )
    job = _run(build, cpu_cell, python="3.11", extra_specs=["cpuonly"])
    assert (job.status, job.verdict, job.exit_code) == ("finished", "passed", 0)
    assert job.runner == "conda-build"
    assert job.runner_version == "24.9.0"
    assert job.command[1:3] == ["--test", job.command[2]]
    assert job.command[-3:] == ["pytorch ==2.5.1", "cpuonly", "python 3.11.*"]
    assert job.download_s is not None
    assert job.test_s > 0
    assert job.duration_s >= job.test_s
    assert {"name": "pytorch", "channel": "fake-channel", "package": "pytorch-2.5.1-0"} in (
        job.solved_packages
    )
    assert job.log_path == f"{job.pk}.log.gz"
    assert "TEST END" in _log(job)
    assert "verdict: passed" in job.log_tail


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("package", "verdict"),
    [
        ({"run_test_sh": "echo 'assertion failed'\nexit 1\n"}, Verdict.FAILED),
        ({"depends": ("pytorch 2.1.*",), "run_test_sh": "true\n"}, Verdict.UNINSTALLABLE),
        ({}, Verdict.NO_TESTS),
    ],
    ids=["failed", "uninstallable", "no_tests"],
)
def test_verdicts_follow_markers_and_exit_codes(
    engine_settings, make_build, cpu_cell, package, verdict
):
    job = _run(make_build("pkg", **package), cpu_cell)
    assert job.verdict == verdict
    assert not Job.objects.filter(retry_of=job).exists()  # never retried automatically
    if verdict == Verdict.FAILED:
        assert "assertion failed" in job.failure_excerpt
    if verdict == Verdict.UNINSTALLABLE:
        assert "Unsatisfiable dependencies" in job.failure_excerpt


@pytest.mark.django_db
def test_timeout_is_recorded_and_retried_once(engine_settings, make_build, cpu_cell):
    build = make_build("slow", run_test_sh="echo waiting\nsleep 120\n")
    job = _run(build, cpu_cell, timeout_s=2)
    assert job.verdict == Verdict.TIMEOUT
    assert "2 s limit" in job.error_message
    retry = Job.objects.get(retry_of=job)
    assert (retry.status, retry.attempt, retry.timeout_s) == ("queued", 2, 2)


@pytest.mark.django_db
def test_corrupt_download_is_an_error_and_retried(engine_settings, make_build, cpu_cell):
    build = make_build("tampered", run_test_sh="true\n")
    build.sha256 = "f" * 64
    build.save()
    job = _run(build, cpu_cell)
    assert job.verdict == Verdict.ERROR
    assert "checksum mismatch" in job.error_message
    assert Job.objects.get(retry_of=job).attempt == 2


@pytest.mark.django_db
def test_missing_conda_build_is_an_error(engine_settings, make_build, cpu_cell, tmp_path):
    engine_settings.CONDA_BUILD_BIN = str(tmp_path / "no-conda-build")
    job = _run(make_build("pkg", run_test_sh="true\n"), cpu_cell, required_runner="conda-build")
    assert job.verdict == Verdict.ERROR
    assert "Could not start" in job.error_message


@pytest.mark.django_db
def test_secrets_never_reach_the_log_or_the_job(engine_settings, make_build, cpu_cell, monkeypatch):
    secret = "anaconda-secret-abcdef"
    engine_settings.ANACONDA_API_TOKEN = secret
    monkeypatch.setenv("SOME_SERVICE_PASSWORD", "hunter2-hunter2")
    script = f'echo "{secret}"\necho "pw=${{SOME_SERVICE_PASSWORD:-hidden}}"\n'
    channel_token = "tk-0123456789abcdef"
    Channel.objects.create(
        name="private", url=f"https://conda.example.org/t/{channel_token}/private", role="upstream"
    )
    job = _run(make_build("leaky", run_test_sh=script), cpu_cell)
    text = _log(job)
    assert secret not in text
    assert "hunter2-hunter2" not in text
    assert "pw=hidden" in text  # the secret variable was not even passed to the test
    assert secret not in " ".join(job.command)
    assert channel_token not in " ".join(job.command)
    assert "https://conda.example.org/t/[redacted]/private" in job.command
    assert secret not in job.log_tail


@pytest.mark.django_db
def test_channels_and_extra_deps_for_a_reverse_dependency_retest(make_build, cpu_cell):
    target = Channel.objects.create(
        name="distro", url="https://conda.example.org/distro", role="target"
    )
    upstream = Channel.objects.create(
        name="cf", url="https://conda.example.org/cf", role="upstream"
    )
    build = make_build("downstream", run_test_sh="true\n")
    pinned = factories.BuildFactory(
        channel=build.channel, name="upstreamlib", version="0.8.1", build_string="py_2"
    )
    cuda = factories.VariantFactory(
        name="cuda12.4",
        kind="cuda",
        select_specs={"conda-forge": ["pytorch * cuda*", "cuda-version 12.4.*"]},
    )
    job = Job(
        kind="test",
        build=build,
        torch_release=cpu_cell["torch_release"],
        variant=cuda,
        platform=cpu_cell["platform"],
        pinned_build=pinned,
        python="3.12",
    )
    assert channel_urls(job) == [build.channel.base_url, target.base_url, upstream.base_url]
    assert extra_deps(job) == [
        "pytorch ==2.5.1",
        "pytorch * cuda*",
        "cuda-version 12.4.*",
        "upstreamlib ==0.8.1 py_2",
        "python 3.12.*",
    ]


def test_log_is_kept_whole_and_compressed(tmp_path):
    path = tmp_path / "1.log.gz"
    path.write_bytes(gzip.compress(b"line one\nline two\n"))
    assert read_log_text(path) == "line one\nline two\n"
