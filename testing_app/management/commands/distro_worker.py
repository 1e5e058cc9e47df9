"""manage.py distro_worker: probe this host, enroll or refresh it, run its worker(s).

One worker per GPU, each pinned with CUDA_VISIBLE_DEVICES: with `--gpu I` this process is the
worker of GPU I; without it, on a host with several GPUs, it starts and supervises one child
per GPU (systemd can instead run one `--gpu %i` unit per GPU, see docs/operators.md).
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.core.management.base import CommandError
from django.db import connections
from rq.worker.base import BaseWorker

from testing_app.adapters.host_probe import GpuFacts
from testing_app.adapters.host_probe import HostFacts
from testing_app.adapters.host_probe import ProbeError
from testing_app.adapters.host_probe import probe_host
from testing_app.management.forking_worker import ForkingDistroWorker
from testing_app.management.workers import FORK
from testing_app.management.workers import IN_PROCESS
from testing_app.management.workers import DistroWorker
from testing_app.models import Host
from testing_app.models import Variant
from testing_app.selectors.hosts import database_role_writes_follow_ups
from testing_app.services.hosts import enroll_host
from testing_app.services.hosts import register_worker
from testing_app.services.hosts import stop_worker
from testing_app.services.hosts import worker_capabilities
from testing_app.services.queues import INSTALL_QUEUE
from testing_app.services.queues import is_host_queue
from testing_app.services.queues import queues_for_worker
from testing_app.services.reconcile import recover_dead_workers_of_host
from testing_app.services.simulation import simulated_host_facts
from testing_app.services.test_sandbox import host_isolation

logger = logging.getLogger(__name__)

TOKEN_ENV = "DISTRO_ENROLL_TOKEN"
RESTART_DELAY_S = 5


def worker_class(execution: str | None = None) -> type[BaseWorker]:
    """The worker class of an execution model (default: settings.WORKER_EXECUTION)."""
    execution = execution or settings.WORKER_EXECUTION
    classes = {IN_PROCESS: DistroWorker, FORK: ForkingDistroWorker}
    if execution not in classes:
        raise ValueError(f"WORKER_EXECUTION must be one of {sorted(classes)}, not {execution!r}")
    return classes[execution]


def gpu_pin_environment(gpu: GpuFacts) -> dict[str, str]:
    """The variables that give a worker (and the tests it runs) exactly one GPU. nvidia-smi
    numbers GPUs in PCI order, CUDA by speed unless told otherwise; the UUID names exactly the
    GPU (checked on real hardware: tests/fixtures/gpu_pinning/). A GPU in MIG mode is pinned by
    its first MIG instance's UUID: CUDA shows no device for the parent GPU's UUID then."""
    return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": gpu.pin_id}


class Command(BaseCommand):
    help = "Probe this host, enroll it (or refresh its facts), and run its RQ worker(s)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--enroll-token",
            default="",
            help=f"Enrollment token (needed the first time; or set ${TOKEN_ENV}, which keeps it "
            "out of the process list).",
        )
        parser.add_argument("--name", default="", help="Host name (default: the machine's).")
        parser.add_argument("--gpu", type=int, help="Run the worker of this GPU index only.")
        parser.add_argument(
            "--cpu-queue",
            action="append",
            dest="cpu_queues",
            help="Also serve this host queue (install); repeatable. Default: WORKER_CPU_QUEUES.",
        )
        parser.add_argument("--burst", action="store_true", help="Exit when the queues are empty.")
        parser.add_argument(
            "--execution",
            choices=[IN_PROCESS, FORK],
            help="Run each job in the worker process or in a forked work-horse "
            "(default: WORKER_EXECUTION; see testing_app/management/workers.py).",
        )

    def handle(self, *args, **options):
        token = options["enroll_token"] or os.environ.get(TOKEN_ENV, "")
        name = options["name"] or socket.gethostname()
        cpu_queues = options["cpu_queues"]
        execution = options["execution"] or settings.WORKER_EXECUTION
        try:  # before anything is registered: a typo must not leave a worker row behind
            worker_class(execution)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if cpu_queues is None:
            cpu_queues = list(settings.WORKER_CPU_QUEUES)
        trusted = [queue for queue in cpu_queues if not is_host_queue(queue)]
        if trusted:  # before anything is registered, as above
            raise CommandError(
                f"A host's worker serves host queues only, not {', '.join(trusted)}: those are "
                "the web side's (`manage.py rqworker default promote`), whose workers read "
                "pickle and must never meet a job a host can write."
            )
        if settings.HOST_LIMITED_ROLE and INSTALL_QUEUE in cpu_queues:
            # `install` also carries the promotion gate's installability checks, which this
            # role cannot record: they would fail here instead of on a web-side worker.
            raise CommandError(
                "Under HOST_LIMITED_ROLE a host does not serve `install`: the promotion gate's "
                "checks run there; serve it on the web side (`manage.py rqworker install`)."
            )
        if not settings.HOST_LIMITED_ROLE and not database_role_writes_follow_ups():
            # Else every finished job would fail on its notices and stay `running`.
            raise CommandError(
                "This database role cannot write notices or packages (a host's role from "
                "`manage.py host_db_role`): set HOST_LIMITED_ROLE=1 on this host."
            )
        try:
            facts = self._facts()
        except ProbeError as exc:
            raise CommandError(f"Cannot probe this host: {exc}") from exc
        isolation, why_not = host_isolation()
        facts = replace(facts, test_isolation=isolation, test_isolation_note=why_not)
        if not isolation:
            self.stdout.write(f"probe: tests are not isolated here: {why_not}")
        for note in facts.notes:
            self.stdout.write(f"probe: {note}")
        try:
            host = enroll_host(name=name, facts=facts, token=token, cpu_queues=cpu_queues)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self._describe(host, facts)
        if options["gpu"] is None and len(facts.gpus) > 1:
            return self._supervise(
                host, facts, cpu_queues, burst=options["burst"], execution=execution
            )
        gpu = self._pick_gpu(facts, options["gpu"])
        return self._run_worker(
            host, facts, gpu, cpu_queues, burst=options["burst"], execution=execution
        )

    def _facts(self) -> HostFacts:
        """The probed facts, or SIMULATED_HOST_FACTS in a fleet simulation (bench/wave_sim.py)."""
        if not settings.SIMULATED_HOST_FACTS:
            return probe_host(conda_build_bin=settings.CONDA_BUILD_BIN)
        self.stdout.write("SIMULATION: host facts from SIMULATED_HOST_FACTS, not probed")
        try:
            return simulated_host_facts(settings.SIMULATED_HOST_FACTS)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def _describe(self, host: Host, facts: HostFacts) -> None:
        gpus = ", ".join(f"{g.index}: {g.name}" for g in facts.gpus) or "none"
        self.stdout.write(
            f"host {host.name} ({host.platform.subdir}): {host.get_state_display()}; GPUs: {gpus}; "
            f"driver CUDA {facts.max_cuda or '-'}; conda-build {facts.conda_build_version or '-'}"
        )
        self.stdout.write(f"queues: {', '.join(host.queues)}")
        if host.state == Host.State.PENDING:
            self.stdout.write(
                "waiting for an admin to approve this host; it takes no job until then"
            )

    @staticmethod
    def _pick_gpu(facts: HostFacts, index: int | None) -> GpuFacts | None:
        if index is None:
            return facts.gpus[0] if facts.gpus else None
        for gpu in facts.gpus:
            if gpu.index == index:
                return gpu
        raise CommandError(f"No GPU {index}: nvidia-smi lists {[g.index for g in facts.gpus]}.")

    def _run_worker(self, host, facts, gpu, cpu_queues, *, burst: bool, execution: str) -> None:
        if gpu is not None:
            os.environ.update(gpu_pin_environment(gpu))
        capabilities = worker_capabilities(facts, gpu)
        queues = queues_for_worker(
            capabilities=capabilities, variants=Variant.objects.all(), cpu_queues=cpu_queues
        )
        slot = f"gpu{gpu.index}" if gpu is not None else "cpu"
        name = f"{host.name}.{slot}.{os.getpid()}"
        recovered = recover_dead_workers_of_host(host_id=host.pk, alive=process_is_alive)
        if recovered:
            self.stdout.write(f"{recovered} job(s) of this host's dead workers end and are retried")
        record = register_worker(
            host=host,
            name=name,
            queues=queues,
            pid=os.getpid(),
            gpu_index=gpu.index if gpu is not None else None,
            gpu_uuid=gpu.uuid if gpu is not None else "",
        )
        worker = worker_class(execution)(
            queues,
            connection=django_rq.get_connection("default"),
            name=name,
            worker_process_id=record.pk,
        )
        self.stdout.write(f"worker {name} ({execution}) listening on {', '.join(queues)}")
        self.stdout.flush()
        connections.close_all()
        reason = "shut down"
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level=settings.LOG_LEVEL)
        except BaseException as exc:
            reason = f"crashed: {exc!r}"
            raise
        finally:
            stop_worker(worker_id=record.pk, reason=reason)

    def _supervise(self, host, facts, cpu_queues, *, burst: bool, execution: str) -> None:
        """One child worker per GPU; a child that dies is restarted; SIGTERM/SIGINT go to all
        children, which finish their running job first (RQ's warm shutdown)."""
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        argv = {
            gpu.index: [
                sys.executable,
                str(settings.BASE_DIR / "manage.py"),
                "distro_worker",
                "--name",
                host.name,
                "--gpu",
                str(gpu.index),
                *[arg for q in cpu_queues for arg in ("--cpu-queue", q)],
                *(["--burst"] if burst else []),
                "--execution",
                execution,
            ]
            for gpu in facts.gpus
        }
        stopping = False

        def stop(signum, _frame):
            nonlocal stopping
            stopping = True
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signum)

        children = {i: subprocess.Popen(a, env=env) for i, a in argv.items()}  # noqa: S603
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"supervising {len(children)} GPU workers: {sorted(children)}")
        while children:
            time.sleep(1)
            for index, child in list(children.items()):
                code = child.poll()
                if code is None:
                    continue
                if stopping or burst:
                    del children[index]
                    continue
                logger.error("worker of GPU %s exited with %s; restarting it", index, code)
                time.sleep(RESTART_DELAY_S)
                children[index] = subprocess.Popen(argv[index], env=env)  # noqa: S603


def process_is_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (any owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
