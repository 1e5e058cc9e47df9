"""Load test: gunicorn (2 workers) on the design-scale catalog, 50 concurrent clients for 60 s,
while 50 real worker processes heartbeat and finish no-op jobs.

Usage (from the repository root):

    .venv/bin/python bench/load_test.py [--generate] [--clients 50] [--seconds 60]
        [--generator auto|wrk|httpx] [--workers 50] [--worker-jobs 500]

The catalog is bench/matrix_scale.py's design-scale data (2,000 packages, 40,000 builds,
480,000 cells, 5,000,000 jobs) in its own database, `conda_distro_load` by default
(`LOAD_DATABASE_URL`); `--generate` (or an empty database) fills it first, which takes minutes.

Load generator: wrk (Debian package `wrk`) when it is installed, with bench/load_test.lua; else
(or with `--generator httpx`) an asyncio client on httpx, which costs the server's machine
more CPU per request. Both send each of the N clients' requests over its own keep-alive
connection, one after another, from the same pre-drawn list of URLs (a fixed mix of the matrix
page, package pages, job pages and the read API, each with a randomly drawn page, package or
job), and record every response's kind, status and latency. The figures: requests/s over the
window, p50/p95/p99 latency over all requests and per kind, status counts, and 5xx plus
connection errors (the target: >= 100 requests/s, zero 5xx). Only 127.0.0.1 is contacted.

Workers (`--workers 0` leaves them out): bench/load_workers.py starts them before the window
(on LOAD_REDIS_URL, an empty Redis database), feeds them `--worker-jobs` no-op jobs over the
window and prints the exact accounting afterwards.
"""

import argparse
import asyncio
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/conda_distro_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
DEFAULT_PORT = 8871
TARGET_REQUESTS_PER_S = 100
URL_LIST_LENGTH = 20_000
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


