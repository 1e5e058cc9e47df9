"""A hostile package's test, run by the real runner path through the real bubblewrap sandbox.

Its run_test.sh does what the attack on the public deployment did and more: it reads every
/proc/<pid>/environ it can see and prints each base64-, hex- and reverse-encoded (so a literal
redactor cannot catch it), reads the worker's files by absolute and `../` paths, and writes
outside its workspace. A decoy process holds planted secrets in its environment, as the worker
process's environment did. The control run (isolation turned off by the operator) shows the
attack works without the sandbox, so the sandboxed run's clean log means something.
"""

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

from packages_app.adapters.sample_channel import index_channel
from packages_app.models import Build
from packages_app.models import TorchRelease
from packages_app.services.packages import register_package
from packages_app.services.sync import sync_channels
from testing_app.adapters.conda_build import CondaBuildTest
from testing_app.adapters.conda_build import run_conda_build_test
from testing_app.adapters.job_log import JobLog
from testing_app.adapters.job_log import Redactor
from testing_app.adapters.sandbox import SandboxPolicy
from testing_app.adapters.sandbox import allowed_environment
from testing_app.adapters.sandbox import gpu_device_args
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Variant
from testing_app.models import Verdict
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.execution import execute_job
from testing_app.services.test_sandbox import host_isolation
from tests import factories
from tests.testing_app.packages import build_package
from tests.testing_app.planning_world import SUBDIR
from tests.testing_app.planning_world import sample_world
from tests.testing_app.test_conda_runner import _log
from tests.testing_app.test_conda_runner import _run

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]

DECOY_SECRET = "decoy-database-password-5f1e2d3c4b"
WORKER_FILE_SECRET = "worker-file-secret-9a8b7c6d5e"
SETTINGS_SECRET = "settings-secret-key-0a1b2c3d4e5f"


def encoded_forms(secret: str) -> dict[str, str]:
    """Every form the hostile script prints a secret in: as is, reversed, hex, and the part of
    its base64 that does not depend on where in the stream it starts (3 alignments)."""
    raw = secret.encode()
    forms = {"plain": secret, "reversed": secret[::-1], "hex": raw.hex()}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        skip = (offset * 4 + 2) // 3 + 1
        forms[f"base64+{offset}"] = encoded[skip:-4]
    return forms


def hostile_script(*, worker_file: Path, outside: Path, artifact_dir: Path) -> str:
    return f"""set +e
echo "uid=$(id -u)"
echo "visible-pids=$(ls -d /proc/[0-9]* | wc -l)"
for f in /proc/[0-9]*/environ /proc/self/environ; do
  if [ -r "$f" ]; then
    echo "b64:$(base64 -w0 < "$f")"
    echo "hex:$(od -An -tx1 -v < "$f" | tr -d ' \\n')"
    echo "rev:$(tr '\\0' '\\n' < "$f" | rev | tr '\\n' ' ')"
  fi
done
echo "file:$(base64 -w0 < {worker_file})"
echo "dotdot:$(base64 -w0 < ../../../{worker_file.parent.name}/{worker_file.name})"
echo escaped > {outside} && echo "wrote-outside"
for up in ../.. ../../.. ../../../.. ../../../../.. ../../../../../.. ../../../../../../..; do
  echo escaped > $up/escaped-from-workspace && echo "wrote-parent:$up"
done
for f in $(find {artifact_dir} -type f); do echo tampered >> "$f" && echo "wrote-artifact"; done
echo owned > "$HOME/mine" && echo "wrote-home"
true
"""


