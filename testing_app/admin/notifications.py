"""Admin for notices to maintainers (queued, digested, sent)."""

from django.contrib import admin

from testing_app.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "maintainer",
        "kind",
        "state",
        "subject",
        "package",
        "created_at",
        "sent_at",
    )
    list_select_related = ("maintainer", "package")
    list_filter = ("state", "kind", "created_at", "sent_at")
    search_fields = ("subject", "=root_cause_key", "maintainer__email", "maintainer__name")
    # A notice per maintainer per root cause adds up; the pk index keeps the list cheap.
    ordering = ("-pk",)
    show_full_result_count = False
    autocomplete_fields = ("maintainer", "package")
    raw_id_fields = ("build",)
    readonly_fields = ("state", "error_message", "created_at", "sent_at")
    fieldsets = (
        (None, {"fields": ("maintainer", "kind", "root_cause_key", ("package", "build"))}),
        ("Message", {"fields": ("subject", "body", "link")}),
        ("Delivery", {"fields": ("state", "error_message", "created_at", "sent_at")}),
    )
