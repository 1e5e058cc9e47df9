"""End a test's whole process tree, on POSIX and on Windows.

POSIX: the test starts a new session and its process group gets SIGTERM, then SIGKILL.
Windows has neither os.killpg nor SIGKILL: the test starts in a new process group and
`taskkill /T` ends its tree (/F when forced: console programs ignore the polite request).
The Windows branch has only been run with it forced on Linux (tests), never on a win-64 host.
"""

import contextlib
import logging
import os
import signal
import subprocess
import sys

ON_WINDOWS = sys.platform == "win32"
TASKKILL_TIMEOUT_S = 60
TASKKILL_NOT_FOUND = 128
logger = logging.getLogger(__name__)


def new_process_group(*, preexec_fn=None) -> dict:
    """Popen options that make the test the root of a tree this runner can end as a whole: a
    new session (POSIX, killed by process group), or a new process group (Windows, whose tree
    taskkill /T ends)."""
    if ON_WINDOWS:
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True, "preexec_fn": preexec_fn}


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    # The group may already be gone entirely: that is the outcome we want, not an error.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_tree(pid: int, *, force: bool) -> None:
    """End the test's process tree: SIGTERM/SIGKILL to its process group on POSIX; on Windows,
    where neither os.killpg nor SIGKILL exists, `taskkill /T` (the tree), with /F when forced
    (a console program ignores the polite close request)."""
    if not ON_WINDOWS:
        _kill_group(pid, signal.SIGKILL if force else signal.SIGTERM)
        return
    argv = ["taskkill", "/T", *(["/F"] if force else []), "/PID", str(pid)]
    try:
        done = subprocess.run(  # noqa: S603 - fixed program, argument list
            argv, capture_output=True, text=True, timeout=TASKKILL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("taskkill of the test tree %s failed: %s", pid, exc)
        return
    # 128: no such process - the tree is already gone, which is the outcome we want.
    if done.returncode not in (0, TASKKILL_NOT_FOUND):
        logger.warning("taskkill /T of %s exited %s: %s", pid, done.returncode, done.stderr)


def stop_tree(proc: subprocess.Popen, grace_s: float) -> None:
    kill_tree(proc.pid, force=False)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid, force=True)
        proc.wait()
