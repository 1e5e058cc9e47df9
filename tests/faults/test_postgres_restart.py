"""Fault 3: PostgreSQL restarted while workers run jobs (docs/fault-runs.md).

A private cluster (initdb in a temporary folder, its own port) is the database of the workers;
`pg_ctl restart -m fast` ends every session while two jobs run. The workers reconnect, their
heartbeats resume, the jobs that were running are recorded, and every job ends once.
"""

import time

import psycopg
import pytest
import redis
from django.conf import settings

from tests.faults.helpers import manage
from tests.faults.helpers import nothing_in_redis
from tests.faults.helpers import recorded
from tests.faults.helpers import redis_holds
from tests.faults.helpers import runner_env
from tests.faults.helpers import wait_showing
from tests.faults.servers import PrivatePostgres
from tests.testing_app.conftest import wait_for

pytestmark = [pytest.mark.faults]

JOBS = 6
DATABASE = "distro_faults"


@pytest.fixture(scope="session")
def private_postgres():
    """Started and migrated once per test session; removed at its end."""
    server = PrivatePostgres()
    try:
        server.start()
        server.create_database(DATABASE)
        yield server
    finally:
        server.destroy()


def _query(url: str, sql: str) -> list[tuple]:
    """A short-lived connection per question: the server restarts under the test."""
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as connection:
            return connection.execute(sql).fetchall()
    except psycopg.OperationalError:
        return []


def test_postgres_restarted_mid_run_workers_reconnect_and_every_job_ends_once(
    private_postgres, worker, worker_env, tmp_path
):
    url = private_postgres.url(DATABASE)
    record = tmp_path / "runs.txt"
    env = {**worker_env, **runner_env(record, sleep_s=3), "DATABASE_URL": url}
    manage("migrate", "--noinput", env=env, timeout=300)
    token = manage("shell", "-c", f"from tests.faults.pg_world import seed; seed({JOBS})", env=env)
    workers = [
        worker("--enroll-token", token.split()[-1], "--name", name, env=env)
        for name in ("host-a", "host-b")
    ]

    def count(status: str) -> int:
        rows = _query(url, f"SELECT count(*) FROM testing_app_job WHERE status = '{status}'")
        return rows[0][0] if rows else -1

    wait_showing(
        lambda: count("running") == 2, workers, timeout=90, what="both workers to hold a job"
    )
    private_postgres.restart("fast")  # every session (workers' included) is terminated
    restarted_at = time.time()

    wait_showing(
        lambda: count("finished") == JOBS,
        workers,
        timeout=120,
        what="every job to finish after the restart",
    )
    wait_for(
        lambda: (
            _query(
                url,
                "SELECT count(*) FROM testing_app_workerprocess WHERE stopped_at IS NULL "
                f"AND last_heartbeat_at > to_timestamp({restarted_at})",
            )
            == [(2,)]
        ),
        timeout=30,
        what="both workers' heartbeats to resume",
    )
    manage("reconcile", "--grace", "0", env=env)

    rows = _query(
        url, "SELECT status, verdict, attempt, count(*) FROM testing_app_job GROUP BY 1, 2, 3"
    )
    assert rows == [("finished", "passed", 1, JOBS)]  # no error, no retry, nothing stuck
    starts, done = recorded(record)
    assert len(done) == JOBS
    assert set(done.values()) == {1}
    assert set(starts.values()) == {1}
    assert _query(url, "SELECT state FROM testing_app_run") == [("finished",)]
    assert [w.proc.poll() for w in workers] == [None, None]  # the same processes, reconnected
    assert redis_holds(redis.Redis.from_url(settings.REDIS_URL)) == nothing_in_redis()
