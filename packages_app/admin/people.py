"""Admin for maintainers, packages, their API tokens and proposals."""

from django.contrib import admin
from django.utils.html import format_html
from django.utils.html import format_html_join
from django.utils.timesince import timesince

from packages_app.admin.base import ReadOnlyAdmin
from packages_app.admin.base import related_count
from packages_app.admin.base import secret_prefix
from packages_app.models import OPEN_PROPOSAL_STATES
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import PackageToken
from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.models import TrustedPublisher
from packages_app.models import UsedPublishingToken


@admin.register(Maintainer)
class MaintainerAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "email",
        "github_handle",
        "user",
        "notify_mode",
        "package_count",
        "created_at",
    )
    list_select_related = ("user",)
    list_filter = ("notify_mode", ("user", admin.EmptyFieldListFilter))
    search_fields = ("name", "email", "github_handle", "user__username")
    autocomplete_fields = ("user",)
    readonly_fields = ("unsubscribe_token_prefix", "created_at")
    fields = (
        "name",
        "email",
        "github_handle",
        "github_id",
        "user",
        "notify_mode",
        "muted_kinds",
        "unsubscribe_token_prefix",
        "created_at",
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _packages=related_count(Package.maintainers.through.objects.all(), "maintainer")
            )
        )

    @admin.display(description="packages", ordering="_packages")
    def package_count(self, obj: Maintainer) -> int:
        return obj._packages

    @admin.display(description="unsubscribe token")
    def unsubscribe_token_prefix(self, obj: Maintainer) -> str:
        # An unsaved row has no link yet (the token is derived from its id).
        return secret_prefix(obj.unsubscribe_token) if obj.pk else "—"