@pytest.fixture
def planted(tmp_path, engine_settings, monkeypatch):
    """Secrets where the worker keeps them: its settings, its environment, a file it owns, and
    a long-running process's environment (as the worker process's own was readable)."""
    engine_settings.SECRET_KEY = SETTINGS_SECRET
    monkeypatch.setenv("DATABASE_URL", f"postgres://distro:{DECOY_SECRET}@db/distro")
    worker_home = tmp_path / "worker-home"
    worker_home.mkdir()
    worker_file = worker_home / "worker.env"
    worker_file.write_text(f"SECRET_KEY={WORKER_FILE_SECRET}\n")
    worker_file.chmod(0o644)  # even a world-readable file of the worker stays out of sight
    decoy = subprocess.Popen(  # noqa: S603 - fixed argument list
        ["sleep", "300"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_PASSWORD": DECOY_SECRET},
        cwd=tmp_path,
    )
    yield worker_file
    decoy.kill()
    decoy.wait()


def _hostile_job(make_build, cpu_cell, engine_settings, worker_file, tmp_path, runner=""):
    outside = tmp_path / "outside-marker"
    script = hostile_script(
        worker_file=worker_file, outside=outside, artifact_dir=Path(engine_settings.ARTIFACT_DIR)
    )
    job = _run(make_build("hostile", run_test_sh=script), cpu_cell, required_runner=runner)
    return job, _log(job), outside


def _leaks(text: str) -> list[str]:
    found = []
    for secret in (DECOY_SECRET, WORKER_FILE_SECRET, SETTINGS_SECRET):
        found += [
            f"{secret[:6]}…/{form}"
            for form, value in encoded_forms(secret).items()
            if value in text
        ]
    return found


def test_without_isolation_the_hostile_test_steals_the_planted_secrets(
    engine_settings, make_build, cpu_cell, planted, tmp_path
):
    """The control: an operator who turns isolation off gets the attack of the report back."""
    engine_settings.TEST_ISOLATION = "none"

    job, text, outside = _hostile_job(make_build, cpu_cell, engine_settings, planted, tmp_path)

    assert job.verdict == Verdict.PASSED
    assert "warning: not isolated" in text
    assert _leaks(text), "the attack found nothing even without a sandbox: the test proves nothing"
    assert outside.exists()


def test_sandboxed_hostile_test_finds_no_secret_and_writes_nowhere_else(
    engine_settings, make_build, cpu_cell, planted, tmp_path
):
    job, text, outside = _hostile_job(make_build, cpu_cell, engine_settings, planted, tmp_path)
    _assert_contained(job, text, outside, engine_settings, tmp_path)


def test_rattler_runner_runs_the_hostile_test_sandboxed_after_installing_outside(
    engine_settings, planted, tmp_path
):
    """The rattler runner installs the environment itself and runs only the test scripts in the
    sandbox, here also without network (TEST_NETWORK off)."""
    engine_settings.TEST_NETWORK = False
    world = sample_world(tmp_path)
    outside = tmp_path / "outside-marker"
    script = hostile_script(
        worker_file=planted, outside=outside, artifact_dir=Path(engine_settings.ARTIFACT_DIR)
    )
    script += 'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " " | sed "s/^/iface:/"\n'
    build_package(world.sample.root, name="hostile", subdir=SUBDIR, run_test_sh=script)
    index_channel(world.sample.root)
    register_package(name="hostile", summary="a hostile package")
    sync_channels(channels=[world.channel], plan=False)
    build = Build.objects.get(name="hostile")
    (job,) = enqueue_jobs(
        run=factories.RunFactory(),
        jobs=[
            Job(
                kind=Job.Kind.TEST,
                build=build,
                torch_release=TorchRelease.objects.get(version="2.4.1"),
                variant=Variant.objects.get(name="cpu"),
                platform=Platform.objects.get(subdir=SUBDIR),
                extra_specs=["pytorch * cpu*"],
                required_runner="rattler",
            )
        ],
    )
    job = execute_job(job_id=job.pk)
    text = _log(job)

    assert "(the test scripts; the environment is installed outside)" in text
    _assert_contained(job, text, outside, engine_settings, tmp_path)
    assert [line for line in text.splitlines() if line.startswith("iface:")] == ["iface:lo"]


def _assert_contained(job, text, outside, engine_settings, tmp_path):

    assert job.verdict == Verdict.PASSED, text
    assert "sandbox: bubblewrap as nobody" in text
    assert _leaks(text) == []
    assert "uid=65534" in text
    # Its own PID namespace: bwrap's init, the runner and the test's shell, not the host's.
    visible = int(text.split("visible-pids=")[1].split()[0])
    assert visible < 10
    assert not outside.exists()
    assert "wrote-outside" not in text
    # Written inside its own workspace at most, which is removed with the job.
    assert list(tmp_path.rglob("escaped-from-workspace")) == []
    assert "wrote-artifact" not in text
    assert "wrote-home" in text  # its workspace is writable
    assert "file:" in text.splitlines()  # the worker's file: nothing read
    assert "dotdot:" in text.splitlines()
    assert "tampered" not in "".join(
        p.read_text(errors="replace") for p in Path(engine_settings.ARTIFACT_DIR).rglob("*.conda")
    )


def test_a_host_without_isolation_refuses_test_jobs(engine_settings, make_build, cpu_cell):
    engine_settings.TEST_SANDBOX_USER = "no-such-sandbox-user"

    job = _run(make_build("refused", run_test_sh="echo ran\n"), cpu_cell)

    assert job.verdict == Verdict.ERROR
    assert "cannot isolate tests" in job.error_message
    assert "no-such-sandbox-user" in job.error_message
    assert "ran" not in _log(job).splitlines()


def test_host_isolation_reports_bubblewrap_or_why_not(settings):
    isolation, reason = host_isolation()
    assert isolation.startswith("bubblewrap ")
    assert isolation.endswith(" as nobody")
    assert reason == ""
    settings.TEST_ISOLATION = "none"
    assert host_isolation() == ("", "the operator turned test isolation off (TEST_ISOLATION=none)")


def test_environment_is_an_allow_list():
    env = allowed_environment(
        {
            "PATH": "/usr/bin",
            "CUDA_VISIBLE_DEVICES": "1",
            "CONDA_OVERRIDE_CUDA": "12.4",
            "AWS_ACCESS": "x",
            "DJANGO_SETTINGS_MODULE": "distro_site.settings",
            "LD_PRELOAD": "/tmp/evil.so",  # noqa: S108 - an attacker's value, not a path we use
        }
    )
    assert env == {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "1", "CONDA_OVERRIDE_CUDA": "12.4"}


def test_gpu_device_nodes_are_passed_through(tmp_path):
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm", "null"):
        (tmp_path / name).touch()
    (tmp_path / "dri").mkdir()

    args = gpu_device_args(tmp_path)

    bound = [args[i + 2] for i in range(0, len(args), 3)]
    assert bound == ["/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidiactl", "/dev/dri"]
    assert set(args[0::3]) == {"--dev-bind"}


def test_no_network_option_cuts_the_network(tmp_path):
    policy = SandboxPolicy(uid=65534, gid=65534, network=False, env={"PATH": "/usr/bin:/bin"})
    policy.prepare(tmp_path / "ws")
    argv = policy.argv(["cat", "/proc/net/dev"], workspace=tmp_path / "ws")
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)  # noqa: S603
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines()[2:]]
    assert result.returncode == 0, result.stderr
    assert interfaces == ["lo"]


