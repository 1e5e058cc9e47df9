"""Fixtures for the job engine: real package files, a file:// staging channel, the conda-build
stand-in, a fake nvidia-smi built from real captured output, and real `distro_worker`
subprocesses working against the pytest database and Redis."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from packages_app.models import Build
from packages_app.models import Channel
from testing_app.models import Variant
from tests import factories
from tests.testing_app.packages import build_package
from tests.testing_app.packages import file_digests

ROOT = Path(__file__).resolve().parents[2]
FAKE_CONDA_BUILD = ROOT / "tests" / "fakes" / "conda-build"
NVIDIA_FIXTURES = ROOT / "tests" / "fixtures" / "nvidia_smi" / "h200"
REAL_DRIVER_CUDA = "13.0"  # what the captured H200 driver reports


@pytest.fixture
def engine_settings(settings, tmp_path):
    """Fast, private settings for the lifecycle: the stand-in conda-build, short intervals."""
    settings.CONDA_BUILD_BIN = str(FAKE_CONDA_BUILD)
    settings.CONDA_BUILD_CROOT_DIR = tmp_path / "croot"
    settings.CONDA_PKGS_DIR = tmp_path / "pkgs"
    settings.LOG_TAIL_INTERVAL_S = 0.2
    settings.JOB_KILL_GRACE_S = 2
    settings.RETRY_BACKOFF_S = [0]
    settings.WORKER_HEARTBEAT_S = 1
    settings.WORKER_LOST_AFTER_S = 3
    settings.RECONCILE_GRACE_S = 0
    settings.DISTRO_JOB_RUNNER = ""
    # The conda-build stand-in runs on the repository's .venv, which the sandbox must show.
    settings.TEST_SANDBOX_READ_ONLY = [FAKE_CONDA_BUILD.parent.parent.parent / ".venv"]
    return settings


@pytest.fixture
def staging(tmp_path, db):
    """A file:// staging channel on disk, as a Channel row."""
    root = tmp_path / "staging"
    root.mkdir()
    return Channel.objects.create(name="staging-test", url=root.as_uri(), role="staging")


@pytest.fixture
def make_build(staging):
    """A real package file in the staging channel and its Build row (checksums included)."""

    def make(name: str, *, extension: str = ".conda", **package) -> Build:
        path = build_package(Path(staging.url.removeprefix("file://")), name=name, **package)
        digests = file_digests(path)
        record = {
            "name": name,
            "version": package.get("version", "1.0.0"),
            "build_string": package.get("build", "py_0"),
            "subdir": package.get("subdir", "noarch"),
            "depends": list(package.get("depends", ())),
        }
        return factories.BuildFactory(
            channel=staging,
            package=factories.PackageFactory(name=name),
            filename=path.name,
            noarch="python" if record["subdir"] == "noarch" else "",
            sha256=digests["sha256"],
            md5=digests["md5"],
            size=digests["size"],
            **record,
        )

    return make


@pytest.fixture
def cpu_cell(db):
    """The axes of a CPU cell on linux-64 with PyTorch 2.5.1."""
    platform = factories.PlatformFactory(subdir="linux-64")
    variant = factories.VariantFactory(name="cpu", kind=Variant.Kind.CPU)
    release = factories.TorchReleaseFactory(version="2.5.1")
    return {"platform": platform, "variant": variant, "torch_release": release}


def cuda_variant(version: str) -> Variant:
    return factories.VariantFactory(
        name=f"cuda{version}",
        kind=Variant.Kind.CUDA,
        accelerator_version=version,
        min_driver_cuda=version,
        needs_gpu=True,
        select_specs={"conda-forge": ["pytorch * cuda*", f"cuda-version {version}.*"]},
    )


