"""manage.py run_demo: its helpers, and a real `--check` run on SQLite with a private Redis."""

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management.base import CommandError

from testing_app.management.commands import run_demo

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


def test_free_port_is_bindable():
    port = run_demo.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert run_demo.port_is_free(port)


def test_port_is_not_free_while_something_listens():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not run_demo.port_is_free(sock.getsockname()[1])


def test_redis_reachable_is_false_for_a_closed_port():
    url = f"redis://127.0.0.1:{run_demo.free_port()}/0"
    assert run_demo.redis_reachable(url, timeout=0.5) is False


def test_redis_reachable_is_true_for_the_test_redis():
    assert run_demo.redis_reachable(settings.REDIS_URL) is True


def test_child_commands_run_web_this_host_as_a_worker_and_a_trusted_worker():
    commands = run_demo.child_commands("py", "manage.py", 8765, with_worker=True)
    assert commands == {
        # No autoreloader (it starts Django twice); run_demo runs the system checks itself.
        "web": ["py", "manage.py", "runserver", "--noreload", "--skip-checks", "127.0.0.1:8765"],
        # distro_worker adds this host's capability queues (test.<subdir>.cpu[@rattler]).
        "worker": [
            "py", "manage.py", "distro_worker", "--name", "demo-host", "--cpu-queue", "install",
        ],
        # The trusted queues in a worker of their own: one worker never serves both kinds.
        "trusted-worker": [
            "py", "manage.py", "rqworker", "--with-scheduler", "default", "promote",
        ],
        # The periodic jobs (reconciler, sync, maintenance policy), as a deployment runs them.
        "scheduler": ["py", "manage.py", "rqcron", "testing_app.management.cron"],
    }  # fmt: skip


def test_child_commands_without_redis_start_no_worker():
    assert list(run_demo.child_commands("py", "m", 8000, with_worker=False)) == ["web"]


def test_seed_steps_seed_the_demo_then_make_the_target_channel():
    # migrate runs inside run_demo before the web server; these follow the first page.
    steps = run_demo.seed_commands("py", "manage.py")
    assert {name: step[2] for name, step in steps.items()} == {
        "seed": "seed_demo",
        "target": "init_target_channel",
    }
    assert set(steps) < set(run_demo.ONE_SHOT_STEPS)


def test_private_redis_listens_on_loopback_and_persists_nothing(tmp_path):
    command = run_demo.redis_server_command("redis-server", 7001, tmp_path)
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options == {
        "--bind": "127.0.0.1",
        "--save": "",
        "--appendonly": "no",
        "--daemonize": "no",
        "--port": "7001",
        "--dir": str(tmp_path),
        "--logfile": str(tmp_path / "redis.log"),
    }


def test_first_exited_reports_a_dead_child():
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    try:
        assert run_demo.first_exited({"web": alive}) is None
        assert run_demo.first_exited({"web": alive, "worker": dead}) == ("worker", 3)
    finally:
        alive.kill()
        alive.wait()


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie waiting for its reaper counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _spawn_with_grandchild(tmp_path, leader_exits: bool) -> tuple[subprocess.Popen, int]:
    """A child in its own session that starts a grandchild, as runserver and rqworker do."""
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))\n"
        f"time.sleep({0 if leader_exits else 60})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    assert _wait_until(lambda: pid_file.exists() and pid_file.read_text())
    return proc, int(pid_file.read_text())


def test_stop_ends_the_whole_process_group(tmp_path):
    proc, grandchild = _spawn_with_grandchild(tmp_path, leader_exits=False)
    assert run_demo.stop(proc, timeout=5) == -signal.SIGTERM
    assert not _alive(grandchild)


def test_stop_ends_what_a_dead_child_left_behind(tmp_path):
    # The worker killed outright leaves its scheduler process running in the group.
    proc, grandchild = _spawn_with_grandchild(tmp_path, leader_exits=True)
    proc.wait(timeout=10)
    assert _alive(grandchild)
    assert run_demo.stop(proc, timeout=5) == 0
    assert not _alive(grandchild)
    assert not run_demo.group_alive(proc.pid)


def _demo_env(tmp_path, **extra) -> dict:
    """The demo's embedded defaults (SQLite under VAR_DIR), for this subprocess only."""
    env = {k: v for k, v in os.environ.items() if k not in {"RQ_SYNC", "PORT"}}
    env.update(
        DJANGO_SETTINGS_MODULE="distro_site.settings.base",
        DEBUG="1",
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        REDIS_URL=f"redis://127.0.0.1:{run_demo.free_port()}/0",  # nothing listens there
        DEMO_ADMIN_PASSWORD="demo-password",
        # The session's rattler-build sample cache (tests/conftest.py): not built again here.
        SAMPLE_BUILD_CACHE_DIR=str(settings.SAMPLE_BUILD_CACHE_DIR),
    )
    return env | extra


