"""The one-command demo runs on a SQLite file shared by the web server and the worker: twenty
people signing in while the worker finishes jobs must all get an answer, never a 500 ("database
is locked" came from deferred transactions that could not wait for the write lock)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_twenty_concurrent_sign_ins_while_the_worker_finishes_jobs_get_no_5xx(tmp_path, settings):
    env = {
        **{k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ},
        "DJANGO_SETTINGS_MODULE": "distro_site.settings.base",
        "DEBUG": "1",
        "SECRET_KEY": "sqlite-load-probe-secret-key-0123456789abcdefghij",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "REDIS_URL": settings.REDIS_URL,  # this test's own Redis database, flushed after it
        "VAR_DIR": str(tmp_path / "var"),
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "testserver",
    }
    result = subprocess.run(
        [sys.executable, "tests/sqlite_load_probe.py", "20", "30"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["journal_mode"] == "wal"
    assert len(report["statuses"]) == 20
    assert [s for s in report["statuses"] if s >= 500] == []
    # Every sign-in went through (a redirect to where the user was going), or was limited.
    assert set(report["statuses"]) <= {302, 429}
    assert report["finished"] == 30
    # The rollup counts, kept by SQLite's triggers, equal a recount after the jobs finished, after
    # an update and after a delete.
    assert report["rollups_match"] == [True, True, True]
    assert report["pages"] == dict.fromkeys(report["pages"], 200)
