"""Hosts: enrollment tokens, enrollment from a probe, admin state changes, worker heartbeats."""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from testing_app.adapters.host_probe import GpuFacts
from testing_app.adapters.host_probe import HostFacts
from testing_app.models import EnrollmentToken
from testing_app.models import Host
from testing_app.models import Platform
from testing_app.models import Variant
from testing_app.models import WorkerProcess
from testing_app.services.queues import Capabilities
from testing_app.services.queues import queues_for_worker

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32
State = Host.State
# Admin transitions: (allowed from, to). A state change never touches a running job: workers
# only consult the state before they take the next one.
TRANSITIONS = {
    "approve": ({State.PENDING}, State.ACTIVE),
    "drain": ({State.ACTIVE}, State.DRAINING),
    "quarantine": ({State.PENDING, State.ACTIVE, State.DRAINING}, State.QUARANTINED),
    "resume": ({State.DRAINING, State.QUARANTINED}, State.ACTIVE),
}


# A fixed prefix: a token never starts with "-" (which `distro_worker --enroll-token T` would
# read as an option) and secret scanners can recognise one pasted where it should not be.
ENROLLMENT_TOKEN_PREFIX = "cde_"
# What an enrolled host's start-up refreshes (enroll_host); its host_db_role may update these.
HOST_FACT_FIELDS = (
    "platform",
    "os_name",
    "os_version",
    "glibc_version",
    "cpu_model",
    "cpu_count",
    "memory_bytes",
    "gpus",
    "driver_version",
    "max_cuda",
    "rocm_version",
    "runners",
    "test_isolation",
    "test_isolation_note",
    "queues",
    "updated_at",
)


def hash_token(token: str) -> str:
    """What is stored instead of an enrollment token: its SHA-256 (the token is 256 random bits,
    so a plain hash is enough; no salt or slow hash is needed against guessing)."""
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def create_enrollment_token(
    *,
    name: str,
    pre_approved: bool = False,
    expires_at: datetime | None = None,
    created_by=None,
) -> tuple[EnrollmentToken, str]:
    """Create a token and return it with its plain text, which is never stored or shown again."""
    plain = ENROLLMENT_TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = EnrollmentToken(
        name=name,
        token_hash=hash_token(plain),
        pre_approved=pre_approved,
        expires_at=expires_at,
        created_by=created_by,
    )
    token.full_clean()
    token.save()
    return token, plain


@transaction.atomic
def revoke_enrollment_token(*, token: EnrollmentToken) -> EnrollmentToken:
    """Revoke a token: no new host can enroll with it. Hosts it enrolled keep working."""
    EnrollmentToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db()
    return token


def _usable_token(plain: str) -> EnrollmentToken:
    token = EnrollmentToken.objects.select_for_update().filter(token_hash=hash_token(plain)).first()
    if token is None:
        raise ValidationError("Unknown enrollment token.")
    if token.revoked_at is not None:
        raise ValidationError(f"Enrollment token {token.name!r} was revoked.")
    if not token.is_usable:
        raise ValidationError(f"Enrollment token {token.name!r} has expired.")
    return token


def worker_capabilities(facts: HostFacts, gpu: GpuFacts | None) -> Capabilities:
    """What the worker pinned to `gpu` (None: a CPU worker) can serve: a GPU worker serves a
    CUDA variant only if some release of it runs on that GPU's architecture."""
    return Capabilities(
        subdir=facts.subdir,
        max_cuda=facts.max_cuda if gpu is not None else "",
        rocm_version=facts.rocm_version if gpu is None else "",
        runners=host_runners(facts),
        compute_capabilities=(gpu.compute_capability,) if gpu is not None else (),
    )


def host_queues(facts: HostFacts, variants: list[Variant], cpu_queues: list[str]) -> list[str]:
    """The union of its workers' queues (one per GPU, or one CPU worker), in priority order."""
    workers = [worker_capabilities(facts, gpu) for gpu in facts.gpus] or [
        worker_capabilities(facts, None)
    ]
    names: list[str] = []
    for capabilities in workers:
        for name in queues_for_worker(
            capabilities=capabilities, variants=variants, cpu_queues=cpu_queues
        ):
            if name not in names:
                names.append(name)
    return names


def host_runners(facts: HostFacts) -> tuple[str, ...]:
    """The test runners a probed host has: conda-build when found, rattler with py-rattler."""
    found = []
    if facts.conda_build_version:
        found.append("conda-build")
    if facts.rattler_version:
        found.append("rattler")
    return tuple(found)


@transaction.atomic
def enroll_host(
    *, name: str, facts: HostFacts, token: str = "", cpu_queues: list[str] | None = None
) -> Host:
    """Register a host, or refresh what is known about it, from its probe.

    A new host needs a usable token and starts `pending` (or `active` when the token was
    created pre-approved). A known host may start without a token; its state is kept.
    """
    host = Host.objects.select_for_update().filter(name=name).first()
    if host is None and not token:
        raise ValidationError(f"Host {name!r} is not enrolled yet: an enrollment token is needed.")
    enrollment = _usable_token(token) if token else None
    platform, _ = Platform.objects.get_or_create(
        subdir=facts.subdir,
        defaults={"os_name": facts.subdir.split("-")[0], "arch": facts.subdir.split("-")[-1]},
    )
    if host is None:
        host = Host(name=name, enrollment_token=enrollment)
        if enrollment.pre_approved:
            host.state = State.ACTIVE
            host.approved_at = timezone.now()
    host.platform = platform
    _apply_facts(host, facts)
    host.queues = host_queues(facts, list(Variant.objects.all()), cpu_queues or [])
    host.full_clean()
    if host.pk is None:
        host.save()
    else:  # its facts only: an enrolled host never writes its own state or approval
        host.save(update_fields=HOST_FACT_FIELDS)
    if enrollment is not None:
        EnrollmentToken.objects.filter(pk=enrollment.pk).update(last_used_at=timezone.now())
    return host