def _run_check(env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, MANAGE, "run_demo", "--check", "--port", str(run_demo.free_port())]
    return subprocess.run(
        command, env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=180
    )


def test_run_demo_check_starts_and_stops_a_private_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary here; the RQ_SYNC path is tested below")
    result = _run_check(_demo_env(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    started = re.search(r"started private redis-server \(pid (\d+)\) at (redis://\S+)", output)
    assert started, output
    assert f"stopped private redis-server (pid {started[1]})" in output
    assert not run_demo.redis_reachable(started[2], timeout=0.5)
    assert "Admin user 'admin' is ready" in output
    assert "would start worker:" in output
    assert 'install sets: [["pytorch"]]' in output  # the samples can be promoted in the demo
    # The real catalog (metadata only) is decided by the full run, after the first page.
    assert "tests need a package file: 1" in output
    assert re.search(r"then in the background: \S*manage\.py plan_run --full", output), output
    assert "run_demo --check: ready" in output
    assert (tmp_path / "demo.sqlite3").exists()  # migrated and seeded there, not elsewhere
    assert (tmp_path / "var" / "channels" / "target" / "noarch" / "repodata.json").exists()
    assert (tmp_path / "var" / "redis" / "redis.log").exists()


def test_run_demo_check_without_redis_server_says_rq_sync_loudly(tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    result = _run_check(_demo_env(tmp_path, PATH=str(empty_bin)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NO REDIS" in result.stderr
    assert "RQ_SYNC=1" in result.stderr
    assert "would start web:" in result.stdout
    assert "would start worker:" not in result.stdout


def test_run_demo_refuses_to_run_without_debug(tmp_path):
    env = _demo_env(tmp_path, DEBUG="0", SECRET_KEY="x" * 50)
    result = _run_check(env)
    assert result.returncode != 0
    assert "DEBUG=1" in result.stderr


def _step(record: Path, name: str, *, code: int = 0, stay_s: float = 0) -> list[str]:
    """A child that notes its name in `record`, stays `stay_s` seconds, exits with `code`."""
    script = (
        f"import time; open({str(record)!r}, 'a').write({name!r} + '\\n'); "
        f"time.sleep({stay_s}); raise SystemExit({code})"
    )
    return [sys.executable, "-c", script]


def _background_with(monkeypatch, record: Path, *, target_code: int = 0, sweep_code: int = 0):
    monkeypatch.setattr(
        run_demo,
        "seed_commands",
        lambda python, manage: {
            "seed": _step(record, "seed", stay_s=0.3),
            "target": _step(record, "target", code=target_code),
        },
    )
    monkeypatch.setattr(
        run_demo, "sweep_command", lambda python, manage: _step(record, "sweep", code=sweep_code)
    )
    command = run_demo.Command(stdout=io.StringIO(), stderr=io.StringIO())
    worker = {"worker": _step(record, "worker", stay_s=2)}
    return command, command._background("py", "manage.py", worker, dict(os.environ))


def test_after_the_first_page_seed_then_worker_then_sweep(tmp_path, monkeypatch):
    record = tmp_path / "order"
    command, background = _background_with(monkeypatch, record, sweep_code=5)
    children: dict = {}
    try:
        # The watch ends when a long-running child (here the worker, after 2 s) exits.
        with pytest.raises(CommandError, match="The worker process exited with code 0"):
            command._watch(children, background)
    finally:
        for proc in children.values():  # (not _stop_all: it ignores Ctrl-C from then on)
            run_demo.stop(proc, timeout=5)
    lines = record.read_text().split()
    assert lines[:2] == ["seed", "target"]  # one after another, before the worker
    assert sorted(lines[2:]) == ["sweep", "worker"]
    assert "the full run's planning failed (exit code 5)" in command.stderr.getvalue()
    assert "demo catalog seeded; starting worker" in command.stdout.getvalue()


def test_a_failed_seed_step_stops_the_demo_before_the_worker(tmp_path, monkeypatch):
    record = tmp_path / "order"
    command, background = _background_with(monkeypatch, record, target_code=3)
    children: dict = {}
    try:
        with pytest.raises(CommandError, match="The target step failed \\(exit code 3\\)"):
            command._watch(children, background)
    finally:
        for proc in children.values():  # (not _stop_all: it ignores Ctrl-C from then on)
            run_demo.stop(proc, timeout=5)
    assert record.read_text().split() == ["seed", "target"]
