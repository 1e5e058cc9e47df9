"""What every fault run needs: jobs to run, the runner's record, `manage.py` as a separate
process, processes found through /proc, and the end state of the database and of Redis."""

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.registry import ScheduledJobRegistry
from rq.registry import StartedJobRegistry

from testing_app.models import Job
from testing_app.services.dispatch import RQ_JOB_ID_PREFIX
from testing_app.services.dispatch import enqueue_jobs
from tests import factories
from tests.testing_app.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "test.linux-64.cpu"
SLEEP_RUNNER = "tests.faults.runners.sleep_then_pass"


def enqueue_cells(cell: dict, count: int, **fields) -> list[Job]:
    """`count` test jobs of one run, one cell each (they differ by python), pushed to Redis."""
    build = fields.pop("build", None) or factories.BuildFactory()
    return enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[
            Job(kind="test", build=build, python=f"3.{index}", **cell, **fields)
            for index in range(count)
        ],
    )


def runner_env(record: Path, *, sleep_s: float) -> dict[str, str]:
    return {
        "DISTRO_JOB_RUNNER": SLEEP_RUNNER,
        "FAULT_RUNNER_RECORD": str(record),
        "FAULT_RUNNER_SLEEP_S": str(sleep_s),
    }


def recorded(record: Path) -> tuple[Counter, Counter]:
    """(starts, completions) per job pk, as the runner wrote them."""
    starts, done = Counter(), Counter()
    lines = record.read_text().split("\n") if record.exists() else []
    for line in filter(None, lines):
        word, pk, *_ = line.split()
        (starts if word == "start" else done)[int(pk)] += 1
    return starts, done


def manage(*args: str, env: dict[str, str], timeout: float = 60) -> str:
    """`manage.py <args>` as its own process (as an operator or cron would run it)."""
    result = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces; everything after its ")" is space-separated.
    return text[text.rindex(")") + 2 :].split()


def live_pids(*, pgid: int | None = None, sid: int | None = None) -> list[int]:
    """Processes (zombies excluded) of a process group or of a session."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # After the name: state, ppid, pgrp, session.
        if fields is None or fields[0] == "Z":
            continue
        if (pgid is not None and int(fields[2]) == pgid) or (
            sid is not None and int(fields[3]) == sid
        ):
            found.append(int(entry.name))
    return found


def kill_session(sid: int) -> list[int]:
    """SIGKILL every process of a session (a worker and everything it started), like a node
    that loses power or an OOM kill of the whole service."""
    pids = live_pids(sid=sid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def redis_holds(connection: redis.Redis, queue_name: str = QUEUE) -> dict[str, list[str]]:
    """Our job ids in every place RQ keeps them for one queue."""
    queue = Queue(queue_name, connection=connection)
    places = {
        "queued": connection.lrange(queue.key, 0, -1),
        "intermediate": connection.lrange(queue.intermediate_queue_key, 0, -1),
        "scheduled": connection.zrange(ScheduledJobRegistry(queue=queue).key, 0, -1),
        "started": connection.zrange(StartedJobRegistry(queue=queue).key, 0, -1),
        "failed": connection.zrange(FailedJobRegistry(queue=queue).key, 0, -1),
    }
    return {
        place: sorted(
            raw.decode().split(":", 1)[0]
            for raw in ids
            if raw.decode().startswith(RQ_JOB_ID_PREFIX)
        )
        for place, ids in places.items()
    }


def nothing_in_redis() -> dict[str, list[str]]:
    return {"queued": [], "intermediate": [], "scheduled": [], "started": [], "failed": []}


def chains(jobs: list[Job]) -> list[list[Job]]:
    """Each original job followed by its retries, oldest first."""
    result = []
    for job in jobs:
        chain = [Job.objects.get(pk=job.pk)]
        while (following := Job.objects.filter(retry_of=chain[-1]).first()) is not None:
            chain.append(following)
        result.append(chain)
    return result


def status_counts() -> dict[tuple[str, str], int]:
    counts = Counter(Job.objects.values_list("status", "verdict"))
    return dict(counts)


def wait_showing(predicate, workers, *, timeout: float, what: str):
    """wait_for, failing at once when a worker exits, and with the end of every worker's output
    (what went wrong over there)."""

    def done_or_worker_gone():
        if any(w.proc.poll() is not None for w in workers):
            raise pytest.fail.Exception(f"a worker exited while waiting for {what}")
        return predicate()

    try:
        return wait_for(done_or_worker_gone, timeout=timeout, what=what)
    except pytest.fail.Exception:
        outputs = "\n".join(f"--- worker {i}:\n{w.output()[-2500:]}" for i, w in enumerate(workers))
        pytest.fail(f"no {what}\n{outputs}")
