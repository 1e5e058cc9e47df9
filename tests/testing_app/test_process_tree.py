"""The runner's stop path on Windows, run on Linux with the Windows branch forced: no os.killpg,
no SIGKILL (both absent on Windows), `taskkill /T` then `taskkill /T /F` on the test's tree.
A stand-in `taskkill` on PATH records its arguments and ends the tree the way taskkill does
(the polite request first, which the test ignores, then the forced kill)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from testing_app.adapters import process_tree

FAKE_TASKKILL = """#!{python}
# taskkill stand-in: /T [/F] /PID <pid>. Without /F a console program ignores the request.
import os, signal, sys
args = sys.argv[1:]
with open({calls!r}, "a") as calls:
    calls.write(" ".join(args) + "\\n")
pid = int(args[args.index("/PID") + 1])
try:
    os.killpg(pid, signal.SIGKILL if "/F" in args else signal.SIGTERM)
except ProcessLookupError:
    sys.exit(128)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


@pytest.fixture
def windows(monkeypatch, tmp_path):
    """The Windows branch, forced: POSIX-only calls fail loudly, taskkill is on PATH."""
    calls = tmp_path / "taskkill-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    taskkill = bin_dir / "taskkill"
    taskkill.write_text(FAKE_TASKKILL.format(python=sys.executable, calls=str(calls)))
    taskkill.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(process_tree, "ON_WINDOWS", True)

    def no_killpg(*args):
        raise AssertionError("os.killpg does not exist on Windows")

    monkeypatch.setattr(process_tree.os, "killpg", no_killpg)
    monkeypatch.delattr(signal, "SIGKILL")  # absent on Windows
    return calls


def test_windows_options_start_a_new_process_group_not_a_session(windows):
    options = process_tree.new_process_group(preexec_fn=None)
    assert options == {"creationflags": 0x200}  # CREATE_NEW_PROCESS_GROUP
    assert "start_new_session" not in options


def test_windows_stop_path_asks_then_forces_taskkill_on_the_whole_tree(tmp_path, windows):
    child_pid = tmp_path / "child.pid"
    script = f"trap '' TERM; sleep 300 & echo $! > {child_pid}; wait"
    # Started as on POSIX (creationflags exist only on Windows); then stopped the Windows way.
    proc = subprocess.Popen(["bash", "-c", script], start_new_session=True)  # noqa: S603, S607
    deadline = time.monotonic() + 10
    while not child_pid.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(child_pid.read_text())

    process_tree.stop_tree(proc, grace_s=0.5)

    assert proc.returncode is not None
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the test's child survived taskkill /T /F"
    assert windows.read_text().splitlines() == [
        f"/T /PID {proc.pid}",
        f"/T /F /PID {proc.pid}",
    ]


def test_windows_kill_of_a_tree_already_gone_is_quiet(tmp_path, windows, caplog):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: S603
    proc.wait()
    process_tree.kill_tree(proc.pid, force=True)
    assert windows.read_text().splitlines() == [f"/T /F /PID {proc.pid}"]
    assert "taskkill" not in caplog.text  # exit 128 (no such process) is the wanted outcome
