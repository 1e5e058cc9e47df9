"""Private Redis and PostgreSQL servers for the fault runs: started on their own ports and in
their own folders, so that killing or restarting them never touches the machine's servers."""

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.ports import free_port


def wait_until_listening(port: int, *, timeout: float = 30, proc=None) -> None:
    """Until something listens on the port; with `proc`, fail as soon as that process exits
    (it could not bind: then whatever listens there is not ours)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server meant for port {port} exited ({proc.returncode})")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class PrivateRedis:
    """`redis-server` without persistence: killed, it comes back empty."""

    def __init__(self, folder: Path):
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with (self.folder / "redis.log").open("a") as log:
            self.proc = subprocess.Popen(  # noqa: S603
                [  # noqa: S607
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.folder),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_listening(self.port, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL: everything Redis held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (initdb, trust authentication) in a temporary folder.
    initdb and the server refuse to run as root: as root they run as the `postgres` user."""

    def __init__(self):
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key)
        if not versions:
            pytest.skip("PostgreSQL server binaries are not installed")
        self.bin = Path(versions[-1])
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="distro-fault-pg-"))
        self.data = self.folder / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres", "postgres")

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        # Output to a file, never to a pipe: the server pg_ctl starts inherits it, and a pipe
        # would stay open (and its reader waiting) for as long as the server runs.
        log = self.folder / "commands.log"
        with log.open("a") as sink:
            done = subprocess.run(  # noqa: S603
                [*self.as_user, *argv],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {log.read_text()[-2000:]}")

    def _ctl(self, *args: str) -> None:
        server_log = str(self.folder / "server.log")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", server_log, "-w", *args)

    def start(self) -> None:
        if not self.data.exists():
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            )
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._ctl("-o", options, "start")

    def restart(self, mode: str = "fast") -> None:
        """Stop (`fast`: every session is ended; `immediate`: like a crash) and start again."""
        self._ctl("-m", mode, "restart")

    def create_database(self, name: str) -> None:
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), name)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def _version_key(path: str) -> tuple:
    version = Path(path).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())
