"""Registered worker machines and the tokens that enroll them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .reference import Platform


class EnrollmentToken(models.Model):
    """A secret an operator passes to `distro_worker --enroll-token`; only its hash is stored."""

    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    # Hosts enrolled with a pre-approved token start `active` instead of `pending`.
    pre_approved = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class HostState(models.TextChoices):
    PENDING = "pending", "Pending approval"
    ACTIVE = "active", "Active"
    DRAINING = "draining", "Draining"
    QUARANTINED = "quarantined", "Quarantined"
    OFFLINE = "offline", "Offline"


class Host(models.Model):
    """A machine running `distro_worker`: what it is, what it can serve, whether it may."""

    State = HostState

    name = models.CharField(max_length=200, unique=True)
    platform = models.ForeignKey(Platform, on_delete=models.PROTECT, related_name="hosts")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    os_name = models.CharField(max_length=64, blank=True)
    os_version = models.CharField(max_length=128, blank=True)
    glibc_version = models.CharField(max_length=32, blank=True)
    cpu_model = models.CharField(max_length=200, blank=True)
    cpu_count = models.PositiveIntegerField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)
    # [{"index", "name", "memory_mib", "compute_capability", "uuid"}]
    gpus = models.JSONField(default=list, blank=True)
    driver_version = models.CharField(max_length=32, blank=True)
    # Highest CUDA version the driver supports (nvidia-smi's "CUDA Version").
    max_cuda = models.CharField(max_length=16, blank=True)
    rocm_version = models.CharField(max_length=32, blank=True)
    # {"conda-build": "25.1.2", "rattler": "0.28.0"}
    runners = models.JSONField(default=dict, blank=True)
    # What isolates package tests here ("bubblewrap 0.8.0 as nobody"), or "" with the reason in
    # test_isolation_note: such a host refuses test jobs unless its operator opted out.
    test_isolation = models.CharField(max_length=100, blank=True)
    test_isolation_note = models.CharField(max_length=300, blank=True)
    # Capability queues this host's workers listen on, computed from the probe.
    queues = models.JSONField(default=list, blank=True)
    enrollment_token = models.ForeignKey(
        EnrollmentToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="hosts"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    enrolled_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=HostState.values), name="host_state_valid"
            ),
        ]
        indexes = [models.Index(fields=["state", "last_heartbeat_at"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_silent(self) -> bool:
        """True when the host has not heartbeated within HOST_OFFLINE_AFTER_S."""
        if self.last_heartbeat_at is None:
            return True
        age = (timezone.now() - self.last_heartbeat_at).total_seconds()
        return age > settings.HOST_OFFLINE_AFTER_S

    @property
    def effective_state(self) -> str:
        """The state to show: a silent host is offline whatever it last reported."""
        return self.State.OFFLINE if self.is_silent else self.state


class WorkerProcess(models.Model):
    """One running `distro_worker` (one per GPU): its queues, heartbeat and current job.

    A row per process start: a worker killed with -9 keeps its row, whose heartbeat goes stale,
    which is how the reconciler tells that the job it was running is lost.
    """

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="workers")
    # The RQ worker name: unique among live workers, so it carries the pid.
    name = models.CharField(max_length=200, unique=True)
    gpu_index = models.SmallIntegerField(null=True, blank=True)
    gpu_uuid = models.CharField(max_length=64, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    queues = models.JSONField(default=list, blank=True)
    current_job = models.ForeignKey(
        "testing_app.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]  # newest first, on the primary key index
        indexes = [models.Index(fields=["stopped_at", "last_heartbeat_at"])]
        verbose_name_plural = "worker processes"  # Django's default adds an "s": "processs"

    def __str__(self) -> str:
        return self.name

    @property
    def is_alive(self) -> bool:
        """Not stopped and heard from within WORKER_LOST_AFTER_S."""
        if self.stopped_at is not None or self.last_heartbeat_at is None:
            return False
        age = (timezone.now() - self.last_heartbeat_at).total_seconds()
        return age <= settings.WORKER_LOST_AFTER_S
