"""Admin building blocks shared by both apps: secret prefixes, counts, large-table defaults."""

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count
from django.db.models import IntegerField
from django.db.models import OuterRef
from django.db.models import QuerySet
from django.db.models import Subquery
from django.db.models.functions import Coalesce
from django.utils.functional import cached_property

SECRET_PREFIX_LENGTH = 8


def secret_prefix(value: str) -> str:
    """The first characters of a token or token hash: enough to tell two apart, never usable."""
    return f"{value[:SECRET_PREFIX_LENGTH]}…" if value else "—"


def related_count(queryset: QuerySet, outer_field: str) -> Coalesce:
    """Rows of `queryset` whose `outer_field` is the outer row, as a correlated subquery.

    Unlike Count() over a join it adds no GROUP BY: the paginator's COUNT(*) drops it, and it is
    evaluated only for the rows on the page.
    """
    counted = (
        queryset.filter(**{outer_field: OuterRef("pk")})
        .order_by()
        .values(outer_field)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class EstimatedCountPaginator(Paginator):
    """Counts exactly, except an unfiltered PostgreSQL table past `estimate_above` rows.

    COUNT(*) over millions of jobs is a full scan on every changelist view; the planner's row
    estimate (pg_class.reltuples, kept by autovacuum) is good enough to size the pager there.
    """

    estimate_above = 100_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        estimate = None
        if not queryset.query.where:
            estimate = self._planner_estimate(queryset)
        if estimate is not None and estimate > self.estimate_above:
            return estimate
        return super().count

    @staticmethod
    def _planner_estimate(queryset) -> int | None:
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        # -1 means "never analysed": fall back to an exact count.
        return row[0] if row and row[0] >= 0 else None


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows something else writes (an audit trail, counts kept by database triggers): shown to
    check them, never added, edited or deleted here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class LargeTableAdmin(admin.ModelAdmin):
    """Base for tables that grow to millions of rows (builds, jobs, cell results, runs).

    Newest first by primary key (an index scan, whatever the table size), no second full-table
    count, an estimated count when unfiltered, and a numeric search term looks up the id only.
    Bulk delete is off: it would cascade into job history and belongs in a service.
    """

    ordering = ("-pk",)
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    actions = None

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return super().get_search_results(request, queryset, search_term)