def test_hosts_page_shows_which_hosts_isolate_tests(client):
    factories.HostFactory(name="isolating", test_isolation="bubblewrap 0.8.0 as nobody")
    factories.HostFactory(
        name="bare", test_isolation="", test_isolation_note="bwrap is not installed"
    )

    page = client.get(reverse("testing:host-list")).content.decode()

    isolating = page.split('id="host-isolating"')[1].split("</tr>")[0]
    bare = page.split('id="host-bare"')[1].split("</tr>")[0]
    assert "✓ bubblewrap 0.8.0 as nobody" in isolating
    assert "⚠ none" in bare
    assert "bwrap is not installed" in bare


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if token in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_timeout_kills_everything_the_sandboxed_test_started(tmp_path):
    """The runner's timeout stops the process group it started: with the sandbox that is bwrap,
    and the test's whole PID namespace (background children included) goes with it."""
    token = "313.1337"
    program = tmp_path / "bin" / "stubborn-test"
    program.parent.mkdir()
    program.write_text(f"#!/bin/sh\nsleep {token} &\nsleep {token}\n")
    program.chmod(0o755)
    policy = SandboxPolicy(
        uid=65534, gid=65534, env={"PATH": "/usr/bin:/bin"}, read_only=(program.parent,)
    )
    test = CondaBuildTest(
        binary=str(program),
        package_path=tmp_path / "unused.conda",
        channels=[],
        extra_deps=[],
        croot=tmp_path / "croot",
    )
    log = JobLog(tmp_path / "job.log", redact=Redactor([]))

    run = run_conda_build_test(
        test, env={"PATH": "/usr/bin:/bin"}, timeout_s=3, log=log, kill_grace_s=1, sandbox=policy
    )
    log.finish()

    assert run.timed_out
    assert _processes_with(token) == []
