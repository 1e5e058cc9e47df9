"""Admin for worker hosts and their enrollment tokens."""

from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from packages_app.admin.base import LargeTableAdmin
from packages_app.admin.base import related_count
from packages_app.admin.base import secret_prefix
from testing_app.models import EnrollmentToken
from testing_app.models import Host
from testing_app.models import WorkerProcess
from testing_app.services.hosts import change_host_state
from testing_app.services.hosts import create_enrollment_token
from testing_app.services.hosts import revoke_enrollment_token


@admin.register(EnrollmentToken)
class EnrollmentTokenAdmin(admin.ModelAdmin):
    """Tokens are created by a service that shows the secret once (as a message) and stores
    only its hash; they are revoked with an action, never edited."""

    list_display = (
        "name",
        "token_prefix",
        "pre_approved",
        "usable",
        "host_count",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_select_related = ("created_by",)
    list_filter = ("pre_approved", ("revoked_at", admin.EmptyFieldListFilter), "expires_at")
    search_fields = ("name",)
    fields = (
        "name",
        "token_prefix",
        "pre_approved",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    readonly_fields = ("token_prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke_selected"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("token_prefix", "created_by", "created_at", "last_used_at", "revoked_at")
        # Changing what a token grants after it was handed out would surprise its holder.
        return (*self.readonly_fields, "name", "pre_approved", "expires_at")

    def save_model(self, request, obj, form, change):
        if change:
            return
        token, plain = create_enrollment_token(
            name=obj.name,
            pre_approved=obj.pre_approved,
            expires_at=obj.expires_at,
            created_by=request.user,
        )
        obj.pk, obj.token_hash, obj.created_at = token.pk, token.token_hash, token.created_at
        messages.warning(
            request,
            f"Enrollment token for {token.name!r}: {plain} . Copy it now: only its hash is "
            "stored, it cannot be shown again. Pass it to `manage.py distro_worker` through "
            "DISTRO_ENROLL_TOKEN.",
        )

    @admin.action(description="Revoke selected tokens (enrolled hosts keep working)")
    def revoke_selected(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            revoke_enrollment_token(token=token)
            self.message_user(request, f"Revoked {token.name}.")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_hosts=related_count(Host.objects.all(), "enrollment_token"))
        )

    @admin.display(description="token")
    def token_prefix(self, obj: EnrollmentToken) -> str:
        return secret_prefix(obj.token_hash)

    @admin.display(description="usable", boolean=True)
    def usable(self, obj: EnrollmentToken) -> bool:
        return obj.is_usable

    @admin.display(description="hosts", ordering="_hosts")
    def host_count(self, obj: EnrollmentToken) -> int:
        return obj._hosts


class HeartbeatFilter(admin.SimpleListFilter):
    """Hosts heard from within HOST_OFFLINE_AFTER_S, or silent (shown as offline)."""

    title = "heartbeat"
    parameter_name = "heartbeat"

    def lookups(self, request, model_admin):
        return [("recent", "Recent"), ("silent", "Silent")]

    def queryset(self, request, queryset):
        cutoff = timezone.now() - timedelta(seconds=settings.HOST_OFFLINE_AFTER_S)
        if self.value() == "recent":
            return queryset.filter(last_heartbeat_at__gte=cutoff)
        if self.value() == "silent":
            return queryset.exclude(last_heartbeat_at__gte=cutoff)
        return queryset


# What the worker's probe reports; an operator never types these.
HOST_PROBED_FIELDS = (
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
    "queues",
)


class WorkerProcessInline(admin.TabularInline):
    """The host's worker processes (one per GPU), newest first; written by the workers."""

    model = WorkerProcess
    fields = (
        "name",
        "gpu_index",
        "queues",
        "current_job",
        "started_at",
        "last_heartbeat_at",
        "stopped_at",
        "stop_reason",
    )
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-id",)

    def get_queryset(self, request):
        # Live workers and the latest stopped ones; years of restarts stay out of the page.
        recent = timezone.now() - timedelta(days=2)
        return (
            super()
            .get_queryset(request)
            .filter(pk__in=WorkerProcess.objects.filter(started_at__gte=recent).values("pk")[:50])
        )


def _host_action(action: str, description: str):
    def run(modeladmin, request, queryset):
        for host in queryset:
            try:
                change_host_state(host=host, action=action, by=request.user)
            except ValidationError as exc:
                modeladmin.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                modeladmin.message_user(request, f"{host.name}: {action} done.")

    run.__name__ = f"{action}_selected"
    return admin.action(description=description)(run)


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    actions = [
        _host_action("approve", "Approve selected hosts (they start taking jobs)"),
        _host_action("drain", "Drain: finish running jobs, take no new one"),
        _host_action("quarantine", "Quarantine: take no new job (running ones finish)"),
        _host_action("resume", "Resume taking jobs"),
    ]
    inlines = [WorkerProcessInline]
    list_display = (
        "name",
        "platform",
        "state",
        "effective_state",
        "gpu_summary",
        "driver_version",
        "max_cuda",
        "os_name",
        "last_heartbeat_at",
        "approved_by",
    )
    list_select_related = ("platform", "approved_by")
    list_filter = ("state", HeartbeatFilter, "platform", "max_cuda")
    search_fields = ("name", "cpu_model", "driver_version", "os_version")
    readonly_fields = (
        # State changes go through the actions above (services), never a free edit.
        "state",
        *HOST_PROBED_FIELDS,
        "human_memory",
        "enrollment_token",
        "approved_by",
        "approved_at",
        "last_heartbeat_at",
        "enrolled_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "platform", "state")}),
        (
            "Probed",
            {
                "fields": (
                    ("os_name", "os_version", "glibc_version"),
                    ("cpu_model", "cpu_count", "human_memory"),
                    "gpus",
                    ("driver_version", "max_cuda", "rocm_version"),
                    "runners",
                    "queues",
                )
            },
        ),
        (
            "Enrollment",
            {
                "fields": (
                    "enrollment_token",
                    ("approved_by", "approved_at"),
                    "last_heartbeat_at",
                    ("enrolled_at", "updated_at"),
                )
            },
        ),
    )

    @admin.display(description="shown as")
    def effective_state(self, obj: Host) -> str:
        return Host.State(obj.effective_state).label

    @admin.display(description="GPUs")
    def gpu_summary(self, obj: Host) -> str:
        gpus = [g for g in obj.gpus or [] if isinstance(g, dict)]
        if not gpus:
            return "—"
        counts = Counter(str(g.get("name") or "GPU") for g in gpus)
        return ", ".join(f"{n} × {name}" for name, n in sorted(counts.items()))

    @admin.display(description="memory")
    def human_memory(self, obj: Host) -> str:
        return filesizeformat(obj.memory_bytes) if obj.memory_bytes else "—"


@admin.register(WorkerProcess)
class WorkerProcessAdmin(LargeTableAdmin):
    """Every worker process ever started (one row per start): written by the workers only."""

    list_display = (
        "name",
        "host",
        "gpu_index",
        "current_job_id",
        "started_at",
        "last_heartbeat_at",
        "stopped_at",
        "stop_reason",
    )
    list_select_related = ("host",)
    list_filter = (("stopped_at", admin.EmptyFieldListFilter), "host")
    search_fields = ("^name", "^host__name")
    readonly_fields = (
        "host",
        "name",
        "gpu_index",
        "gpu_uuid",
        "pid",
        "queues",
        "current_job",
        "started_at",
        "last_heartbeat_at",
        "stopped_at",
        "stop_reason",
    )
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="current job", ordering="current_job")
    def current_job_id(self, obj: WorkerProcess) -> int | None:
        return obj.current_job_id
