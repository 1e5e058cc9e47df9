"""manage.py run_demo: the one-command local demo (migrate, seed, web server, one worker and
the periodic scheduler).

Only the schema stands between the command and the first page: migrate runs in this process,
the web server starts (the system checks run here meanwhile), and once it answers the rest
follows in the background, one step after another: seed_demo (the catalog, the sample channel
and its sync), the local target channel, then the workers and the scheduler (which need the
seeded platforms and channels), then the full run's planning. Pages fill in as steps land.

The host worker is this machine enrolled as a host (`distro_worker`, with a pre-approved token
made here): besides the `install` queue it listens on this host's capability queues
(test.<subdir>.cpu, and @rattler for jobs that need the rattler runner), which a plain
`rqworker` cannot serve since its queue names come from settings. Without conda-build it runs
the sample channel's tests with the rattler runner. The trusted queues (default, promote) get
their own `rqworker`, as in a deployment: one worker never serves both kinds.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.core.management.base import CommandError
from django.db import connections

from packages_app.management.commands.seed_demo import DEMO_MAINTAINER_EMAIL
from testing_app.services.test_sandbox import host_isolation
from testing_app.services.test_sandbox import isolation_required

HOST_WORKER_QUEUES = ("install",)
TRUSTED_WORKER_QUEUES = ("default", "promote")
DEMO_HOST = "demo-host"
TOKEN_ENV = "DISTRO_ENROLL_TOKEN"
STOP_TIMEOUT_S = 10

DEMO_INSTALL_SETS = '[["pytorch"]]'
# The background steps that end by themselves (the others run until the demo stops).
ONE_SHOT_STEPS = ("seed", "target", "sweep")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now: the kernel picks it when we bind port 0."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could bind host:port (with SO_REUSEADDR, as runserver does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING at url within timeout seconds."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redis_server_command(binary: str, port: int, directory) -> list[str]:
    """A throw-away redis-server: loopback only, nothing persisted, files kept in directory."""
    fixed = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
    logfile = str(directory / "redis.log")
    return [binary, *fixed, "--port", str(port), "--dir", str(directory), "--logfile", logfile]


def seed_commands(python: str, manage: str) -> dict[str, list[str]]:
    """One-shot steps after the first page, in this order, before the worker starts; each is
    idempotent, so reruns are cheap. (migrate runs earlier, inside run_demo itself.)"""
    return {
        "seed": [python, manage, "seed_demo"],
        # A local directory (TARGET_CHANNEL_DIR) as the target: promotions land there.
        "target": [python, manage, "init_target_channel"],
    }


def child_commands(python: str, manage: str, port: int, with_worker: bool) -> dict[str, list]:
    """The long-running children: the web server and, when Redis exists, this machine as a
    host's worker, the trusted side's worker and the periodic scheduler (rqcron: reconciler,
    channel sync, maintenance policy, digests), as a deployment runs them."""
    # No autoreloader: it would start Django twice before the first page and then poll every
    # module file each second (`make run` is the server that reloads on edits). The system
    # checks run in run_demo itself while the server starts.
    web = [python, manage, "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"]
    commands = {"web": web}
    if with_worker:
        # Both workers run RQ's scheduler (delayed retries of their queues); the periodic jobs
        # come from the one rqcron process, which enqueues them on "default".
        cpu_queues = [arg for queue in HOST_WORKER_QUEUES for arg in ("--cpu-queue", queue)]
        commands["worker"] = [python, manage, "distro_worker", "--name", DEMO_HOST, *cpu_queues]
        commands["trusted-worker"] = [
            python,
            manage,
            "rqworker",
            "--with-scheduler",
            *TRUSTED_WORKER_QUEUES,
        ]
        commands["scheduler"] = [python, manage, "rqcron", "testing_app.management.cron"]
    return commands


def sweep_command(python: str, manage: str) -> list[str]:
    """Decide every cell of the catalog's registered packages as far as metadata can: the
    production planner's full run (not applicable with reasons, unknown cells to their install
    checks), started after the web server so the first page does not wait for it; the worker
    then runs the install checks, and the run page shows the progress."""
    return [python, manage, "plan_run", "--full"]


def start(command: list[str], env: dict) -> subprocess.Popen:
    """Start a child in its own process group, so a stop also reaches its own children."""
    return subprocess.Popen(
        command, env=env, cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, start_new_session=True
    )


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists (zombies not yet reaped included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM the child's process group, SIGKILL what is left after timeout s; its exit code.

    The whole group must be gone, not only the child: the worker's scheduler still talks to
    Redis while it shuts down, and Redis is stopped last.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_alive(proc.pid):
                return proc.returncode
            time.sleep(0.05)
    return proc.wait()


def first_exited(children: dict[str, subprocess.Popen]) -> tuple[str, int] | None:
    """(name, exit code) of a child that has stopped, or None while all of them run."""
    for name, proc in children.items():
        code = proc.poll()
        if code is not None:
            return name, code
    return None


def no_redis_banner(url: str) -> str:
    """The loud start-up warning for a demo that has to run its jobs without Redis."""
    bar = "!" * 80
    lines = (
        f"!!! NO REDIS: {url} is unreachable and there is no redis-server binary.",
        "!!! RQ_SYNC=1: every job runs INSIDE the web request and no worker is started.",
        "!!! Install Redis (Debian: apt-get install redis-server) to see the real queues.",
    )
    return "\n".join(("", bar, *lines, bar, ""))


class Command(BaseCommand):
    help = (
        "Run the local demo: migrate, seed the demo catalog, start the web server and one RQ "
        "worker (a private redis-server when REDIS_URL is unreachable). Ctrl-C stops it all."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
        parser.add_argument("--check", action="store_true", help="Prepare, start no child, exit 0")

    def handle(self, *args, port, check, **options):
        if not settings.DEBUG:
            raise CommandError("run_demo is a local demo: run it with DEBUG=1 (make demo does).")
        if not port_is_free(port):
            raise CommandError(f"127.0.0.1:{port} is in use; choose another with --port or PORT=.")
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        for sig in (signal.SIGTERM, signal.SIGHUP):  # stop as cleanly as on Ctrl-C
            signal.signal(sig, signal.default_int_handler)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # The sample packages stand in for builds against PyTorch 2.4/2.5, while the demo
        # catalog's torchvision needs a newer PyTorch: with the production default install set
        # the gate would (rightly) keep every sample out of the target channel. The demo checks
        # PyTorch alone with each candidate unless INSTALL_SETS is set.
        env.setdefault("INSTALL_SETS", DEMO_INSTALL_SETS)
        # The real catalog comes as metadata only: its cells end "installable, not tested" after
        # their install check; only the sample packages, whose files are here, are tested.
        env.setdefault("TESTS_NEED_PACKAGE_FILE", "1")
        python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
        children: dict[str, subprocess.Popen] = {}
        try:
            if private_redis := self._choose_redis(env):
                children["redis"] = private_redis
            self._migrate()
            self._admin_user()
            with_worker = env.get("RQ_SYNC") != "1"
            if with_worker:
                self._enrollment_token(env)
                self._warn_without_isolation()
            commands = child_commands(python, manage, port, with_worker=with_worker)
            web = commands.pop("web")
            if check:
                call_command("check")
                for command in seed_commands(python, manage).values():
                    self._run_now(command, env)
                self.stdout.write(f"install sets: {env['INSTALL_SETS']}")
                self.stdout.write(f"tests need a package file: {env['TESTS_NEED_PACKAGE_FILE']}")
                self.stdout.write(f"would start web: {' '.join(web[1:])}")
                for name, command in commands.items():
                    self.stdout.write(f"would start {name}: {' '.join(command[1:])}")
                self.stdout.write(
                    f"then in the background: {' '.join(sweep_command(python, manage)[1:])}"
                )
                self.stdout.write(self.style.SUCCESS("run_demo --check: ready, started nothing"))
                return
            children["web"] = start(web, env)
            # The checks the server skipped, on the other core while it starts.
            call_command("check")
            self._announce(port, children, later=list(commands))
            self._watch(children, self._background(python, manage, commands, env))
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the demo...")
        finally:
            self._stop_all(children)

    def _migrate(self) -> None:
        """The schema, in this process: a separate `manage.py migrate` would start Python and
        Django once more before the first page. (call_command skips the system checks; the web
        server runs them.)"""
        self.stdout.flush()
        call_command("migrate", interactive=False)
        connections.close_all()  # the web and worker processes share the SQLite file

    def _run_now(self, command: list[str], env: dict) -> None:
        self.stdout.flush()  # keep our lines ahead of the child's output
        if subprocess.run(command, env=env, cwd=settings.BASE_DIR).returncode:
            raise CommandError(f"`{' '.join(command[1:])}` failed; demo not started.")

    def _background(self, python, manage, commands: dict, env: dict):
        """The steps after the first page, as a generator the watch loop drives: it yields
        (name, process) for each child it starts, and the loop resumes it once a one-shot step
        has ended well (at once after a long-running child). The seed steps come first: the
        worker needs the platforms and channels they create."""
        for name, command in seed_commands(python, manage).items():
            yield name, start(command, env)
        self.stdout.write(
            "demo catalog seeded" + (f"; starting {', '.join(commands)}" if commands else "")
        )
        for name, command in commands.items():
            yield name, start(command, env)
        yield "sweep", start(sweep_command(python, manage), env)

    def _choose_redis(self, env: dict) -> subprocess.Popen | None:
        """A reachable REDIS_URL, else a private redis-server, else in-process jobs (RQ_SYNC)."""
        if settings.RQ_SYNC:
            env["RQ_SYNC"] = "1"
            self.stdout.write("RQ_SYNC is set: jobs run inside the web process, no worker.")
            return None
        if redis_reachable(settings.REDIS_URL):
            self.stdout.write(f"Using Redis at {settings.REDIS_URL}")
            return None
        binary = shutil.which("redis-server")
        if binary is None:
            env["RQ_SYNC"] = "1"
            self.stderr.write(self.style.WARNING(no_redis_banner(settings.REDIS_URL)))
            return None
        return self._start_private_redis(binary, env)

    def _start_private_redis(self, binary: str, env: dict) -> subprocess.Popen:
        directory = settings.VAR_DIR / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):  # someone may take the free port before redis-server binds it
            port = free_port()
            proc = start(redis_server_command(binary, port, directory), env)
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 5
            while proc.poll() is None and time.monotonic() < deadline:
                if redis_reachable(url, timeout=0.2):
                    env["REDIS_URL"] = url
                    self.stdout.write(
                        f"{settings.REDIS_URL} is unreachable: started private redis-server "
                        f"(pid {proc.pid}) at {url}, log in {directory / 'redis.log'}"
                    )
                    return proc
                time.sleep(0.1)
            stop(proc)
        raise CommandError(f"Could not start a private redis-server; see {directory}/redis.log")

    def _admin_user(self) -> None:
        password = os.environ.get("DEMO_ADMIN_PASSWORD")
        if not password:
            self.stdout.write(
                "No admin user created. Set DEMO_ADMIN_PASSWORD to get user 'admin', or run "
                "`DEBUG=1 .venv/bin/python manage.py createsuperuser`."
            )
            return
        user, _ = get_user_model().objects.get_or_create(username="admin")
        user.is_staff = user.is_superuser = True
        user.email = user.email or DEMO_MAINTAINER_EMAIL  # the sample packages' maintainer
        user.set_password(password)
        user.save()
        connections.close_all()  # the web and worker processes share the SQLite file
        self.stdout.write("Admin user 'admin' is ready, password from DEMO_ADMIN_PASSWORD.")

    def _warn_without_isolation(self) -> None:
        """The demo's worker refuses package tests it cannot sandbox; say so up front, and how a
        developer opts out on their own machine."""
        isolation, why_not = host_isolation()
        if not isolation and isolation_required():
            self.stdout.write(
                self.style.WARNING(
                    f"test jobs will end 'error': this machine cannot isolate them ({why_not}). "
                    "Install bubblewrap, or run the demo with TEST_ISOLATION=none to run the "
                    "sample packages' tests unisolated."
                )
            )

    def _enrollment_token(self, env: dict) -> None:
        """A pre-approved token for the demo worker's first start (a host enrolled before needs
        none), passed in the environment, not on the command line."""
        from testing_app.models import Host
        from testing_app.services.hosts import create_enrollment_token

        if Host.objects.filter(name=DEMO_HOST).exists():
            return
        _, plain = create_enrollment_token(name="run_demo worker", pre_approved=True)
        env[TOKEN_ENV] = plain
        connections.close_all()  # the worker opens the SQLite file next

    def _announce(self, port: int, children: dict, later: list[str]) -> None:
        """Wait until the web server accepts connections, then print the URL."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first_exited(children) is None:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nconda-distro demo: {url}  (admin: {url}admin/)"))
        then = f", then {' and '.join(later)} start" if later else ""
        self.stdout.write(
            f"Running: {', '.join(children)}. In the background the demo catalog is seeded{then}: "
            "pages fill in as they land. Press Ctrl-C to stop.\n"
        )

    def _watch(self, children: dict, background=None) -> None:
        """Until a long-running child stops, driving the background steps meanwhile: a seed step
        that fails stops the demo; the sweep may fail (it is reported, not fatal)."""
        step = next(background, None) if background is not None else None
        while True:
            if step is not None:
                name, proc = step
                children[name] = proc  # from now on stopped with the rest
                code = proc.poll() if name in ONE_SHOT_STEPS else 0
                if code is not None:
                    if name in ONE_SHOT_STEPS:
                        del children[name]
                        self._one_shot_ended(name, code)
                    step = next(background, None)
                    continue
            long_running = {k: v for k, v in children.items() if k not in ONE_SHOT_STEPS}
            if (exited := first_exited(long_running)) is not None:
                name, code = exited
                raise CommandError(f"The {name} process exited with code {code}; stopped the demo.")
            time.sleep(0.2)

    def _one_shot_ended(self, name: str, code: int) -> None:
        if name != "sweep":
            if code:
                raise CommandError(f"The {name} step failed (exit code {code}); stopped the demo.")
            return
        if code:
            self.stderr.write(f"the full run's planning failed (exit code {code})")
        else:
            self.stdout.write("full run planned: the worker now runs its install checks")

    def _stop_all(self, children: dict) -> None:
        # A second Ctrl-C must not cut the cleanup short and leave orphans behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Web and worker first, Redis last, so that the worker can still say goodbye to it.
        for name in sorted(children, key=lambda n: n == "redis"):
            stop(children[name])
            label = "private redis-server" if name == "redis" else name
            self.stdout.write(f"stopped {label} (pid {children[name].pid})")
