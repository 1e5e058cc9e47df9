"""Benchmark: channel sync of a conda-forge-sized channel over real HTTP, first and incremental.

Run as `DATABASE_URL=postgres://... .venv/bin/python bench/sync_scale.py [--scale F] [--data DIR]`.

It generates the channel of bench/sync_scale_data.py (1,000,000 linux-64 + 500,000 noarch
records, and a second version where 100 records changed: per subdir 30 patched, 10 added, 10
removed), writes each subdir's repodata.json and repodata.json.zst, and serves them from a
threaded HTTP server on a free port of 127.0.0.1 that answers HEAD and GET with a stat-based
ETag and If-None-Match with 304, as a CDN does. The channel is registered as an upstream channel
(conda-forge's role here: it feeds the catalog, nothing is planned) in a database of its own.

Each sync runs in a fresh process (`manage.py`-like Django setup, the product's default
settings), which reports its own peak RSS (VmHWM from /proc/self/status). Steps:
1. first sync (empty catalog: every record parsed and written, in chunks);
2. the server switches to the second version: the sync where 100 records changed;
3. the same again: nothing changed (304 on both subdirs).
Before each sync the builds table is ANALYZEd, as autovacuum would on a deployed database.
With `--reuse-catalog` (and `--data` holding the generated channel), a catalog that an earlier
run left in the bench database is kept instead of the 30-minute first sync: the script checks that
each subdir's live builds are exactly the file names of one version of the channel, writes the
record index of that version as sync would have after importing it (the catalog's fingerprint),
and syncs the other version first (the same 100 records, changed the other way), then back (the
second sync of the steps above, exactly), then once more (304).
With `--profile N`, each sync runs under cProfile and prints (on stderr) its N costliest
functions by own time and the time spent in each SQL statement (slower; for finding costs).
Baselines in the same run, on the same linux-64 file: `json.loads` of the file alone in a fresh
process (what a plain-JSON reader pays before doing anything), and the bytes on the wire.
Targets (issue 16): the second sync under 10 s and under 1 GB. Asserts nothing; prints numbers
and checks the catalog's counts against what the generator changed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse
from urllib.parse import urlunparse

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/conda_distro_bench"
CHANNEL_NAME = "bench-sync-scale"
TARGET_SECOND_S, TARGET_SECOND_MIB = 10.0, 1000 * 1000 * 1000 / 2**20
MIB = 2**20

SYNC_CHILD = """
import json, os, resource, sys, time
import django
django.setup()
from packages_app.models import Channel
from packages_app.services.sync import sync_channel
channel = Channel.objects.get(name=sys.argv[1])
profile, queries = None, {}
if int(sys.argv[2]):
    import contextlib, cProfile
    from django.db import connection
    profile = cProfile.Profile()
    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = queries.setdefault(sql[:100], [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started
    stack = contextlib.ExitStack()
    stack.enter_context(connection.execute_wrapper(timed))
wall, cpu = time.perf_counter(), time.process_time()
if profile:
    profile.enable()
result = sync_channel(channel=channel, plan=False)
if profile:
    profile.disable()
    stack.close()
    import pstats
    stats = pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime")
    stats.print_stats(int(sys.argv[2]))
    for sql, (count, seconds) in sorted(queries.items(), key=lambda q: -q[1][1])[:15]:
        print(f"SQL {seconds:7.3f} s {count:5} x {sql}", file=sys.stderr)
print(json.dumps({
    "wall_s": time.perf_counter() - wall,
    "cpu_s": time.process_time() - cpu,
    "lines": [s.line() for s in result.subdirs],
    "errors": result.errors,
    "hwm_kib": int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM"))),
}))
"""
JSON_CHILD = """
import json, sys, time
from pathlib import Path
wall = time.perf_counter()
raw = json.loads(Path(sys.argv[1]).read_bytes())
hwm = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")))
print(json.dumps({"wall_s": time.perf_counter() - wall, "hwm_kib": hwm,
                  "records": sum(len(raw.get(k, {})) for k in ("packages", "packages.conda"))}))
"""


class StaticChannelHandler(SimpleHTTPRequestHandler):
    """Files under the server's current root, with a stat-based ETag and 304 on If-None-Match."""

    def send_head(self):
        self.directory = str(self.server.root)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        stat = path.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        self.server.requests.append((self.command, self.path))
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return None
        self.server.bytes_sent += stat.st_size if self.command == "GET" else 0
        handle = path.open("rb")
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(stat.st_size))
        self.end_headers()
        return handle

    def log_message(self, *args):
        pass


def configure_environment() -> str:
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    if urlparse(database_url).scheme not in ("postgres", "postgresql"):
        sys.exit(f"DATABASE_URL must be a postgres:// URL, not {database_url!r}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "distro_site.settings.base")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuv")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(BASE_DIR))
    return database_url


