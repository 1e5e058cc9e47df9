"""Faults 4 and 5 (docs/fault-runs.md), with the conda-build stand-in as a real subprocess:
a test that hangs (and ignores SIGTERM) until the hard timeout, and a log disk that is full."""

import contextlib
import errno
import subprocess
from pathlib import Path

import pytest
import redis
from django.conf import settings

from testing_app.adapters.job_log import JobLog
from testing_app.adapters.job_log import Redactor
from testing_app.models import Job
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.outcomes import log_failure
from tests import factories
from tests.faults.helpers import QUEUE
from tests.faults.helpers import chains
from tests.faults.helpers import live_pids
from tests.faults.helpers import nothing_in_redis
from tests.faults.helpers import redis_holds
from tests.faults.helpers import status_counts

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def _enqueue_one(build, cell, **fields) -> Job:
    (job,) = enqueue_jobs(
        run=factories.RunFactory(), jobs=[Job(kind="test", build=build, **cell, **fields)]
    )
    return job


def test_hanging_test_is_killed_with_its_whole_process_group_and_retried_once(
    worker, make_build, cpu_cell, token, tmp_path
):
    groups = tmp_path / "groups.txt"
    # Every run notes its process group, starts two more processes that also ignore SIGTERM,
    # and waits forever: only SIGKILL to the whole group ends it.
    hang = (
        "trap '' TERM\n"
        f"cut -d' ' -f5 /proc/$$/stat >> {groups}\n"
        "sleep 600 &\n"
        "( trap '' TERM; sleep 600 ) &\n"
        "echo hanging\n"
        "wait\n"
    )
    job = _enqueue_one(make_build("hangs", run_test_sh=hang), cpu_cell, timeout_s=2)
    run = worker("--enroll-token", token, "--name", "host-a", "--burst")
    assert run.wait(timeout=120) == 0, run.output()[-3000:]

    # `timeout` is retried once, then no more: two attempts, both timed out.
    (chain,) = chains([job])
    assert [(j.attempt, j.status, j.verdict) for j in chain] == [
        (1, "finished", "timeout"),
        (2, "finished", "timeout"),
    ]
    for attempt in chain:
        assert attempt.error_message == "Ran past its 2 s limit; the process group was killed."
        # conda-build itself ends on SIGTERM; the test's processes ignore it and are ended by
        # the SIGKILL to the whole group that follows (checked below).
        assert attempt.exit_code == -15
    pgids = [int(line) for line in groups.read_text().split()]
    assert len(pgids) == 2
    for pgid in pgids:
        assert live_pids(pgid=pgid) == [], f"process group {pgid} survived the timeout"
    assert status_counts() == {("finished", "timeout"): 2}
    assert redis_holds(redis.Redis.from_url(settings.REDIS_URL)) == nothing_in_redis()


@contextlib.contextmanager
def _full_disk(path: Path):
    """`path` as a tiny tmpfs filled to the last byte: writes get a real ENOSPC from the kernel.
    Needs root (CI runs as root); elsewhere the test is skipped."""
    path.mkdir()
    mount = subprocess.run(  # noqa: S603
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mount.stderr.strip()}")
    try:
        with contextlib.suppress(OSError), (path / "filler").open("wb", buffering=0) as filler:
            while True:
                filler.write(b"x" * 4096)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)  # noqa: S603,S607


def test_full_log_disk_ends_the_job_error_naming_the_cause(
    worker, make_build, cpu_cell, token, tmp_path
):
    job = _enqueue_one(make_build("fine", run_test_sh="echo ok\n"), cpu_cell)
    with _full_disk(tmp_path / "full-logs") as logs:
        run = worker(
            "--enroll-token", token, "--name", "host-a", "--burst", env={"LOG_DIR": str(logs)}
        )
        assert run.wait(timeout=120) == 0, run.output()[-3000:]
        left_on_disk = {p.name: p.stat().st_size for p in logs.iterdir() if p.name != "filler"}
    (chain,) = chains([job])
    # An infrastructure error: retried (another host may have room) up to the job's attempts.
    assert [(j.attempt, j.status, j.verdict) for j in chain] == [
        (1, "finished", "error"),
        (2, "finished", "error"),
        (3, "finished", "error"),
    ]
    for attempt in chain:
        assert attempt.error_message == (
            f"The job's log could not be written to {logs / attempt.log_path}: No space left on "
            "device. The log disk (LOG_DIR) of this host is full or failing; the last lines are "
            "kept here."
        )
        # The test itself ran; what it printed is kept on the job (the live tail).
        assert "All tests passed" in attempt.log_tail
        assert "verdict: passed" in attempt.log_tail
    # Nothing fitted on the disk: each attempt left an empty log file, nothing else.
    assert left_on_disk == {f"{attempt.pk}.log": 0 for attempt in chain}
    assert status_counts() == {("finished", "error"): 3}
    assert redis_holds(redis.Redis.from_url(settings.REDIS_URL), QUEUE) == nothing_in_redis()


def test_job_log_on_a_device_that_is_always_full_keeps_the_tail_and_the_cause(tmp_path):
    """The same ENOSPC without root: the log file is /dev/full (every write fails)."""
    path = tmp_path / "7.log"
    path.symlink_to("/dev/full")
    log = JobLog(path, redact=Redactor([]), tail_lines=3)
    for number in range(5):
        log.write(f"line {number}")
    assert log.finish() == path  # left as it is: nothing compressed, nothing read back
    assert log.tail() == "line 2\nline 3\nline 4"
    assert log.write_error.errno == errno.ENOSPC
    assert log_failure(log).startswith(
        f"The job's log could not be written to {path}: No space left on device."
    )
