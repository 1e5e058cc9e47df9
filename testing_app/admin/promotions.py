"""Admin for waivers and promotions (one build or a coordinated set)."""

from django.contrib import admin

from packages_app.admin.base import related_count
from testing_app.models import InstallabilityCheck
from testing_app.models import Promotion
from testing_app.models import PromotionItem
from testing_app.models import SetPartnerSolve
from testing_app.models import Waiver


@admin.register(Waiver)
class WaiverAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "build",
        "target",
        "short_reason",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
    )
    list_select_related = ("build", "torch_release", "variant", "platform", "created_by")
    list_filter = (
        ("revoked_at", admin.EmptyFieldListFilter),
        ("policy", admin.EmptyFieldListFilter),
        "torch_release",
        "variant",
        "platform",
        "expires_at",
    )
    search_fields = ("^build__name", "policy", "reason")
    date_hierarchy = "created_at"
    raw_id_fields = ("build",)
    autocomplete_fields = ("created_by", "revoked_by")
    readonly_fields = ("created_at",)
    fieldsets = (
        (None, {"fields": ("build", "reason")}),
        (
            "What is waived: a whole cell, or one gate policy",
            {"fields": (("torch_release", "variant", "platform"), "policy")},
        ),
        (
            "Validity",
            {"fields": (("created_by", "created_at"), "expires_at", ("revoked_by", "revoked_at"))},
        ),
    )

    def has_delete_permission(self, request, obj=None) -> bool:
        # The waiver table is the audit: a waiver ends by being revoked (who, when), never
        # by disappearing.
        return False

    @admin.display(description="waives")
    def target(self, obj: Waiver) -> str:
        if obj.policy:
            return f"policy {obj.policy}"
        return f"{obj.torch_release} × {obj.variant} × {obj.platform}"

    @admin.display(description="reason")
    def short_reason(self, obj: Waiver) -> str:
        return obj.reason if len(obj.reason) <= 80 else f"{obj.reason[:79]}…"


class PromotionItemInline(admin.TabularInline):
    model = PromotionItem
    extra = 0
    raw_id_fields = ("build",)
    fields = ("build", "state", "attempts", "copied_at", "error_message")
    # Written by the copy job, item by item, so a crash resumes where it was.
    readonly_fields = ("state", "attempts", "copied_at", "error_message")


# Written by the promotion job as it copies; shown, never edited.
PROMOTION_PROGRESS_FIELDS = ("state", "error_message", "created_at", "started_at", "finished_at")


@admin.register(Promotion)
class PromotionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "backend",
        "state",
        "source_channel",
        "target_channel",
        "item_count",
        "requested_by",
        "created_at",
        "finished_at",
    )
    list_select_related = ("source_channel", "target_channel", "requested_by")
    list_filter = ("state", "backend", "target_channel")
    search_fields = ("name", "=idempotency_key", "^items__build__name")
    date_hierarchy = "created_at"
    autocomplete_fields = ("requested_by",)
    inlines = (PromotionItemInline,)
    fieldsets = (
        (None, {"fields": ("name", "backend", ("source_channel", "target_channel"))}),
        ("Request", {"fields": ("idempotency_key", "requested_by")}),
        ("Progress", {"fields": (*PROMOTION_PROGRESS_FIELDS,)}),
    )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return PROMOTION_PROGRESS_FIELDS
        # The key identifies the request; changing it would let a double click promote twice.
        return (*PROMOTION_PROGRESS_FIELDS, "idempotency_key")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_items=related_count(PromotionItem.objects.all(), "promotion"))
        )

    @admin.display(description="builds", ordering="_items")
    def item_count(self, obj: Promotion) -> int:
        return obj._items


@admin.register(PromotionItem)
class PromotionItemAdmin(admin.ModelAdmin):
    list_display = ("id", "promotion", "build", "state", "attempts", "copied_at")
    list_select_related = ("promotion", "build")
    list_filter = ("state", "copied_at")
    search_fields = ("^build__name", "^build__filename")
    raw_id_fields = ("promotion", "build")
    readonly_fields = ("state", "attempts", "copied_at", "error_message")
    show_full_result_count = False


@admin.register(InstallabilityCheck)
class InstallabilityCheckAdmin(admin.ModelAdmin):
    """Solver runs against the target channel: written by the checks, read here."""

    list_display = (
        "id",
        "kind",
        "subject_key",
        "subdir",
        "label",
        "state",
        "ok",
        "target_channel",
        "finished_at",
    )
    list_select_related = ("target_channel",)
    list_filter = ("kind", "state", "ok")
    search_fields = ("=subject_key", "label")
    date_hierarchy = "created_at"
    raw_id_fields = ("build", "promotion", "torch_release", "requested_by")
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(SetPartnerSolve)
class SetPartnerSolveAdmin(admin.ModelAdmin):
    """Which other staged builds a staged build needs: written by the solve jobs, read here."""

    list_display = (
        "id",
        "build",
        "subdir",
        "state",
        "alone_ok",
        "with_staged_ok",
        "partner_ids",
        "finished_at",
    )
    list_select_related = ("build",)
    list_filter = ("state", "alone_ok")
    search_fields = ("^build__name", "^build__filename")
    date_hierarchy = "created_at"
    raw_id_fields = ("build",)
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
