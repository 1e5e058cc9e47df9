"""Admin for release impact, lifecycle events, maintainer claims and notice issues.

Lifecycle steps and claim decisions go through their services (the maintenance and review
pages), so their rows are read-only here.
"""

from django.contrib import admin

from testing_app.models import MaintainerClaim
from testing_app.models import PackageNoticeIssue
from testing_app.models import PackageStatusEvent
from testing_app.models import ReleaseImpact


@admin.register(ReleaseImpact)
class ReleaseImpactAdmin(admin.ModelAdmin):
    list_display = ("torch_release", "package", "category", "version", "specs", "computed_at")
    list_select_related = ("torch_release", "package")
    list_filter = ("category", "torch_release")
    search_fields = ("^package__name", "specs")
    ordering = ("-pk",)
    autocomplete_fields = ("package",)
    readonly_fields = ("computed_at",)


@admin.register(PackageStatusEvent)
class PackageStatusEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "package", "from_status", "to_status", "reason", "by")
    list_select_related = ("package", "by")
    list_filter = ("to_status", "created_at")
    search_fields = ("^package__name", "reason")
    ordering = ("-pk",)
    readonly_fields = (
        "package",
        "from_status",
        "to_status",
        "reason",
        "torch_release",
        "by",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False  # steps are taken by the maintenance service, which also notifies


@admin.register(MaintainerClaim)
class MaintainerClaimAdmin(admin.ModelAdmin):
    list_display = ("package", "name", "email", "state", "created_at", "reviewed_by", "emailed_at")
    list_select_related = ("package", "reviewed_by")
    list_filter = ("state", "created_at")
    search_fields = ("^package__name", "name", "email", "github_handle")
    ordering = ("-pk",)
    autocomplete_fields = ("package",)
    readonly_fields = (
        "state",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "emailed_at",
        "email_error",
        "client_fingerprint",
        "created_at",
    )


@admin.register(PackageNoticeIssue)
class PackageNoticeIssueAdmin(admin.ModelAdmin):
    list_display = ("package", "issue_url", "updated_at")
    list_select_related = ("package",)
    search_fields = ("^package__name", "issue_url")
    ordering = ("package__name",)
    autocomplete_fields = ("package",)
