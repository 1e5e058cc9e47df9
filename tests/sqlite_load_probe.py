"""Load on the demo's SQLite file: concurrent sign-ins while a worker finishes jobs.

Run by tests/test_sqlite_demo_load.py in its own process (the test suite itself runs on
PostgreSQL): `python tests/sqlite_load_probe.py SIGN_INS JOBS`, with DATABASE_URL naming a
SQLite file. Prints one JSON line: the status of every sign-in and how many jobs finished.
"""

import json
import os
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distro_site.settings.base")


def main(sign_ins: int, jobs: int) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import close_old_connections
    from django.db import connection
    from django.db import transaction
    from django.test import Client
    from django.utils import timezone

    from testing_app.services.execution import finish_job
    from testing_app.services.outcomes import JobOutcome
    from tests import factories

    call_command("migrate", verbosity=0)
    assert connection.vendor == "sqlite"
    get_user_model().objects.create_user("ada", password="a-long-demo-password")
    run = factories.RunFactory(state="running", started_at=timezone.now())
    job_ids = [
        factories.JobFactory(run=run, status="running", started_at=timezone.now()).pk
        for _ in range(jobs)
    ]
    start = threading.Barrier(sign_ins + 1)
    statuses: list[int] = []
    finished: list[int] = []

    def sign_in() -> None:
        # A server error comes back as a 500 response, as a browser would see it.
        client = Client(REMOTE_ADDR="127.0.0.1", raise_request_exception=False)
        start.wait()
        try:
            response = client.post(
                "/accounts/login/", {"username": "ada", "password": "a-long-demo-password"}
            )
            statuses.append(response.status_code)
        finally:
            close_old_connections()
            connection.close()

    def worker() -> None:
        start.wait()
        try:
            for job_id in job_ids:  # as the worker does: one transaction per finished job
                with transaction.atomic():
                    if finish_job(job_id=job_id, outcome=JobOutcome(verdict="passed")):
                        finished.append(job_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=sign_in) for _ in range(sign_ins)]
    threads.append(threading.Thread(target=worker))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    journal = connection.cursor().execute("PRAGMA journal_mode").fetchone()[0]
    rollups = [_rollups_match()]
    pages = _page_statuses()
    # SQLite's own row triggers keep the counts through updates and deletes too.
    from testing_app.models import Job

    Job.objects.filter(pk__in=job_ids[:5]).update(verdict="failed")
    rollups.append(_rollups_match())
    Job.objects.filter(pk__in=job_ids[5:10]).delete()
    rollups.append(_rollups_match())
    return {
        "statuses": sorted(statuses),
        "finished": len(finished),
        "journal_mode": journal,
        "rollups_match": rollups,
        "pages": pages,
    }


def _page_statuses() -> dict[str, int]:
    """The pages whose reads differ on PostgreSQL (arrays, rollups) answer on SQLite too."""
    from django.test import Client

    from tests import factories

    release = factories.TorchReleaseFactory()
    client = Client(raise_request_exception=False)
    paths = ["/", "/matrix/", "/matrix/?status=failing&sort=failing", "/promotions/", "/hosts/",
             "/trends/", "/releases/", f"/releases/{release.version}/"]  # fmt: skip
    statuses = {path: client.get(path).status_code for path in paths}
    # The gate counts a check's solved packages in the database (JSONArrayLength).
    from testing_app.models import InstallabilityCheck
    from testing_app.selectors.gate_inputs import JSONArrayLength

    check = factories.InstallabilityCheckFactory(
        promotion=factories.PromotionFactory(), requested_by=factories.UserFactory(),
        packages=[{"name": "a"}, {"name": "b"}, {"name": "c"}],
    )  # fmt: skip
    counted = InstallabilityCheck.objects.filter(pk=check.pk).annotate(
        n=JSONArrayLength("packages")
    )
    statuses["solved packages counted"] = 200 if counted.get().n == 3 else 500
    return statuses


def _rollups_match() -> bool:
    """The demo's counts (testing_app/models/rollups.py) equal a recount of the rows."""
    from collections import Counter

    from testing_app.models import CellResult
    from testing_app.models import Job
    from testing_app.models import JobDayCount
    from testing_app.models import PackageVerdictCount

    jobs = Counter(
        (finished.date(), host, kind, verdict)
        for finished, host, kind, verdict in Job.objects.filter(
            finished_at__isnull=False
        ).values_list("finished_at", "host_id", "kind", "verdict")
    )
    kept_jobs = {
        (row.day, row.host_id, row.kind, row.verdict): row.jobs for row in JobDayCount.objects.all()
    }
    cells = Counter(
        CellResult.objects.filter(package__isnull=False).values_list(
            "package_id", "build__version", "torch_release_id", "verdict"
        )
    )
    kept_cells = {
        (row.package_id, row.version, row.torch_release_id, row.verdict): row.cells
        for row in PackageVerdictCount.objects.all()
    }
    return bool(jobs) and kept_jobs == dict(jobs) and kept_cells == dict(cells)


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
