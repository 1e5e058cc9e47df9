"""Admin for channels, the builds seen in them, and PyTorch releases."""

from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from packages_app.admin.actions import has_promote_permission
from packages_app.admin.actions import promote_builds
from packages_app.admin.base import LargeTableAdmin
from packages_app.admin.base import ReadOnlyAdmin
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import SubdirRevision
from packages_app.models import TorchRelease
from testing_app.models import Platform


class SubdirFilter(admin.SimpleListFilter):
    """Subdir choices from the Platform table, not a DISTINCT over every build."""

    title = "subdir"
    parameter_name = "subdir"

    def lookups(self, request, model_admin):
        subdirs = list(Platform.objects.values_list("subdir", flat=True))
        return [(s, s) for s in [*subdirs, "noarch"]]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(subdir=self.value())
        return queryset


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("__str__", "role", "url", "label", "subdirs", "last_synced_at", "sync_ok")
    list_filter = ("role", ("last_sync_error", admin.EmptyFieldListFilter))
    search_fields = ("name", "label", "url")
    readonly_fields = ("sync_state", "last_synced_at", "last_sync_error", "created_at")

    @admin.display(description="last sync ok", boolean=True)
    def sync_ok(self, obj: Channel) -> bool | None:
        if obj.last_synced_at is None and not obj.last_sync_error:
            return None
        return not obj.last_sync_error


# Fields copied from the channel's repodata record by the import service.
BUILD_RECORD_FIELDS = (
    "subdir",
    "filename",
    "name",
    "version",
    "build_string",
    "build_number",
    "noarch",
    "track_features",
    "depends",
    "constrains",
    "license",
    "license_family",
    "md5",
    "sha256",
    "size",
    "timestamp",
)
BUILD_DERIVED_FIELDS = ("depends_names", "record_digest", "first_seen_at", "updated_at")


@admin.register(Build)
class BuildAdmin(LargeTableAdmin):
    list_display = (
        "filename",
        "name",
        "version",
        "build_number",
        "subdir",
        "channel",
        "package",
        "state",
        "human_size",
        "timestamp",
    )
    list_select_related = ("channel", "package")
    list_filter = ("state", "channel", SubdirFilter, "timestamp")
    search_fields = ("^name", "^filename")
    autocomplete_fields = ("package",)
    # Release managers only (testing_app.add_promotion); it opens the confirmation step.
    actions = (promote_builds,)
    fieldsets = (
        (
            "Artifact",
            {
                "fields": (
                    "channel",
                    "package",
                    "subdir",
                    "filename",
                    ("name", "version", "build_string", "build_number"),
                    ("noarch", "track_features"),
                )
            },
        ),
        ("Dependencies", {"fields": ("depends", "constrains", "depends_names")}),
        ("License", {"fields": ("license", "license_family")}),
        ("Integrity", {"fields": ("md5", "sha256", "size", "timestamp", "record_digest")}),
        ("State", {"fields": ("state", "withdrawn_at", "first_seen_at", "updated_at")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # A seen artifact is immutable: its record is what the channel published.
        if obj is None:
            return BUILD_DERIVED_FIELDS
        return BUILD_RECORD_FIELDS + BUILD_DERIVED_FIELDS

    def has_promote_permission(self, request) -> bool:
        return has_promote_permission(request)

    @admin.display(description="size", ordering="size")
    def human_size(self, obj: Build) -> str:
        return filesizeformat(obj.size) if obj.size is not None else "—"


@admin.register(TorchRelease)
class TorchReleaseAdmin(admin.ModelAdmin):
    list_display = (
        "version",
        "kind",
        "released_on",
        "supported",
        "variant_names",
        "platform_names",
        "python_versions",
        "torchvision_version",
        "torchaudio_version",
    )
    list_filter = ("kind", "supported", "variants", "platforms")
    search_fields = ("version", "torchvision_version", "torchaudio_version")
    date_hierarchy = "released_on"
    filter_horizontal = ("variants", "platforms")
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("variants", "platforms")

    @admin.display(description="variants")
    def variant_names(self, obj: TorchRelease) -> str:
        return ", ".join(v.name for v in obj.variants.all())

    @admin.display(description="platforms")
    def platform_names(self, obj: TorchRelease) -> str:
        return ", ".join(p.subdir for p in obj.platforms.all())


@admin.register(SubdirRevision)
class SubdirRevisionAdmin(ReadOnlyAdmin):
    """Change counters kept by database triggers (packages_app/models/revisions.py): shown to
    check a sync's record index against, never edited (an edit could make a sync trust an index
    that no longer describes the catalog)."""

    list_display = ("channel", "subdir", "revision")
    list_select_related = ("channel",)
    list_filter = ("subdir",)
    ordering = ("channel__name", "subdir")