class PackageTokenInline(admin.TabularInline):
    """Tokens are issued by a service that shows the secret once; here they are only listed."""

    model = PackageToken
    extra = 0
    can_delete = False
    fields = ("name", "token_prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="token")
    def token_prefix(self, obj: PackageToken) -> str:
        return secret_prefix(obj.token_hash)


@admin.register(Package)
class PackageAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "status",
        "latest_version",
        "abi_coupled",
        "license",
        "maintainer_names",
        "status_changed_at",
        "updated_at",
    )
    list_filter = ("status", "abi_coupled", "updated_at")
    search_fields = ("name", "summary", "maintainers__name", "maintainers__email")
    autocomplete_fields = ("maintainers",)
    readonly_fields = ("latest_version", "created_at", "updated_at")
    inlines = (PackageTokenInline,)
    fieldsets = (
        (None, {"fields": ("name", "summary", "status", "status_changed_at", "maintainers")}),
        ("Links", {"fields": ("home_url", "repo_url", "recipe_url")}),
        ("Build facts", {"fields": ("license", "abi_coupled", "latest_version")}),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("maintainers")

    @admin.display(description="maintainers")
    def maintainer_names(self, obj: Package) -> str:
        return ", ".join(m.name for m in obj.maintainers.all()) or "—"


@admin.register(PackageToken)
class PackageTokenAdmin(admin.ModelAdmin):
    """Display only: a token is created by a service that hands its secret out once."""

    list_display = (
        "name",
        "package",
        "token_prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_select_related = ("package", "created_by")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "last_used_at")
    search_fields = ("name", "package__name")
    fields = (
        "package",
        "name",
        "token_prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    # Only the label and revocation are editable: a token never moves to another package.
    readonly_fields = ("package", "token_prefix", "created_by", "created_at", "last_used_at")

    def has_add_permission(self, request) -> bool:
        # Adding here would store a token nobody ever saw, with an empty (colliding) hash.
        return False

    @admin.display(description="token")
    def token_prefix(self, obj: PackageToken) -> str:
        return secret_prefix(obj.token_hash)


class ProposalNoteInline(admin.TabularInline):
    """The thread is an audit trail: shown, never edited here (services write it)."""

    model = ProposalNote
    extra = 0
    can_delete = False
    fields = ("created_at", "author_name", "kind", "decision", "body", "emailed_at", "email_error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Proposal)
class ProposalAdmin(admin.ModelAdmin):
    list_display = (
        "package_name",
        "state",
        "precheck_outcome",
        "created_at",
        "waiting_for",
        "reviewed_by",
        "reviewed_at",
        "package",
    )
    list_select_related = ("reviewed_by", "package")
    list_filter = (
        "state",
        "precheck_outcome",
        ("reviewed_by", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("package_name", "summary", "repo_url", "recipe_url", "contact_email")
    date_hierarchy = "created_at"
    inlines = (ProposalNoteInline,)
    actions = ("rerun_prechecks",)
    readonly_fields = (
        "precheck_outcome",
        "precheck_table",
        "precheck_error",
        "prechecked_at",
        # Decisions go through the review page (services.reviews), which keeps the audit thread.
        "state",
        "review_note",
        "package",
        "reviewed_by",
        "reviewed_at",
        "status_token_prefix",
        "client_fingerprint",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (
            "Proposed package",
            {
                "fields": (
                    "package_name",
                    "summary",
                    ("home_url", "repo_url"),
                    "recipe_url",
                    "license",
                    "rationale",
                    "maintainers_data",
                    "contact_email",
                )
            },
        ),
        (
            "Proposer confirms",
            {
                "fields": (
                    "confirms_pytorch_key_dependency",
                    "confirms_dependencies_available",
                    "confirms_recipe_exists",
                    "commits_to_maintain",
                )
            },
        ),
        (
            "Pre-checks",
            {"fields": ("precheck_outcome", "precheck_table", "precheck_error", "prechecked_at")},
        ),
        ("Review", {"fields": ("state", "reviewed_by", "reviewed_at", "review_note", "package")}),
        (
            "Audit",
            {"fields": ("status_token_prefix", "client_fingerprint", "created_at", "updated_at")},
        ),
    )

    @admin.display(description="waiting")
    def waiting_for(self, obj: Proposal) -> str:
        if obj.state in OPEN_PROPOSAL_STATES:
            return timesince(obj.created_at)
        return "—"

    @admin.display(description="pre-check results")
    def precheck_table(self, obj: Proposal) -> str:
        rows = [r for r in obj.precheck_results or [] if isinstance(r, dict)]
        if not rows:
            return "—"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r.get("check", ""), r.get("outcome", ""), r.get("detail", "")) for r in rows),
        )
        return format_html("<table><tbody>{}</tbody></table>", body)

    @admin.display(description="status token hash")
    def status_token_prefix(self, obj: Proposal) -> str:
        return secret_prefix(obj.status_token_hash)

    @admin.action(description="Re-run the pre-checks of the selected open proposals")
    def rerun_prechecks(self, request, queryset):
        from packages_app.services.reviews import rerun_proposal_prechecks

        rerun = 0
        for proposal in queryset.filter(state__in=OPEN_PROPOSAL_STATES):
            rerun_proposal_prechecks(proposal=proposal, requested_by=request.user)
            rerun += 1
        skipped = queryset.count() - rerun
        message = f"Pre-checks queued again for {rerun} proposal(s)."
        if skipped:
            message += f" {skipped} closed proposal(s) skipped."
        self.message_user(request, message)


@admin.register(ProposalNote)
class ProposalNoteAdmin(ReadOnlyAdmin):
    """The audit trail of every proposal: read-only here (the review pages write it)."""

    list_display = (
        "proposal",
        "kind",
        "decision",
        "author_name",
        "created_at",
        "emailed_at",
        "email_failed",
    )
    list_select_related = ("proposal",)
    list_filter = ("kind", "decision", ("email_error", admin.EmptyFieldListFilter))
    search_fields = ("proposal__package_name", "author_name", "body")
    date_hierarchy = "created_at"
    readonly_fields = (
        "proposal",
        "author",
        "author_name",
        "kind",
        "decision",
        "body",
        "created_at",
        "emailed_at",
        "email_error",
    )
    fields = readonly_fields

    @admin.display(description="email failed", boolean=True)
    def email_failed(self, obj: ProposalNote) -> bool:
        return bool(obj.email_error)


@admin.register(TrustedPublisher)
class TrustedPublisherAdmin(admin.ModelAdmin):
    """GitHub workflows trusted to call the "test this build" API for a package (issue 21)."""

    list_display = (
        "package",
        "repository",
        "workflow",
        "environment",
        "repository_id",
        "created_by",
        "last_used_at",
    )
    list_select_related = ("package", "created_by")
    list_filter = (("environment", admin.EmptyFieldListFilter), "last_used_at")
    search_fields = ("repository", "workflow", "package__name")
    autocomplete_fields = ("package",)
    fields = (
        "package",
        "repository",
        "workflow",
        "environment",
        "repository_id",
        "created_by",
        "created_at",
        "last_used_at",
    )
    # The repository id is pinned by the first accepted token; clearing it re-pins on next use.
    readonly_fields = ("created_by", "created_at", "last_used_at")


@admin.register(UsedPublishingToken)
class UsedPublishingTokenAdmin(admin.ModelAdmin):
    """Display only: the ids of accepted OIDC tokens, kept until they expire (replays refused)."""

    list_display = ("jti", "used_at", "expires_at")
    list_filter = ("expires_at",)
    search_fields = ("jti",)
    fields = list_display
    readonly_fields = list_display

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
