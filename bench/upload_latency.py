"""Benchmark: upload to verdict. How long after a build is staged are all its cells and its
reverse dependencies' re-tests decided, with idle hosts waiting?

Run as `.venv/bin/python bench/upload_latency.py [--packages N] [--dependents D] [--rounds R]
[--time-scale S]`. Prints figures, asserts nothing. DATABASE_URL (PostgreSQL; default
conda_distro_bench_upload, created when missing) and REDIS_URL (an empty database, flushed
afterwards) as bench/_jobs_setup.py says.

What is real: the catalog (bench/planning_scale.py's generator, N packages), a package file
(conda-package-handling) in a local channel indexed by rattler (`index_fs`), channel sync
(`sync_channels`, what the periodic sync job runs), the planner, RQ, the fleet of
bench/wave_sim.py (19 `manage.py distro_worker` processes with their queue choice and the
guarded job lifecycle), the API through gunicorn over HTTP. What is simulated, as in
wave_sim.py: the hosts' facts and the runner, which sleeps the cell's log-normal duration
times --time-scale for install checks and tests alike (testing_app/services/simulation.py).

The package `uplib` has D dependents among the catalog's packages. Each round stages a new
version of it twice: once picked up by channel sync, once named in `POST
/api/test-this-build/` right after it was staged (the server syncs the staging channels itself
when it does not know the build yet). Both plan the new build's cells and each dependent's
re-tests with the new build pinned; the round ends when the run is finished (every cell
decided), then the build's promotion gate is evaluated once.

The system's share is the time from "staged" to "gate answered" minus the runners' sleep on
the critical path: walking back from the last job to finish, each job waited either for its
input (the plan's push, or the install check whose pass queued it) or for its worker's
previous job; the sleeps of the jobs on that path are the runners' share, everything else is
the system's. Its parts: sync (repodata fetched and imported), plan (catalog loaded, planner,
rows written), enqueue (commit and push), claim (a job ready or its worker free -> started),
record (started -> finished, beside the sleep: start and finish bookkeeping), run state (last
job finished -> run finished) and gate. Through channel sync the wait for the next sync tick
(up to SYNC_INTERVAL_S) comes on top; the bench calls the sync job's body at once.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/conda_distro_bench_upload"
)

from _jobs_setup import BASE_DIR  # noqa: E402
from _jobs_setup import configure_environment  # noqa: E402
from _jobs_setup import flush_redis  # noqa: E402
from _jobs_setup import require_empty_redis  # noqa: E402

sys.path.insert(0, str(BASE_DIR))
UPLOAD_PACKAGE = "uplib"
UPLOAD_CHANNEL = "upload-staging"


class Clock:
    """Wall-clock instants (datetime, comparable with the database's timestamps) of the
    sync path's steps, recorded by wrappers around the product's functions in this process."""

    def __init__(self):
        self.marks: dict[str, datetime] = {}

    def mark(self, name: str) -> None:
        from django.utils import timezone

        self.marks.setdefault(name, timezone.now())


CLOCK = Clock()


def instrument() -> None:
    """Time the sync path's steps in this process by wrapping the functions sync calls (the
    product code runs unchanged inside the wrappers)."""
    from testing_app.services import dispatch
    from testing_app.services import planning

    plan_new_builds, enqueue_jobs = planning.plan_new_builds, planning.enqueue_jobs
    push_after_commit = dispatch.push_after_commit

    def timed_plan(**kwargs):
        CLOCK.mark("plan")
        return plan_new_builds(**kwargs)

    def timed_enqueue(**kwargs):
        CLOCK.mark("enqueue")
        return enqueue_jobs(**kwargs)

    def timed_push(*args, **kwargs):
        result = push_after_commit(*args, **kwargs)
        CLOCK.mark("pushed")
        return result

    planning.plan_new_builds, planning.enqueue_jobs = timed_plan, timed_enqueue
    dispatch.push_after_commit = timed_push


def prepare(packages: int, dependents: int, root: Path):
    """The catalog, the upload channel with uplib 1.0, and `dependents` packages needing it."""
    from planning_scale import RELEASES
    from planning_scale import generate

    from packages_app.models import Build
    from packages_app.models import Channel
    from packages_app.models import Package
    from packages_app.services.sync import sync_channels
    from packages_app.services.tokens import create_package_token

    generate(packages)
    stage(root, "1.0")
    channel = Channel.objects.create(name=UPLOAD_CHANNEL, url=root.as_uri(), role="staging")
    package = Package.objects.create(name=UPLOAD_PACKAGE, latest_version="1.0")
    sync_channels(channels=[channel], plan=False)
    Build.objects.filter(channel=channel).update(package=package)
    # Packages whose PyTorch window covers the newest releases, so they share uplib's cells.
    newest = len(RELEASES) - 4
    names = [f"pkg{i:05d}" for i in range(packages) if i % (len(RELEASES) - 3) == newest]
    for build in Build.objects.filter(name__in=names[:dependents], channel__role="staging"):
        build.depends = [*build.depends, f"{UPLOAD_PACKAGE} >=1.0"]
        build.depends_names = sorted({*build.depends_names, UPLOAD_PACKAGE})
        build.save(update_fields=["depends", "depends_names"])
    token = create_package_token(package=package, name="ci")[1]
    return channel, token


def stage(root: Path, version: str) -> Path:
    """A real package file of uplib `version` in the channel, and the channel re-indexed."""
    from testing_app.adapters.local_channel import reindex
    from tests.testing_app.packages import build_package

    path = build_package(
        root, name=UPLOAD_PACKAGE, version=version, build="pyhd8ed1ab_0",
        depends=("python >=3.10", "pytorch >=2.13"), module_source="VALUE = 1\n",
    )  # fmt: skip
    reindex(root, subdirs=["noarch"])
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, workdir: Path) -> subprocess.Popen:
    """gunicorn with 2 sync workers on this database and Redis, production settings."""
    import httpx

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "distro_site.settings.base",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "LOG_LEVEL": "WARNING",
        "STATICFILES_BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
    }
    argv = [str(Path(sys.executable).with_name("gunicorn")), "distro_site.wsgi:application",
            "--workers", "2", "--bind", f"127.0.0.1:{port}", "--timeout", "120",
            "--log-level", "warning"]  # fmt: skip
    log = (workdir / "gunicorn.log").open("w")
    process = subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited with {process.returncode}; log in {workdir}")
        try:
            for _ in range(4):  # both workers warm (imports, first connection)
                httpx.get(f"http://127.0.0.1:{port}/api/", timeout=30)
            return process
        except httpx.HTTPError:
            time.sleep(0.5)
    sys.exit("gunicorn did not answer")


def wait_decided(run_id: int, timeout_s: float = 600) -> None:
    from testing_app.models import Run

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if Run.objects.filter(pk=run_id, state=Run.State.FINISHED).exists():
            return
        time.sleep(0.05)
    sys.exit(f"run {run_id} not finished after {timeout_s:.0f} s")


def critical_path(run_id: int, released: datetime):
    """(sleep, claim, record) seconds along the chain of waits that ended the run, the jobs on
    it, and the last job's end. `released`: when the plan's install checks were in Redis."""
    from testing_app.models import Job

    jobs = list(Job.objects.filter(run_id=run_id).order_by("started_at"))
    check_of = {}
    for job in jobs:
        if job.kind == Job.Kind.INSTALL_CHECK:
            check_of[(job.build_id, job.torch_release_id, job.variant_id, job.platform_id,
                      job.python)] = job  # fmt: skip
    previous_on_worker, last_seen = {}, {}
    for job in jobs:
        previous_on_worker[job.pk] = last_seen.get(job.worker_id)
        last_seen[job.worker_id] = job
    job = max(jobs, key=lambda j: j.finished_at)
    end = job.finished_at
    sleep = claim = record = 0.0
    path = 0
    while job is not None:
        path += 1
        slept = job.test_s or 0.0
        sleep += slept
        record += (job.finished_at - job.started_at).total_seconds() - slept
        if job.kind == Job.Kind.TEST:
            source = check_of.get((job.build_id, job.torch_release_id, job.variant_id,
                                   job.platform_id, job.python))  # fmt: skip
            ready, input_job = source.finished_at, source
        else:
            ready, input_job = released, None
        before = previous_on_worker[job.pk]
        if before is not None and before.finished_at > ready:
            claim += (job.started_at - before.finished_at).total_seconds()
            job = before
        else:
            claim += max((job.started_at - ready).total_seconds(), 0.0)
            job = input_job
    return {"sleep": sleep, "claim": claim, "record": record, "path_jobs": path}, end


def round_through_sync(root: Path, version: str, build_name: str) -> dict:
    from django.utils import timezone

    from packages_app.jobs import rq_sync_channels
    from testing_app.models import Run

    CLOCK.marks.clear()
    stage(root, version)
    staged = timezone.now()
    rq_sync_channels()  # the periodic sync job's body, as if its tick came now
    run = Run.objects.filter(trigger_detail__contains=build_name).latest("pk")
    return measure(run, staged, {
        "sync": (staged, CLOCK.marks["plan"]),
        "plan": (CLOCK.marks["plan"], CLOCK.marks["enqueue"]),
        "enqueue": (CLOCK.marks["enqueue"], CLOCK.marks["pushed"]),
    }, released=CLOCK.marks["pushed"])  # fmt: skip


def round_through_api(root: Path, version: str, port: int, token: str) -> dict:
    import httpx
    from django.utils import timezone

    from testing_app.models import Run

    filename = Path(stage(root, version)).name
    staged = timezone.now()
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/test-this-build/",
        json={"filename": filename},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    answered = timezone.now()
    if response.status_code != 201:
        sys.exit(f"test-this-build answered {response.status_code}: {response.text}")
    run = Run.objects.get(pk=response.json()["run"])
    return measure(run, staged, {
        "sync + catalog (request until the run row)": (staged, run.created_at),
        "plan + write + enqueue (run row until the answer)": (run.created_at, answered),
    }, released=answered)  # fmt: skip


def measure(run, staged: datetime, before_jobs: dict, *, released: datetime) -> dict:
    from django.utils import timezone

    from testing_app.models import Job
    from testing_app.selectors.gate import get_build_gate

    wait_decided(run.pk)
    run.refresh_from_db()
    path, last_end = critical_path(run.pk, released)
    started = time.perf_counter()
    get_build_gate(run.trigger_build_id)
    gate_s = time.perf_counter() - started
    decided = timezone.now()
    total = (run.finished_at - staged).total_seconds() + gate_s
    phases = {name: (b - a).total_seconds() for name, (a, b) in before_jobs.items()}
    phases["claim (ready or worker free -> started)"] = path["claim"]
    phases["record (started -> finished, beside the sleep)"] = path["record"]
    phases["run state (last job -> run finished)"] = (run.finished_at - last_end).total_seconds()
    phases["gate (the build's promotion gate)"] = gate_s
    # Whatever the instants above do not cover (a job that started before `released`).
    phases["other"] = total - path["sleep"] - sum(phases.values())
    jobs = Job.objects.filter(run=run)
    return {
        "run": run.pk, "jobs": jobs.count(),
        "checks": jobs.filter(kind=Job.Kind.INSTALL_CHECK).count(),
        "total": total, "sleep": path["sleep"], "system": total - path["sleep"],
        "path_jobs": path["path_jobs"], "phases": phases,
        "observed": (decided - staged).total_seconds(),
    }  # fmt: skip


def report(way: str, result: dict, goal: str) -> None:
    print(f"  {way}: run {result['run']}, {result['jobs']} jobs ({result['checks']} install "
          f"checks); staged -> decided + gate {result['total']:.2f} s, of which runners asleep "
          f"{result['sleep']:.2f} s ({result['path_jobs']} jobs on the critical path); "
          f"system's share {result['system']:.2f} s (goal {goal})")  # fmt: skip
    for name, seconds in result["phases"].items():
        print(f"      {name:<52} {seconds:7.2f} s")


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--dependents", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--time-scale", type=float, default=0.0005)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    configure_environment()
    require_empty_redis()
    from django.conf import settings
    from django.db import connections
    from django.utils import timezone
    from wave_sim import FLEET
    from wave_sim import HOST_PREFIX
    from wave_sim import start_fleet
    from wave_sim import stop
    from wave_sim import wait_registered

    from packages_app.models import Build
    from testing_app.models import Host
    from testing_app.models import WorkerProcess
    from testing_app.selectors.gate import get_build_gate

    WorkerProcess.objects.filter(host__name__startswith=HOST_PREFIX).delete()
    Host.objects.filter(name__startswith=HOST_PREFIX).delete()
    workdir = Path(tempfile.mkdtemp(prefix="upload-latency-"))
    root = workdir / "channel"
    began = time.perf_counter()
    _channel, token = prepare(args.packages, args.dependents, root)
    print(f"catalog of {args.packages} packages, {UPLOAD_PACKAGE} with {args.dependents} "
          f"dependents, in {time.perf_counter() - began:.1f} s")  # fmt: skip
    # A server and the sync job's worker are long-lived processes: the first gate evaluation in
    # this one (URL configuration imported, the architecture table read) is not counted.
    get_build_gate(Build.objects.get(name=UPLOAD_PACKAGE, version="1.0").pk)
    instrument()
    since = timezone.now()
    hosts = sum(n for *_, n in FLEET)
    fleet = start_fleet(workdir, args.time_scale, "remaining-work")
    server = None
    results = defaultdict(list)
    try:
        wait_registered(fleet, hosts, since, workdir)
        port = free_port()
        server = start_server(port, workdir)
        print(f"{hosts} idle distro_worker processes, gunicorn on port {port}; time scale "
              f"{args.time_scale}; SYNC_INTERVAL_S {settings.SYNC_INTERVAL_S}")  # fmt: skip
        for number in range(args.rounds):
            version = f"1.{2 * number + 1}"
            result = round_through_sync(root, version, UPLOAD_PACKAGE)
            results["sync"].append(result)
            report(f"round {number + 1}, channel sync, {UPLOAD_PACKAGE} {version}", result,
                   "<= sync interval + 5 s: the wait for the tick is not in it")  # fmt: skip
            version = f"1.{2 * number + 2}"
            result = round_through_api(root, version, port, token)
            results["api"].append(result)
            report(f"round {number + 1}, POST /api/test-this-build/, {UPLOAD_PACKAGE} {version}",
                   result, "<= 5 s")  # fmt: skip
    finally:
        stop([*fleet, *([server] if server else [])])
        connections.close_all()
    for way, goal in (("sync", 5.0), ("api", 5.0)):
        shares = [r["system"] for r in results[way]]
        print(f"{way}: system's share median {statistics.median(shares):.2f} s over "
              f"{len(shares)} rounds (each: {', '.join(f'{s:.2f}' for s in shares)}); goal "
              f"<= {goal:.0f} s{' + the sync interval' if way == 'sync' else ''}")  # fmt: skip
    print(json.dumps({k: [r["system"] for r in v] for k, v in results.items()}))
    flush_redis()


if __name__ == "__main__":
    main()
