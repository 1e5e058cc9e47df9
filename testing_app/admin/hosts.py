"""Admin for worker hosts and their enrollment tokens."""

from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from packages_app.admin.base import related_count
from packages_app.admin.base import secret_prefix
from testing_app.models import EnrollmentToken
from testing_app.models import Host


@admin.register(EnrollmentToken)
class EnrollmentTokenAdmin(admin.ModelAdmin):
    """Display only: a token is created by a service that hands its secret out once."""

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
    readonly_fields = ("token_prefix", "created_by", "created_at", "last_used_at")

    def has_add_permission(self, request) -> bool:
        # Adding here would store a token nobody ever saw, with an empty (colliding) hash.
        return False

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


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
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
