"""Load test: gunicorn (2 workers) on the design-scale catalog, 50 concurrent clients for 60 s.

Usage (from the repository root):

    .venv/bin/python bench/load_test.py [--generate] [--clients 50] [--seconds 60]

The catalog is bench/matrix_scale.py's design-scale data (2,000 packages, 40,000 builds,
480,000 cells, 5,000,000 jobs) in its own database, `conda_distro_load` by default
(`LOAD_DATABASE_URL`); `--generate` (or an empty database) fills it first, which takes minutes.

The load generator is an asyncio client on httpx (already a dependency of the project, so
nothing new to install): each of the N clients has its own connection and requests, in a loop,
one URL after another from a fixed mix of the matrix page, package pages, job pages and the
read API, each with a randomly drawn package or job. It records every response's status and
latency; the figures are requests/s over the whole window, p50/p95/p99 latency, non-2xx counts
and 5xx counts (the target: >= 100 requests/s, zero 5xx). Only 127.0.0.1 is ever contacted.

Not measured here: 50 worker processes heartbeating and finishing no-op jobs at the same time
(the worker side is benchmarked alone by bench/jobs_lifecycle.py).
"""

import argparse
import asyncio
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/conda_distro_load"
DEFAULT_PORT = 8871
TARGET_REQUESTS_PER_S = 100
# (label, weight): how often each kind of request is drawn.
MIX = [
    ("matrix page", 3),
    ("package page", 3),
    ("job page", 3),
    ("matrix API", 2),
    ("packages API", 1),
    ("jobs API", 1),
    ("job API", 1),
]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def prepare_catalog(database_url: str, *, generate: bool) -> tuple[list[str], int]:
    """Fill the database when asked or empty; return the package names and the highest job id."""
    env = {**os.environ, "DATABASE_URL": database_url}
    if generate:
        subprocess.run(
            [sys.executable, "bench/matrix_scale.py", "--generate", "--requests", "1"],
            cwd=BASE_DIR,
            env=env,
            check=True,
        )
    import psycopg

    with psycopg.connect(database_url) as conn:
        try:
            names = [r[0] for r in conn.execute("SELECT name FROM packages_app_package")]
            max_job = conn.execute("SELECT max(id) FROM testing_app_job").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            names, max_job = [], None
    if not names or not max_job:
        if generate:
            sys.exit("The catalog is still empty after generating it.")
        return prepare_catalog(database_url, generate=True)
    return names, max_job


def start_gunicorn(database_url: str, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "distro_site.settings.base",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "load-test-only-secret-key-" + "x" * 40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "LOG_LEVEL": "WARNING",
        # Pages are served without collectstatic: static URLs need no manifest.
        "STATICFILES_BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [
            str(gunicorn),
            "distro_site.wsgi:application",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=BASE_DIR,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/", timeout=5).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    stop(process)
    sys.exit("gunicorn did not answer within 60 s")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def draw_url(rng: random.Random, names: list[str], max_job: int) -> tuple[str, str]:
    label = rng.choices([m[0] for m in MIX], weights=[m[1] for m in MIX])[0]
    job = rng.randint(1, max_job)
    urls = {
        "matrix page": f"/matrix/?page={rng.randint(1, 40)}",
        "package page": f"/packages/{rng.choice(names)}/",
        "job page": f"/jobs/{job}/",
        "matrix API": f"/api/matrix/?page={rng.randint(1, 40)}",
        "packages API": f"/api/packages/?page={rng.randint(1, 40)}",
        "jobs API": "/api/jobs/",
        "job API": f"/api/jobs/{job}/",
    }
    return label, urls[label]


async def client_loop(index, base_url, names, max_job, until, results) -> None:
    rng = random.Random(index)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        while time.monotonic() < until:
            label, url = draw_url(rng, names, max_job)
            start = time.perf_counter()
            try:
                response = await client.get(url)
                status = response.status_code
            except httpx.HTTPError as exc:
                status = f"error: {type(exc).__name__}"
            results.append((label, status, (time.perf_counter() - start) * 1000))


async def drive(base_url, names, max_job, clients: int, seconds: float):
    results: list[tuple[str, object, float]] = []
    start = time.monotonic()
    until = start + seconds
    await asyncio.gather(
        *(client_loop(i, base_url, names, max_job, until, results) for i in range(clients))
    )
    return results, time.monotonic() - start


def report(results, elapsed: float, clients: int) -> bool:
    latencies = [ms for _, _, ms in results]
    statuses = Counter(status for _, status, _ in results)
    server_errors = sum(n for s, n in statuses.items() if not isinstance(s, int) or s >= 500)
    rate = len(results) / elapsed
    print(f"{clients} clients, {elapsed:.1f} s, {len(results):,} requests: {rate:.1f} requests/s")
    print(
        f"latency p50 {percentile(latencies, 0.5):.0f} ms, p95 {percentile(latencies, 0.95):.0f}"
        f" ms, p99 {percentile(latencies, 0.99):.0f} ms"
    )
    print("statuses: " + ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items(), key=str)))
    for label, _ in MIX:
        mine = [ms for lab, _, ms in results if lab == label]
        if mine:
            print(
                f"  {label:<14} {len(mine):>6,} requests  p50 {percentile(mine, 0.5):6.0f} ms"
                f"  p95 {percentile(mine, 0.95):6.0f} ms  p99 {percentile(mine, 0.99):6.0f} ms"
            )
    met = rate >= TARGET_REQUESTS_PER_S and server_errors == 0
    print(
        f"target >= {TARGET_REQUESTS_PER_S} requests/s and zero 5xx: "
        f"{'met' if met else 'NOT met'} ({server_errors} 5xx or connection errors)"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", action="store_true", help="regenerate the catalog first")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    database_url = os.environ.get("LOAD_DATABASE_URL", DEFAULT_DATABASE_URL)
    names, max_job = prepare_catalog(database_url, generate=args.generate)
    print(f"catalog: {len(names):,} packages, jobs up to id {max_job:,}")
    server = start_gunicorn(database_url, args.port)
    try:
        # Warm both workers' connections and caches before the clock starts.
        for path in ("/matrix/", "/api/matrix/", f"/packages/{names[0]}/", "/jobs/1/"):
            for _ in range(4):
                httpx.get(f"http://127.0.0.1:{args.port}{path}", timeout=60)
        client_cpu = time.process_time()
        results, elapsed = asyncio.run(
            drive(f"http://127.0.0.1:{args.port}", names, max_job, args.clients, args.seconds)
        )
        client_cpu = time.process_time() - client_cpu
    finally:
        stop(server)
    report(results, elapsed, args.clients)
    # gunicorn's workers are reaped by its master, and the master by us: their CPU time is ours
    # now (it includes start-up and the warm-up requests).
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = usage.ru_utime + usage.ru_stime
    print(
        f"CPU: server {server_cpu:.1f} s ({server_cpu / len(results) * 1000:.0f} ms per request),"
        f" load generator {client_cpu:.1f} s, on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