def _apply_facts(host: Host, facts: HostFacts) -> None:
    host.os_name = facts.os_name[:64]
    host.os_version = facts.os_version[:128]
    host.glibc_version = facts.glibc_version
    host.cpu_model = facts.cpu_model[:200]
    host.cpu_count = facts.cpu_count
    host.memory_bytes = facts.memory_bytes
    host.gpus = [
        {
            "index": gpu.index,
            "name": gpu.name,
            "uuid": gpu.uuid,
            "memory_mib": gpu.memory_mib,
            "compute_capability": gpu.compute_capability,
            "mig_mode": gpu.mig_mode,
            "mig_devices": [
                {"uuid": mig.uuid, "name": mig.name, "memory_mib": mig.memory_mib}
                for mig in gpu.mig_devices
            ],
        }
        for gpu in facts.gpus
    ]
    host.driver_version = facts.driver_version
    host.max_cuda = facts.max_cuda
    host.rocm_version = facts.rocm_version
    runners = dict(host.runners or {})
    for runner, version in (
        ("conda-build", facts.conda_build_version),
        ("rattler", facts.rattler_version),
    ):
        if version:
            runners[runner] = version
        else:
            runners.pop(runner, None)
    host.runners = runners
    host.test_isolation = facts.test_isolation[:100]
    host.test_isolation_note = facts.test_isolation_note[:300]


@transaction.atomic
def change_host_state(*, host: Host, action: str, by=None) -> Host:
    """approve / drain / quarantine / resume, as one conditional UPDATE.

    Resume returns a host that was never approved to `pending`, not `active`.
    """
    if action not in TRANSITIONS:
        raise ValidationError(f"Unknown host action {action!r}.")
    allowed, target = TRANSITIONS[action]
    current = Host.objects.select_for_update().get(pk=host.pk)
    if current.state not in allowed:
        raise ValidationError(
            f"Cannot {action} host {current.name}: it is {current.get_state_display().lower()}."
        )
    changes: dict = {"state": target, "updated_at": timezone.now()}
    if action == "approve":
        changes.update(approved_at=timezone.now(), approved_by=by)
    if action == "resume" and current.approved_at is None:
        changes["state"] = State.PENDING
    Host.objects.filter(pk=host.pk, state=current.state).update(**changes)
    current.refresh_from_db()
    logger.info("host %s: %s -> %s", current.name, action, current.state)
    return current


def approve_host(*, host: Host, by=None) -> Host:
    return change_host_state(host=host, action="approve", by=by)


def drain_host(*, host: Host, by=None) -> Host:
    """Finish the running jobs, take no new one."""
    return change_host_state(host=host, action="drain", by=by)


def quarantine_host(*, host: Host, by=None) -> Host:
    """Take no new job (running ones finish): for a host that produces bad results."""
    return change_host_state(host=host, action="quarantine", by=by)


def resume_host(*, host: Host, by=None) -> Host:
    return change_host_state(host=host, action="resume", by=by)


@transaction.atomic
def register_worker(
    *,
    host: Host,
    name: str,
    queues: list[str],
    pid: int,
    gpu_index: int | None = None,
    gpu_uuid: str = "",
) -> WorkerProcess:
    """Record a worker process that is starting, with a first heartbeat."""
    now = timezone.now()
    worker = WorkerProcess(
        host=host,
        name=name,
        queues=queues,
        pid=pid,
        gpu_index=gpu_index,
        gpu_uuid=gpu_uuid,
        started_at=now,
        last_heartbeat_at=now,
    )
    worker.full_clean()
    worker.save()
    Host.objects.filter(pk=host.pk).update(last_heartbeat_at=now)
    return worker


@dataclass(frozen=True)
class HeartbeatReply:
    host_state: str

    @property
    def may_take_jobs(self) -> bool:
        return self.host_state == State.ACTIVE


def record_worker_heartbeat(*, worker_id: int, using: str = "default") -> HeartbeatReply:
    """The worker is alive: stamp it and its host, and tell it whether it may take jobs.

    `using` lets a worker heartbeat on a connection of its own while its work-horse uses the
    default one. A worker the reconciler gave up on (a long pause) comes back to life here; the
    job it was running has been retried by then, and its late result is ignored.
    """
    now = timezone.now()
    with transaction.atomic(using=using):
        workers = WorkerProcess.objects.using(using).filter(pk=worker_id)
        workers.update(last_heartbeat_at=now, stopped_at=None, stop_reason="")
        host_id, state = workers.values_list("host_id", "host__state").get()
        Host.objects.using(using).filter(pk=host_id).update(last_heartbeat_at=now)
    return HeartbeatReply(host_state=state)


@transaction.atomic
def stop_worker(*, worker_id: int, reason: str) -> None:
    """A worker process is exiting (or was found dead): it runs nothing any more."""
    WorkerProcess.objects.filter(pk=worker_id, stopped_at__isnull=True).update(
        stopped_at=timezone.now(), stop_reason=reason[:200]
    )
