"""Benchmark: the pre-checks of a proposal against a catalog of 45,000 builds.

Run as `.venv/bin/python bench/proposal_prechecks.py`. It prints timings beside the targets and
asserts nothing. DATABASE_URL must be a postgres:// URL; the database is created if missing
(default postgres://postgres@127.0.0.1:5432/conda_distro_bench) and migrated. The builds live in
their own channel ("bench-prechecks"), which is refilled on every run.

Measured: rendering alone (Jinja sandbox, selectors, YAML) for three recipe shapes, and the whole
pre-check evaluation (fetch from a local HTTP server, render, every rule, the dependency lookup
in PostgreSQL) with its number of SQL queries.
"""

import http.server
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_repodata import configure_environment  # noqa: E402
from import_repodata import ensure_database  # noqa: E402

BASE_DIR = Path(__file__).resolve().parent.parent
RECIPES = BASE_DIR / "tests" / "packages_app" / "recipes"
SHAPES = {
    "kornia.meta.yaml": "kornia",
    "torchvision-split.meta.yaml": "torchvision",
    "torchmetrics.recipe.yaml": "torchmetrics",
}
CHANNEL = "bench-prechecks"
PORT = 8815
REPEATS = 20
TARGET_EVALUATE_S = 1.0
TARGET_QUERIES = 5
# name -> number of builds: the run dependencies of the recipes, with realistic build counts.
DEPENDENCIES = {
    "python": 1500,
    "numpy": 1500,
    "pytorch": 600,
    "libtorch": 300,
    "pillow": 300,
    "packaging": 40,
    "kornia-rs": 60,
    "libjpeg-turbo": 40,
    "pytest": 80,
    "lightning-utilities": 20,
}
FILLER_PACKAGES = 2000
FILLER_BUILDS_EACH = 20


def fill_catalog() -> int:
    from packages_app.models import Build
    from packages_app.models import Channel

    channel, _ = Channel.objects.update_or_create(
        name=CHANNEL, label="", defaults={"url": "https://bench.invalid/prechecks"}
    )
    Build.objects.filter(channel=channel).delete()
    rows = []
    for name, count in DEPENDENCIES.items():
        for index in range(count):
            version = f"{2 + index % 3}.{index % 40}.{index % 7}"
            if name == "python":
                version = f"3.{8 + index % 6}.{index % 15}"
            elif name in ("packaging", "pillow"):
                version = f"{20 + index % 5}.{index % 3}"
            subdir = (
                "noarch"
                if name in ("packaging", "pytest", "lightning-utilities")
                else (("linux-64", "osx-arm64", "win-64")[index % 3])
            )
            rows.append((name, version, f"h{index:05x}_{index % 4}", subdir))
    for package in range(FILLER_PACKAGES):
        for index in range(FILLER_BUILDS_EACH):
            rows.append((f"filler-{package:04d}", f"1.{index}", f"py_{index}", "linux-64"))
    Build.objects.bulk_create(
        [
            Build(
                channel=channel,
                name=name,
                version=version,
                build_string=build,
                subdir=subdir,
                filename=f"{name}-{version}-{build}-{number}.conda",
                record_digest=f"{number:064d}",
                depends=[],
            )
            for number, (name, version, build, subdir) in enumerate(rows)
        ],
        batch_size=5000,
    )
    return len(rows)


def serve_recipes():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            path = RECIPES / self.path.strip("/").split("/")[-1]
            if not path.is_file():
                self.send_response(404)
                self.end_headers()
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def timings(func, repeats: int = REPEATS) -> list[float]:
    result = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        result.append(time.perf_counter() - start)
    return result


def main() -> None:
    database_url = configure_environment()
    ensure_database(database_url)

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from packages_app.adapters.recipe import render_recipe
    from packages_app.services.prechecks import evaluate_recipe_url

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    builds = fill_catalog()
    print(
        f"catalog: {builds:,} builds in channel {CHANNEL} ({time.perf_counter() - started:.1f} s)"
    )
    settings.RECIPE_FETCH_ALLOW_PRIVATE = True  # the recipe server is on 127.0.0.1
    server = serve_recipes()
    print(
        f"\n{'recipe':<30}{'render p50':>12}{'evaluate p50':>14}{'p95':>9}{'queries':>9}  outcome"
    )
    try:
        for filename, package in SHAPES.items():
            text = (RECIPES / filename).read_text()
            render = timings(
                lambda text=text, filename=filename: render_recipe(text, filename=filename)
            )
            url = f"http://127.0.0.1:{PORT}/recipes/{filename}"

            def evaluate(url=url, package=package):
                return evaluate_recipe_url(recipe_url=url, package_name=package, form_license="")

            evaluate()  # warm: imports, probe versions, connection
            total = timings(evaluate)
            with CaptureQueriesContext(connection) as captured:
                results = evaluate()
            outcomes = ",".join(sorted({r.outcome for r in results}))
            print(
                f"{filename:<30}{statistics.median(render) * 1000:>10.1f}ms"
                f"{statistics.median(total) * 1000:>12.1f}ms"
                f"{sorted(total)[int(len(total) * 0.95) - 1] * 1000:>7.1f}ms"
                f"{len(captured):>9}  {outcomes}"
            )
    finally:
        server.shutdown()
    print(f"\ntargets: evaluate p50 < {TARGET_EVALUATE_S:.0f} s, <= {TARGET_QUERIES} queries")


if __name__ == "__main__":
    main()
