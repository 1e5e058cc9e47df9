"""Benchmark: `manage.py run_demo` from a clean state until its first page answers 200.

Each round starts the demo with a fresh, empty VAR_DIR (so SQLite is migrated and the demo seeded
from nothing, as after `rm -rf var`), on a free port, then requests `/` until it answers 200 and
prints the seconds since the start; the demo's own output is kept with a clock per line, which
shows where the time went (migrate, seed, the web server). Then it stops the demo as Ctrl-C does
(SIGINT to run_demo, which stops its web server, worker, scheduler and sweep) and removes the
folder. Target: the first page within 20 s.

The baseline, measured in the same run (rounds interleaved), is the earlier start-up order:
`migrate`, `seed_demo` and `init_target_channel` one after another, each its own process, then
`runserver` with its autoreloader and system checks. (The earlier run_demo also started the
worker and the scheduler beside the web server, which this baseline leaves out: if anything, it
flatters the baseline.)

Run as `.venv/bin/python bench/demo_startup.py [--rounds N] [--redis-url URL] [--keep-log]`.
With --redis-url (a Redis database of its own: it is emptied before each round) the demo uses
it; without, run_demo finds REDIS_URL
or starts its own redis-server. Prints figures, asserts nothing.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

BASE = Path(__file__).resolve().parent.parent
FIRST_PAGE_LIMIT_S = 120
STOP_LIMIT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


BASELINE_STEPS = ("migrate --noinput", "seed_demo", "init_target_channel")


def baseline_command(port: int) -> list[str]:
    """The earlier order as one shell line: every setup step before the web server starts."""
    manage = f"{sys.executable} {BASE / 'manage.py'}"
    steps = [f"{manage} {step}" for step in BASELINE_STEPS]
    return ["bash", "-c", " && ".join([*steps, f"exec {manage} runserver 127.0.0.1:{port}"])]


def one_round(redis_url: str | None, keep_log: bool, *, baseline: bool = False) -> float | None:
    var_dir = Path(tempfile.mkdtemp(prefix="demo-startup-"))
    port = free_port()
    env = dict(os.environ, DEBUG="1", VAR_DIR=str(var_dir), PORT=str(port), PYTHONUNBUFFERED="1")
    env.pop("DATABASE_URL", None)  # the demo's own SQLite under VAR_DIR
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
        redis.Redis.from_url(redis_url).flushdb()  # no jobs left over from an earlier round
    started = time.monotonic()
    command = [sys.executable, str(BASE / "manage.py"), "run_demo", "--port", str(port)]
    demo = subprocess.Popen(  # noqa: S603 - our own manage.py
        baseline_command(port) if baseline else command,
        cwd=BASE,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        for line in demo.stdout:
            lines.append(f"{time.monotonic() - started:7.2f}s  {line.rstrip()}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    first_page = None
    url = f"http://127.0.0.1:{port}/"
    try:
        while time.monotonic() - started < FIRST_PAGE_LIMIT_S and demo.poll() is None:
            if answers_200(url):
                first_page = time.monotonic() - started
                break
            time.sleep(0.1)
    finally:
        # run_demo stops its children on SIGINT; the baseline's runserver is the group.
        demo.send_signal(signal.SIGINT) if not baseline else os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        reader.join(timeout=5)
        if keep_log or first_page is None:
            print("\n".join(lines))
        else:  # the phases only: run_demo's own lines and the children's summaries
            for line in lines:
                if any(
                    word in line
                    for word in ("Applying", "Operations", "created", "sample", "demo:", "stopped")
                ):
                    print(line)
        shutil.rmtree(var_dir, ignore_errors=True)
    return first_page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--keep-log", action="store_true", help="print the demo's whole output")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"baseline": [], "run_demo": []}
    for number in range(1, args.rounds + 1):
        for label in figures:
            seconds = one_round(args.redis_url, args.keep_log, baseline=label == "baseline")
            load = os.getloadavg()[0]
            shown = f"{seconds:.1f} s" if seconds is not None else "no 200 (see the output above)"
            cpus = os.cpu_count()
            print(f"round {number} {label}: first page {shown} (load {load:.1f}, {cpus} CPUs)")
            if seconds is not None:
                figures[label].append(seconds)
    for label, values in figures.items():
        if values:
            print(
                f"{label}: first page median {statistics.median(values):.1f} s, "
                f"min {min(values):.1f} s, max {max(values):.1f} s over {len(values)} round(s)"
            )
    if figures["baseline"] and figures["run_demo"]:
        ratio = statistics.median(figures["run_demo"]) / statistics.median(figures["baseline"])
        print(f"ratio run_demo / baseline (medians): {ratio:.2f}; target: run_demo <= 20 s")


if __name__ == "__main__":
    main()