def write_fake_nvidia_smi(directory: Path, *, gpus: int = 1, cuda: str = REAL_DRIVER_CUDA) -> Path:
    """An `nvidia-smi` that prints the real H200 capture, with `gpus` GPUs and the driver's CUDA
    version changed to `cuda` (as an older or newer driver would report it)."""
    directory.mkdir(parents=True, exist_ok=True)
    line = (NVIDIA_FIXTURES / "query-gpu.csv").read_text().strip()
    rows = [
        line.replace("0, ", f"{i}, ", 1).replace("GPU-00000000-0000", f"GPU-0000000{i}-0000")
        for i in range(gpus)
    ]
    (directory / "query.csv").write_text("\n".join(rows) + "\n")
    banner = (NVIDIA_FIXTURES / "nvidia-smi.txt").read_text()
    (directory / "banner.txt").write_text(
        banner.replace(f"CUDA Version: {REAL_DRIVER_CUDA}", f"CUDA Version: {cuda}")
    )
    script = directory / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --query-gpu=*) cat "{directory}/query.csv" ;; '
        f'*) cat "{directory}/banner.txt" ;; esac\n'
    )
    script.chmod(0o755)
    return directory


def no_gpu_path(directory: Path) -> Path:
    """A PATH entry whose `nvidia-smi` fails, as on a machine without an NVIDIA driver."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed: no driver' >&2\nexit 9\n")
    script.chmod(0o755)
    return directory


@dataclass
class WorkerProcessHandle:
    proc: subprocess.Popen
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker did not exit in {timeout} s; output:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def worker_env(engine_settings, tmp_path):
    """Environment for `manage.py distro_worker` subprocesses: the pytest database, this
    test's Redis database and folders, and the fast intervals of engine_settings."""
    database = connection.settings_dict
    url = (
        f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@"
        f"{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "distro_site.settings.test",
        "DATABASE_URL": url,
        "REDIS_URL": django_settings.REDIS_URL,
        "CONDA_BUILD_BIN": str(FAKE_CONDA_BUILD),
        # The stand-in nvidia-smi describes the GPUs, even on a test host with a real one.
        "DISTRO_PROBE_NVML": "0",
        "CONDA_BUILD_FAKE_PYTHON": sys.executable,
        "TEST_SANDBOX_READ_ONLY": ",".join(str(p) for p in engine_settings.TEST_SANDBOX_READ_ONLY),
        # These worker tests watch the test's processes and files from the host (pid files,
        # markers in tmp_path), which the sandbox hides by design; they run unisolated, and
        # tests/testing_app/test_sandbox.py covers the sandbox, its timeout kill included.
        "TEST_ISOLATION": "none",
        "LOG_DIR": str(engine_settings.LOG_DIR),
        "ARTIFACT_DIR": str(engine_settings.ARTIFACT_DIR),
        "CONDA_BUILD_CROOT_DIR": str(engine_settings.CONDA_BUILD_CROOT_DIR),
        "CONDA_PKGS_DIR": str(engine_settings.CONDA_PKGS_DIR),
        "WORKER_HEARTBEAT_S": "1",
        "WORKER_LOST_AFTER_S": "3",
        "RETRY_BACKOFF_S": "0",
        "LOG_TAIL_INTERVAL_S": "0.2",
        "JOB_KILL_GRACE_S": "2",
        "LOG_LEVEL": "INFO",
        "PATH": str(no_gpu_path(tmp_path / "no-gpu")) + os.pathsep + os.environ.get("PATH", ""),
    }
    env.pop("DISTRO_JOB_RUNNER", None)
    return env


@pytest.fixture
def start_worker(worker_env, tmp_path):
    """Start `manage.py distro_worker ...` in its own process group; all are killed at the end."""
    started: list[WorkerProcessHandle] = []

    def start(*args: str, env: dict | None = None, name: str = "") -> WorkerProcessHandle:
        log_path = tmp_path / f"worker-{len(started)}.out"
        handle = log_path.open("w")
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, str(ROOT / "manage.py"), "distro_worker", *_attached_token(args)],
            env={**worker_env, **(env or {})},
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        worker = WorkerProcessHandle(proc, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()


def _attached_token(args: tuple[str, ...]) -> list[str]:
    """`--enroll-token T` as `--enroll-token=T`: a token is URL-safe base64 and may begin with
    "-", which argparse would take for an option (the worker would exit with a usage error)."""
    joined, rest = [], list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--enroll-token" and rest:
            arg = f"{arg}={rest.pop(0)}"
        joined.append(arg)
    return joined


def wait_for(predicate, *, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    """Poll until predicate() is truthy (the workers are other processes: there is no event to
    wait on). Fails with `what` after `timeout` seconds; asserts nothing about durations."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")
