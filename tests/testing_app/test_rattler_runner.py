"""The rattler runner: real .conda files solved, installed and tested with py-rattler, as a
subprocess with conda-build's command line; and test jobs run through it."""

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import conda_package_handling.api as cph
import pytest

from packages_app.adapters.sample_channel import index_channel
from packages_app.models import Build
from packages_app.models import TorchRelease
from packages_app.services.sync import sync_channels
from testing_app.adapters.rattler_runner import read_package_tests
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Run
from testing_app.models import Variant
from testing_app.models import WorkerProcess
from testing_app.services.conda_runner import RATTLER_RUNNER_SCRIPT
from testing_app.services.conda_runner import choose_test_runner
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import Declined
from testing_app.services.execution import execute_job
from testing_app.services.execution import start_job
from tests import factories
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.planning_world import sample_world
from tests.testing_app.rattler_built import build_v1

pytestmark = pytest.mark.django_db


def _run_script(package: Path, channel: str, croot: Path, *extra_deps: str, env=None):
    command = [sys.executable, str(RATTLER_RUNNER_SCRIPT), "--test", str(package)]
    command += ["--override-channels", "-c", channel, "--croot", str(croot)]
    if extra_deps:
        command += ["--extra-deps", *extra_deps]
    env = {"PATH": "/usr/bin:/bin", "CONDA_PKGS_DIRS": str(croot.parent / "pkgs"), **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def _without_rattler_build(tmp_path: Path) -> dict:
    """An environment in which `import rattler_build` fails, as on a host without the extra."""
    hidden = tmp_path / "hide-rattler-build" / "rattler_build"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('py-rattler-build not installed')\n")
    return {"PYTHONPATH": str(hidden.parent)}


@pytest.fixture
def world(tmp_path, settings):
    settings.CONDA_PKGS_DIR = tmp_path / "pkgs"
    settings.CONDA_BUILD_CROOT_DIR = tmp_path / "croot"
    world = sample_world(tmp_path)
    sync_channels(channels=[world.channel], plan=False)
    return world


def _file(world, name: str, version: str = "1.0.0") -> Path:
    return next(p.path for p in world.sample.packages if (p.name, p.version) == (name, version))


def test_script_passes_and_fails_with_the_pinned_pytorch_stand_in(world, tmp_path):
    package = _file(world, "sample-fails-on-torch-2-5")

    good = _run_script(package, world.sample.url, tmp_path / "a", "pytorch ==2.4.1")
    bad = _run_script(package, world.sample.url, tmp_path / "b", "pytorch ==2.5.1")

    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok with PyTorch 2.4.1" in good.stdout
    assert good.stdout.rstrip().endswith("All tests passed")
    assert "The following NEW packages will be INSTALLED:" in good.stdout
    assert bad.returncode == 1
    # rattler-build runs the test (a rattler-build package) and prints its output on stdout.
    assert "FAIL: this sample does not work with PyTorch 2.5" in bad.stdout
    assert f"TESTS FAILED: {package.name}" in bad.stdout


def test_script_unsolvable_environment_prints_the_solver_and_fails(world, tmp_path):
    result = _run_script(_file(world, "sample-unsatisfiable"), world.sample.url, tmp_path / "c")

    assert result.returncode == 1
    assert "Cannot solve the request" in result.stdout
    assert "sample-passes >=99" in result.stdout
    assert "TESTS FAILED:" in result.stdout


def _package(directory: Path, name: str, *, info_files: dict[str, str]) -> Path:
    stage = directory / f"stage-{name}"
    (stage / "info").mkdir(parents=True)
    index = {"name": name, "version": "1.0", "build": "0", "build_number": 0, "depends": [],
             "subdir": SUBDIR}  # fmt: skip
    (stage / "info" / "index.json").write_text(json.dumps(index))
    (stage / "info" / "files").write_text("")
    (stage / "info" / "paths.json").write_text('{"paths": [], "paths_version": 1}')
    for relative, text in info_files.items():
        (stage / "info" / relative).parent.mkdir(parents=True, exist_ok=True)
        (stage / "info" / relative).write_text(text)
    out = directory / "channel" / SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    cph.create(str(stage), None, f"{name}-1.0-0.conda", out_folder=str(out))
    return out / f"{name}-1.0-0.conda"


def test_script_package_without_tests_says_nothing_to_test(world, tmp_path):
    package = _file(world, "sample-no-tests")  # rattler-build's tests.yaml is `[]`

    emulated = _run_script(
        package, world.sample.url, tmp_path / "d0", env=_without_rattler_build(tmp_path)
    )
    real = _run_script(package, world.sample.url, tmp_path / "d")

    for result in (emulated, real):
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Nothing to test for: {package}" in result.stdout


def test_script_runs_rattler_build_tests_yaml(world, tmp_path):
    # The PyTorch stand-in, built by rattler-build: its script test is in tests.yaml (its
    # package_contents test is not: rattler-build checks that one while it builds).
    package = _file(world, "pytorch", "2.4.1")

    emulated = _run_script(
        package, world.sample.url, tmp_path / "e", env=_without_rattler_build(tmp_path)
    )
    real = _run_script(package, world.sample.url, tmp_path / "f")

    assert emulated.returncode == 0, emulated.stdout + emulated.stderr
    assert "torch-version prints 2.4.1" in emulated.stdout
    assert "run by rattler-build" not in emulated.stdout  # the emulation ran it
    # With py-rattler-build, rattler-build runs it.
    assert real.returncode == 0, real.stdout + real.stderr
    assert "run by rattler-build" in real.stdout
    assert "torch-version prints 2.4.1" in real.stdout


def test_read_package_tests_reads_both_layouts(tmp_path):
    conda_build = _package(
        tmp_path,
        "cb",
        info_files={
            "test/run_test.py": "import cb\n",
            "test/run_test.sh": "true\n",
            "test/test_time_dependencies.json": '["pytest", "numpy >=1.20"]',
        },
    )
    # Built by rattler-build (tests/testing_app/recipes/v1-python-tests), against an empty
    # local channel: its tests are only read here.
    empty = tmp_path / "empty-channel"
    (empty / "noarch").mkdir(parents=True)
    index_channel(empty)
    rattler_build = build_v1(
        "v1-python-tests", output_dir=tmp_path / "v1", channels=[empty.as_uri()]
    )

    first, second = read_package_tests(conda_build), read_package_tests(rattler_build)

    assert (first.layout, first.requirements) == ("conda-build", ["pytest", "numpy >=1.20"])
    assert set(first.files) == {"run_test.py", "run_test.sh"}
    assert first.needs_python
    assert second.layout == "rattler-build"
    assert second.commands == [
        'python -c "import v1_python_tests"',
        "python -m pip check",
        "v1-python-tests --help",
    ]
    assert second.requirements == ["pip", "python", "click"]


def _test_job(world, name: str, release: str, **fields) -> Job:
    build = Build.objects.get(channel=world.channel, name=name, version__in=["1.0.0", release])
    run = Run.objects.create(trigger=Run.Trigger.MANUAL)
    (job,) = enqueue_jobs(
        run=run,
        jobs=[
            Job(
                kind=Job.Kind.TEST,
                build=build,
                torch_release=TorchRelease.objects.get(version=release),
                variant=Variant.objects.get(name="cpu"),
                platform=Platform.objects.get(subdir=SUBDIR),
                extra_specs=["pytorch * cpu*"],
                timeout_s=300,
                **{"required_runner": "rattler", **fields},
            )
        ],
    )
    return job


def test_test_jobs_run_with_the_rattler_runner_get_conda_build_verdicts(world):
    passed = execute_job(job_id=_test_job(world, "sample-fails-on-torch-2-5", "2.4.1").pk)
    failed = execute_job(job_id=_test_job(world, "sample-fails-on-torch-2-5", "2.5.1").pk)
    stand_in = execute_job(job_id=_test_job(world, "pytorch", "2.5.1").pk)
    with_files = execute_job(job_id=_test_job(world, "sample-passes", "2.5.1").pk)
    without_tests = execute_job(job_id=_test_job(world, "sample-no-tests", "2.4.1").pk)
    legacy = execute_job(job_id=_test_job(world, "sample-legacy-layout", "2.4.1").pk)

    # The samples built by rattler-build are tested by rattler-build itself (the job says so).
    assert (passed.verdict, passed.runner) == ("passed", "rattler-build")
    assert passed.runner_version == importlib.metadata.version("py-rattler-build")
    assert {p["name"] for p in passed.solved_packages} == {"pytorch", "sample-fails-on-torch-2-5"}
    assert passed.command[:2] == [sys.executable, str(RATTLER_RUNNER_SCRIPT)]
    assert failed.verdict == "failed"
    assert "does not work with PyTorch 2.5" in failed.failure_excerpt
    assert stand_in.verdict == "passed"
    assert "torch-version prints 2.5.1" in stand_in.log_tail
    assert (with_files.verdict, with_files.runner) == ("passed", "rattler-build")
    assert "sample-passes runs with PyTorch 2.5.1" in with_files.log_tail
    assert (without_tests.verdict, without_tests.runner) == ("no_tests", "rattler-build")
    # The conda-build-layout sample takes the rattler runner's conda-build path.
    assert (legacy.verdict, legacy.runner) == ("passed", "rattler")
    assert legacy.runner_version  # py-rattler's version
    assert "sample-legacy-layout runs with PyTorch 2.4.1" in legacy.log_tail


def test_package_whose_sha256_does_not_match_is_an_error_and_not_kept(world, settings):
    build = Build.objects.get(channel=world.channel, name="sample-passes")
    Build.objects.filter(pk=build.pk).update(sha256="f" * 64)

    job = execute_job(job_id=_test_job(world, "sample-passes", "2.4.1").pk)

    assert job.verdict == "error"
    assert "checksum mismatch" in job.error_message
    assert not list(Path(settings.ARTIFACT_DIR).rglob("*.conda"))  # the bad download is gone


def test_runner_choice_follows_the_job_then_the_host():
    both = factories.HostFactory.build(runners={"conda-build": "24.9.0", "rattler": "0.28.0"})
    rattler_only = factories.HostFactory.build(runners={"rattler": "0.28.0"})

    assert choose_test_runner(Job(), WorkerProcess(host=both)) == "conda-build"
    assert choose_test_runner(Job(), WorkerProcess(host=rattler_only)) == "rattler"
    assert choose_test_runner(Job(required_runner="rattler"), WorkerProcess(host=both)) == "rattler"


def test_host_without_the_runner_a_job_needs_declines_it(world):
    job = _test_job(world, "sample-passes", "2.4.1", required_runner="conda-build")
    host = factories.HostFactory(
        platform=Platform.objects.get(subdir=SUBDIR), gpus=[], runners={"rattler": "0.28.0"}
    )
    worker = WorkerProcess.objects.create(host=host, name="w-1", queues=[job.queue_name])

    refused = start_job(job_id=job.pk, worker=worker)

    assert isinstance(refused, Declined)
    assert "misrouted" in refused.reason
    assert job.queue_name == f"test.{SUBDIR}.cpu@conda-build"
    assert Job.objects.get(pk=job.pk).status == "queued"
