"""Shared pieces of the proposal tests: form data, a recipe server on 127.0.0.1, the catalog,
and draining the default queue with a real RQ worker (SimpleWorker, burst mode)."""

import http.server
import importlib
import threading
from pathlib import Path

import django_rq
from django.apps import apps
from rq.worker import SimpleWorker

from packages_app.services.proposals import MaintainerEntry
from packages_app.services.proposals import ProposalInput
from testing_app.adapters.rq_serializers import TrustedSideSerializer
from tests.factories import BuildFactory
from tests.factories import ChannelFactory

RECIPES = Path(__file__).parent / "recipes"
# Only in the default recipe_url of proposal_input() and form_data(), which the tests that fetch
# a recipe replace with their RecipeServer's URL (a free port); nothing listens here.
RECIPE_PORT = 8813


def recipe_text(name: str) -> str:
    return (RECIPES / name).read_text()


def proposal_input(**overrides) -> ProposalInput:
    values = {
        "package_name": "kornia",
        "summary": "Differentiable computer vision for PyTorch",
        "home_url": "https://kornia.github.io",
        "repo_url": "https://github.com/kornia/kornia",
        "recipe_url": f"http://127.0.0.1:{RECIPE_PORT}/kornia/meta.yaml",
        "license": "Apache-2.0",
        "rationale": "Kornia builds differentiable vision operators on PyTorch tensors.",
        "contact_email": "ada@example.org",
        "maintainers": (MaintainerEntry("Ada Lovelace", "ada@example.org", "ada"),),
        "confirms_pytorch_key_dependency": True,
        "confirms_dependencies_available": True,
        "confirms_recipe_exists": True,
        "commits_to_maintain": True,
    }
    values.update(overrides)
    return ProposalInput(**values)


def form_data(**overrides) -> dict[str, str]:
    """POST data of a valid proposal form, with one maintainer row and two blank ones."""
    data = {
        "package_name": "kornia",
        "summary": "Differentiable computer vision for PyTorch",
        "home_url": "https://kornia.github.io",
        "repo_url": "https://github.com/kornia/kornia",
        "recipe_url": f"http://127.0.0.1:{RECIPE_PORT}/kornia/meta.yaml",
        "license": "Apache-2.0",
        "rationale": "Kornia builds differentiable vision operators on PyTorch tensors.",
        "contact_email": "ada@example.org",
        "confirms_pytorch_key_dependency": "on",
        "confirms_dependencies_available": "on",
        "confirms_recipe_exists": "on",
        "commits_to_maintain": "on",
        "website": "",
        "maintainers-TOTAL_FORMS": "3",
        "maintainers-INITIAL_FORMS": "0",
        "maintainers-MIN_NUM_FORMS": "1",
        "maintainers-MAX_NUM_FORMS": "10",
        "maintainers-0-name": "Ada Lovelace",
        "maintainers-0-email": "ada@example.org",
        "maintainers-0-github_handle": "ada",
    }
    for index in (1, 2):
        for field in ("name", "email", "github_handle"):
            data[f"maintainers-{index}-{field}"] = ""
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


class RecipeServer:
    """A real HTTP server on 127.0.0.1 serving recipe texts by path (404 otherwise)."""

    def __init__(self, port: int = 0):
        self.files: dict[str, str] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        # The bound port: port 0 asks the system for a free one.
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve(self, path: str, recipe_file: str) -> str:
        self.files[path] = recipe_text(recipe_file)
        return self.url + path


def seed_catalog() -> None:
    """Builds the recipes under tests/packages_app/recipes depend on, in a conda-forge-like
    channel (linux-64 and noarch), plus one withdrawn build that must not count."""
    channel = ChannelFactory(name="conda-forge", role="upstream")
    rows = [
        ("python", "3.11.10", "h9ebbce0_0_cpython", "linux-64"),
        ("python", "3.12.7", "hc5c86c4_0_cpython", "linux-64"),
        ("packaging", "24.1", "pyhd8ed1ab_0", "noarch"),
        ("numpy", "2.1.2", "py311h71ddf71_0", "linux-64"),
        ("pytorch", "2.5.1", "cpu_mkl_py311_h0", "linux-64"),
        ("pytorch", "2.4.1", "cpu_mkl_py311_h0", "linux-64"),
        ("kornia-rs", "0.1.7", "py311h9e33e62_0", "linux-64"),
        ("pillow", "11.0.0", "py311h49e9ac3_0", "linux-64"),
        ("libjpeg-turbo", "3.0.0", "hd590300_1", "linux-64"),
        ("libtorch", "2.5.1", "cpu_mkl_h0", "linux-64"),
        ("pytest", "8.3.3", "pyhd8ed1ab_0", "noarch"),
        ("lightning-utilities", "0.11.8", "pyhd8ed1ab_0", "noarch"),
    ]
    for name, version, build, subdir in rows:
        BuildFactory(channel=channel, name=name, version=version, build_string=build, subdir=subdir)
    BuildFactory(
        channel=channel,
        name="withdrawn-only",
        version="1.0",
        build_string="0",
        subdir="noarch",
        state="withdrawn",
    )


def drain_default_queue() -> int:
    """Run every job of the 'default' queue in this process (sees the test's transaction);
    returns how many jobs ran (finished or failed)."""
    queue = django_rq.get_queue("default")

    def done() -> int:
        return queue.finished_job_registry.count + queue.failed_job_registry.count

    before = done()
    django_rq.get_worker(
        "default", worker_class=SimpleWorker, serializer=TrustedSideSerializer
    ).work(burst=True)
    return done() - before


def queued_jobs() -> list:
    return django_rq.get_queue("default").get_jobs()


def restore_migrated_groups() -> None:
    """Re-create the groups of the data migration after a transactional test flushed them.

    Transactional tests (the browser tests) end with a flush that empties every table, rows
    of data migrations included; the migration's own function puts them back (idempotent).
    test_review checks, without any flush, that the migration itself created them.
    """
    migration = importlib.import_module(
        "packages_app.migrations.0004_reviewer_and_release_manager_groups"
    )
    migration.create_groups(apps, None)