def ensure_database(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlparse(database_url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunparse(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def generate(data: Path, scale: float) -> dict:
    """Write before/ and after/ channel folders (repodata.json + .zst); returns sizes."""
    from backports import zstd

    sys.path.insert(0, str(BASE_DIR / "bench"))
    import sync_scale_data

    sizes = {}
    for subdir in sync_scale_data.SUBDIRS:
        started = time.perf_counter()
        before, after = sync_scale_data.generate(subdir, scale=scale)
        for version, groups in (("before", before), ("after", after)):
            path = data / version / subdir / "repodata.json"
            size = sync_scale_data.write_repodata(path, subdir, groups)
            compressed = zstd.compress(path.read_bytes(), level=3)
            (path.parent / "repodata.json.zst").write_bytes(compressed)
            sizes[(version, subdir)] = (
                size,
                len(compressed),
                sum(len(v) for v in groups.values()),
            )
        del before, after
        print(f"generated {subdir} in {time.perf_counter() - started:.1f} s")
    (data / "sizes.json").write_text(json.dumps({f"{v}/{s}": x for (v, s), x in sizes.items()}))
    return sizes


def run_child(code: str, *args: str) -> tuple[dict, float, float]:
    """Run `code` in a fresh Python; its JSON output, wall time, and peak RSS in MiB. The peak is
    the child's own VmHWM: os.wait4's ru_maxrss would count the parent's RSS at fork time."""
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=BASE_DIR, stdout=subprocess.PIPE, text=True
    )
    if output.returncode != 0:
        sys.exit(f"child failed ({output.returncode}): {output.stdout}")
    result = json.loads(output.stdout.strip().splitlines()[-1])
    return result, time.perf_counter() - started, result["hwm_kib"] / 1024


def analyze_builds() -> None:
    """Fresh planner statistics for the builds table, as autovacuum keeps them on a deployed
    database. Without them (a server with autovacuum off, right after a 10^6-row import) the
    planner takes the subdir's 10^6 rows for a handful and reads them all to find 10 file names
    (0.8 s per lookup seen)."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE packages_app_build")
    print(f"ANALYZE packages_app_build: {time.perf_counter() - started:.1f} s")


def adopt_catalog(channel, url: str, data: Path, cache: Path) -> str:
    """Keep the catalog an earlier run left: find the version whose file names are exactly the
    live builds of each subdir, and write that version's record index (as sync writes it after
    an import) under the cache folder of the new URL. Returns the version."""
    from packages_app.adapters.repodata_fetch import cache_folder
    from packages_app.adapters.repodata_index import RawRepodata
    from packages_app.models import Build
    from packages_app.services.sync import _fingerprint

    started = time.perf_counter()
    held = None
    for subdir in channel.subdirs:
        live = set(
            Build.objects.filter(channel=channel, subdir=subdir)
            .exclude(state=Build.State.WITHDRAWN)
            .values_list("filename", flat=True)
            .iterator(chunk_size=50_000)
        )
        for version in ("before", "after"):
            path = data / version / subdir / "repodata.json"
            with RawRepodata(path, label=str(path), expected_subdir=subdir) as raw:
                listed = sum(len(records) for records in raw.groups.values())
                if listed != len(live) or any(
                    name not in live for records in raw.groups.values() for name in records
                ):
                    continue
                index = raw.snapshot(raw.hashes())
            if held not in (None, version):
                sys.exit(f"{subdir} holds version {version}, another subdir {held}")
            held = version
            break
        else:
            sys.exit(f"the catalog's {subdir} matches no version of {data}: run without reuse")
        del live
        index.fingerprint = _fingerprint(channel, subdir)
        index.save(cache_folder(cache, url, subdir))
    channel.url, channel.sync_state = url, {}
    channel.save(update_fields=["url", "sync_state"])
    elapsed = time.perf_counter() - started
    print(f"reused the catalog ({held} version), record index written in {elapsed:.1f} s")
    return held


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the 1.5 M records")
    parser.add_argument("--data", type=Path, help="keep the generated channel here (reused)")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="run each sync under cProfile and print its N costliest functions (slower)",
    )
    parser.add_argument(
        "--reuse-catalog",
        action="store_true",
        help="keep the catalog an earlier run left (skips the first sync); needs --data",
    )
    options = parser.parse_args()
    if options.reuse_catalog and not (options.data and (options.data / "sizes.json").is_file()):
        sys.exit("--reuse-catalog needs --data with the channel the catalog was synced from")
    database_url = configure_environment()
    ensure_database(database_url)
    data = options.data or Path(tempfile.mkdtemp(prefix="sync-scale-"))
    cache = Path(tempfile.mkdtemp(prefix="sync-scale-cache-"))
    os.environ["REPODATA_CACHE_DIR"] = str(cache)

    import django

    django.setup()
    from django.core.management import call_command

    from packages_app.models import Build
    from packages_app.models import Channel

    call_command("migrate", verbosity=0)
    if (data / "sizes.json").is_file():
        sizes = {
            tuple(k.split("/")): tuple(v)
            for k, v in json.loads((data / "sizes.json").read_text()).items()
        }
    else:
        sizes = generate(data, options.scale)
    for (version, subdir), (size, compressed, records) in sorted(sizes.items()):
        print(
            f"{version:6} {subdir:8}: {records:>9,} records, repodata.json {size / MIB:7.1f} MiB, "
            f".zst {compressed / MIB:6.1f} MiB"
        )

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(StaticChannelHandler, directory="."))
    server.root, server.requests, server.bytes_sent = data / "before", [], 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    second_label = "second sync (100 records changed)"
    if options.reuse_catalog:
        channel = Channel.objects.get(name=CHANNEL_NAME)
        held = adopt_catalog(channel, url, data, cache)
        other = "before" if held == "after" else "after"
        plan = [
            (f"second sync, the other way ({held} -> {other}, 100 records)", other),
            (second_label if held == "after" else f"second sync ({other} -> {held})", held),
            ("third sync (nothing changed, 304)", held),
        ]
    else:
        Build.objects.filter(channel__name=CHANNEL_NAME).delete()
        Channel.objects.filter(name=CHANNEL_NAME).delete()
        channel = Channel.objects.create(
            name=CHANNEL_NAME, url=url, role=Channel.Role.UPSTREAM, subdirs=["linux-64", "noarch"]
        )
        plan = [
            ("first sync (empty catalog)", "before"),
            (second_label, "after"),
            ("third sync (nothing changed, 304)", "after"),
        ]

    steps = []
    for label, root in plan:
        analyze_builds()
        server.root, server.bytes_sent, server.requests = data / root, 0, []
        load = os.getloadavg()[0]
        result, wall, rss = run_child(SYNC_CHILD, CHANNEL_NAME, str(options.profile))
        steps.append((label, result, wall, rss, server.bytes_sent, load))
        gets = sum(1 for method, _ in server.requests if method == "GET")
        print(
            f"{label}: sync {result['wall_s']:.2f} s (CPU {result['cpu_s']:.2f} s), process "
            f"{wall:.2f} s, peak RSS {rss:.0f} MiB, {server.bytes_sent / MIB:.1f} MiB on the "
            f"wire in {gets} GETs, load average {load:.1f}"
        )
        for line in result["lines"]:
            print(f"    {line}")
        if result["errors"]:
            print(f"    ERRORS: {result['errors']}")

    live = Build.objects.filter(channel=channel).exclude(state=Build.State.WITHDRAWN).count()
    withdrawn = Build.objects.filter(channel=channel, state=Build.State.WITHDRAWN).count()
    expected_live = sum(
        records for (version, _), (_, _, records) in sizes.items() if version == "after"
    )
    print(f"catalog: {live:,} live builds (expected {expected_live:,}), {withdrawn} withdrawn")

    linux = data / "before" / "linux-64" / "repodata.json"
    baseline, baseline_wall, baseline_rss = run_child(JSON_CHILD, str(linux))
    print(
        f"baseline json.loads of linux-64 ({baseline['records']:,} records): "
        f"{baseline['wall_s']:.2f} s, process {baseline_wall:.2f} s, "
        f"peak RSS {baseline_rss:.0f} MiB"
    )
    _, second, second_wall, second_rss, _, _ = steps[1]  # before -> after where it ran
    print(
        f"second sync: {second['wall_s']:.2f} s (target < {TARGET_SECOND_S:.0f} s), ratio to "
        f"json.loads {second['wall_s'] / baseline['wall_s']:.2f}; peak RSS {second_rss:.0f} MiB "
        f"(target < {TARGET_SECOND_MIB:.0f} MiB), "
        f"ratio to json.loads {second_rss / baseline_rss:.2f}"
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    server.shutdown()
    shutil.rmtree(cache, ignore_errors=True)
    if not options.data:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