def start_gunicorn(database_url: str, redis_url: str, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
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


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants, live or reaped (/proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        # utime, stime, and the same of its children that exited and were reaped (PostgreSQL's
        # backends end when a connection closes; their CPU then moves to the postmaster).
        cpu[int(entry.name)] = sum(int(value) for value in fields[11:15]) / ticks
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        total += cpu.get(current, 0.0)
        stack += children.get(current, [])
    return total


def machine_busy_s() -> float:
    """CPU seconds all CPUs of this machine spent busy so far (/proc/stat: all but idle and
    iowait), to show how much of the window went to other programs."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def postgres_server_pid(database_url: str) -> int | None:
    """The PostgreSQL server process when it runs on this machine (its backends are its
    children, so tree_cpu_s of it is the whole server's CPU), else None."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:  # while the connection is open: the backend ends with it
            stat = Path(f"/proc/{backend}/stat").read_text()
        except OSError:
            return None  # another machine
    return int(stat.rsplit(")", 1)[1].split()[1])


def draw_urls(names: list[str], max_job: int, count: int, seed: int = 9) -> list[tuple[str, str]]:
    """(kind, path) pairs drawn from the mix: the same list for every generator and run."""
    rng = random.Random(seed)
    labels, weights = [m[0] for m in MIX], [m[1] for m in MIX]
    urls = []
    for _ in range(count):
        label = rng.choices(labels, weights=weights)[0]
        job = rng.randint(1, max_job)
        paths = {
            "matrix page": f"/matrix/?page={rng.randint(1, 40)}",
            "package page": f"/packages/{rng.choice(names)}/",
            "job page": f"/jobs/{job}/",
            "matrix API": f"/api/matrix/?page={rng.randint(1, 40)}",
            "packages API": f"/api/packages/?page={rng.randint(1, 40)}",
            "jobs API": "/api/jobs/",
            "job API": f"/api/jobs/{job}/",
        }
        urls.append((label, paths[label]))
    return urls


async def client_loop(index, base_url, urls, until, results) -> None:
    position = (index * 7919) % len(urls)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        while time.monotonic() < until:
            position = (position + 1) % len(urls)
            label, url = urls[position]
            start = time.perf_counter()
            try:
                response = await client.get(url)
                status = response.status_code
            except httpx.HTTPError as exc:
                status = f"error: {type(exc).__name__}"
            results.append((label, status, (time.perf_counter() - start) * 1000))


def run_httpx(base_url, urls, clients: int, seconds: float):
    async def drive():
        results: list[tuple[str, object, float]] = []
        until = time.monotonic() + seconds
        await asyncio.gather(
            *(client_loop(i, base_url, urls, until, results) for i in range(clients))
        )
        return results

    start = time.monotonic()
    results = asyncio.run(drive())
    return results, time.monotonic() - start, Counter()


def run_wrk(wrk: str, base_url, urls, clients: int, seconds: float):
    """wrk with bench/load_test.lua: one thread per connection, so each thread's responses
    pair with its requests (the script measures every latency and names its kind)."""
    with tempfile.TemporaryDirectory(prefix="load-test-") as tmp:
        url_file, result_file = Path(tmp) / "urls.tsv", Path(tmp) / "results.tsv"
        url_file.write_text("".join(f"{label}\t{path}\n" for label, path in urls))
        env = {**os.environ, "LOAD_URLS": str(url_file), "LOAD_RESULTS": str(result_file)}
        argv = [wrk, "-t", str(clients), "-c", str(clients), "-d", f"{seconds:g}s"]
        argv += ["--timeout", "60s", "-s", str(BASE_DIR / "bench" / "load_test.lua"), base_url]
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
        results, errors, elapsed = [], Counter(), seconds
        for line in result_file.read_text().splitlines():
            label, status, value = line.split("\t")
            if label == "errors":
                for item in status.split():
                    name, n = item.split("=")
                    errors[f"error: {name}"] = int(n)
                elapsed = float(value)
            else:
                results.append((label, int(status), float(value)))
    return results, elapsed, errors


def report(results, elapsed: float, clients: int, socket_errors: Counter) -> tuple[bool, int]:
    latencies = [ms for _, _, ms in results]
    statuses = Counter(status for _, status, _ in results) + socket_errors
    server_errors = sum(n for s, n in statuses.items() if not isinstance(s, int) or s >= 500)
    rate = len(results) / elapsed
    print(f"{clients} clients, {elapsed:.1f} s, {len(results):,} responses: {rate:.1f} requests/s")
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
    return met, len(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", action="store_true", help="regenerate the catalog first")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--generator", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--workers", type=int, default=50, help="worker processes (0: none)")
    parser.add_argument("--worker-jobs", type=int, default=500, help="no-op jobs fed to them")
    parser.add_argument(
        "--heartbeat-s",
        type=int,
        default=10,
        help="the workers' heartbeat (WORKER_HEARTBEAT_S default)",
    )
    args = parser.parse_args()
    database_url = os.environ.get("LOAD_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("LOAD_REDIS_URL", DEFAULT_REDIS_URL)
    wrk = shutil.which("wrk") if args.generator in ("auto", "wrk") else None
    if args.generator == "wrk" and wrk is None:
        sys.exit("--generator wrk: wrk is not installed (Debian: apt-get install wrk)")
    if args.generator == "auto" and wrk is None:
        print("wrk is not installed: using the httpx client (more CPU per request)")
    names, max_job = prepare_catalog(database_url, generate=args.generate)
    print(f"catalog: {len(names):,} packages, jobs up to id {max_job:,}")
    urls = draw_urls(names, max_job, URL_LIST_LENGTH)
    fleet = None
    if args.workers:
        import load_workers

        load_workers.setup_django(database_url, redis_url)
        fleet = load_workers.WorkerFleet(
            count=args.workers,
            jobs=args.worker_jobs,
            heartbeat_s=args.heartbeat_s,
            redis_url=redis_url,
        )
    server = start_gunicorn(database_url, redis_url, args.port)
    base_url = f"http://127.0.0.1:{args.port}"
    try:
        if fleet is not None:
            took = fleet.start()
            print(f"{args.workers} workers registered in {took:.0f} s")
        # Warm both workers' connections and caches before the clock starts.
        for path in ("/matrix/", "/api/matrix/", f"/packages/{names[0]}/", "/jobs/1/"):
            for _ in range(4):
                httpx.get(base_url + path, timeout=60)
        workers_cpu = 0.0
        if fleet is not None:
            fleet.feed(args.seconds)
            workers_cpu = sum(tree_cpu_s(p.pid) for p in fleet.processes)
        server_cpu = tree_cpu_s(server.pid)
        postgres_pid = postgres_server_pid(database_url)
        postgres_cpu = tree_cpu_s(postgres_pid) if postgres_pid else 0.0
        machine_cpu = machine_busy_s()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = time.process_time()
        if wrk:
            print(f"load generator: wrk, {args.clients} connections")
            results, elapsed, errors = run_wrk(wrk, base_url, urls, args.clients, args.seconds)
        else:
            print(f"load generator: httpx, {args.clients} clients")
            results, elapsed, errors = run_httpx(base_url, urls, args.clients, args.seconds)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = time.process_time() - client_cpu
        client_cpu += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        server_cpu = tree_cpu_s(server.pid) - server_cpu
        machine_cpu = machine_busy_s() - machine_cpu
        if postgres_pid:
            postgres_cpu = tree_cpu_s(postgres_pid) - postgres_cpu
        if fleet is not None:
            workers_cpu = sum(tree_cpu_s(p.pid) for p in fleet.processes) - workers_cpu
            fleet.finish()
    finally:
        stop(server)
        if fleet is not None:
            fleet.stop()
    met, count = report(results, elapsed, args.clients, errors)
    per_request = 1000 / max(count, 1)
    cpu_line = (
        f"CPU in the window: gunicorn {server_cpu:.1f} s ({server_cpu * per_request:.1f} ms per"
        f" request)"
    )
    if postgres_pid:
        cpu_line += (
            f", PostgreSQL server {postgres_cpu:.1f} s ({postgres_cpu * per_request:.1f} ms per"
            " request)"
        )
    cpu_line += f", load generator {client_cpu:.1f} s"
    if fleet is not None:
        cpu_line += f", {args.workers} workers {workers_cpu:.1f} s"
    print(cpu_line)
    others = machine_cpu - server_cpu - client_cpu - postgres_cpu - workers_cpu
    print(
        f"machine: {machine_cpu:.1f} CPU-s busy of {elapsed * os.cpu_count():.1f} ({os.cpu_count()}"
        f" CPUs), of which other programs {others:.1f} s"
    )
    if fleet is not None:
        exact = fleet.check()
        fleet.clean_up(keep_logs=not exact)
        if not exact:
            sys.exit(1)


if __name__ == "__main__":
    main()
