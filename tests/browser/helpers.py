"""Pieces the browser tests share: a real `distro_worker` subprocess and its environment, a
second person's browser, signing in, the proposal form, and waiting for the worker."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

from testing_app.services.hosts import create_enrollment_token

ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1280, "height": 900}


def worker_env(tmp_path: Path, settings, **extra: str) -> dict:
    """The test database and Redis database, private folders, no GPU and no conda-build (the
    rattler runner), and an enrollment token; `extra` adds or overrides variables."""
    database = connection.settings_dict
    no_gpu = tmp_path / "no-gpu"
    no_gpu.mkdir(exist_ok=True)
    (no_gpu / "nvidia-smi").write_text("#!/bin/sh\necho 'no driver' >&2\nexit 9\n")
    (no_gpu / "nvidia-smi").chmod(0o755)
    _, token = create_enrollment_token(name="browser test host", pre_approved=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "distro_site.settings.test",
        "DATABASE_URL": f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@"
        f"{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "VAR_DIR": str(settings.VAR_DIR),
        "LOG_DIR": str(settings.LOG_DIR),
        "ARTIFACT_DIR": str(settings.ARTIFACT_DIR),
        "CONDA_PKGS_DIR": str(tmp_path / "pkgs"),
        "CONDA_BUILD_CROOT_DIR": str(tmp_path / "croot"),
        "CONDA_BUILD_BIN": str(tmp_path / "no-conda-build"),
        "WORKER_HEARTBEAT_S": "1",
        "DISTRO_ENROLL_TOKEN": token,
        "PATH": f"{no_gpu}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }
    env.pop("DISTRO_JOB_RUNNER", None)
    return env


def trusted_worker_command(*queues: str, burst: bool = False) -> list[str]:
    """The web side's worker for the trusted queues (default, promote): a host's distro_worker
    refuses them, as in a deployment (testing_app/services/rq_serializers.py)."""
    return [
        sys.executable,
        str(ROOT / "manage.py"),
        "rqworker",
        *(["--burst"] if burst else ["--with-scheduler"]),
        *queues,
    ]


def worker_command(name: str, *cpu_queues: str, burst: bool = False) -> list[str]:
    queues = [arg for queue in cpu_queues for arg in ("--cpu-queue", queue)]
    return [
        sys.executable,
        str(ROOT / "manage.py"),
        "distro_worker",
        "--name",
        name,
        *queues,
        *(["--burst"] if burst else []),
    ]


class WorkerProcess:
    """A long-running `distro_worker` subprocess (this host's worker, as in production): it
    takes jobs as the web pages enqueue them. Stopped with SIGTERM (RQ's warm shutdown)."""

    def __init__(self, command: list[str], *, env: dict, log_path: Path):
        self.command = command
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "WorkerProcess":
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603
                self.command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        # SIGTERM asks for a warm shutdown, a second one for a cold one (as RQ's Ctrl+C twice).
        for _ in range(2):
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                continue
        self.process.kill()
        return self.process.wait(timeout=10)

    def output(self, last_chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-last_chars:]

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"the worker exited with {self.process.returncode}:\n{self.output()}"
            )


def wait_until(
    condition: Callable[[], object], *, what: str, timeout_s: float = 120, worker=None
) -> object:
    """Poll `condition` until it returns something true (the worker works asynchronously);
    fail with `what` and the worker's output when it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if worker is not None:
            worker.check_alive()
        if time.monotonic() > deadline:
            tail = f"\nworker output:\n{worker.output()}" if worker is not None else ""
            raise AssertionError(f"still waiting for {what}{tail}")
        time.sleep(0.25)


def open_person(browser, request):
    """A separate browser (its own cookies) for another person; closed at the test's end,
    before the database is flushed (its keep-alive connections hold the server's threads)."""
    context = browser.new_context(viewport=VIEWPORT)
    request.addfinalizer(context.close)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def sign_in(page, base_url: str, *, username: str, password: str, next_path: str = "/") -> None:
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}{next_path}")


PREREQUISITES = (
    "PyTorch is a key dependency",
    "All runtime dependencies are available",
    "A working conda recipe exists",
    "The maintainers commit to keeping",
)


def fill_proposal_form(
    page,
    *,
    name: str,
    summary: str,
    license_: str,
    home_url: str,
    repo_url: str,
    recipe_url: str,
    rationale: str,
    maintainers: list[tuple[str, str, str]],
    contact_email: str,
) -> None:
    """Fill /propose/ as a proposer does: the fields, up to three maintainer rows (name, email,
    GitHub handle), the prerequisites and the commitment, and the contact address."""
    page.get_by_label("Package name").fill(name)
    page.get_by_label("Summary").fill(summary)
    page.get_by_label("License").fill(license_)
    page.get_by_label("Homepage URL").fill(home_url)
    page.get_by_label("Source repository URL").fill(repo_url)
    page.get_by_label("Recipe URL").fill(recipe_url)
    page.get_by_label("Why it belongs in the PyTorch ecosystem").fill(rationale)
    for index, (person, email, handle) in enumerate(maintainers):
        page.locator(f'[name="maintainers-{index}-name"]').fill(person)
        page.locator(f'[name="maintainers-{index}-email"]').fill(email)
        page.locator(f'[name="maintainers-{index}-github_handle"]').fill(handle)
    for label in PREREQUISITES:
        page.get_by_label(label).check()
    page.get_by_label("Your email").fill(contact_email)
