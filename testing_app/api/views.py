"""Read-only API views: packages, builds, matrix, runs, jobs, hosts; ETags on every read."""

from django.db.models import Exists
from django.db.models import OuterRef
from django.db.models import Prefetch
from django.db.models import Q
from django.db.models import Subquery
from django.utils.decorators import method_decorator
from drf_spectacular.utils import OpenApiParameter
from drf_spectacular.utils import extend_schema
from drf_spectacular.utils import extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from distro_site.page_cache import cache_anonymous_get
from packages_app.models import Build
from packages_app.models import Maintainer
from packages_app.models import Package
from testing_app.api import serializers
from testing_app.api.conditional import ConditionalGetMixin
from testing_app.api.pagination import MAX_PAGE_SIZE
from testing_app.api.pagination import JobCursorPagination
from testing_app.models import Host
from testing_app.models import Job
from testing_app.models import Run
from testing_app.selectors.matrix import SORT_CHOICES
from testing_app.selectors.matrix import STATUS_CHOICES
from testing_app.selectors.matrix import get_results_matrix
from testing_app.selectors.matrix import list_platforms
from testing_app.selectors.matrix import list_variants
from testing_app.selectors.matrix import parse_matrix_filters
from testing_app.selectors.runs import get_job
from testing_app.selectors.runs import get_run_progress
from testing_app.selectors.runs import list_jobs
from testing_app.selectors.runs import parse_job_filters
from testing_app.services.reproduce import get_reproduction


def _choice(params, name: str, allowed) -> str:
    """A query parameter that must be one of `allowed`: a 400 names it otherwise."""
    value = params.get(name, "")
    if value and value not in allowed:
        raise ValidationError({name: [f"Unknown value {value!r}; allowed: {sorted(allowed)}."]})
    return value


def _text(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, description=description)


class ReadOnlyViewSet(ConditionalGetMixin, viewsets.ReadOnlyModelViewSet):
    pass


@method_decorator(cache_anonymous_get, name="dispatch")
@extend_schema_view(
    list=extend_schema(
        parameters=[
            _text("q", "Name contains (case-insensitive)."),
            _text("status", "Package status: " + ", ".join(Package.Status.values)),
            _text("maintainer", "GitHub handle, e-mail (exact) or name (contains)."),
        ]
    )
)
class PackageViewSet(ReadOnlyViewSet):
    """Registered packages, by name."""

    serializer_class = serializers.PackageSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        build_license = (
            Build.objects.filter(package=OuterRef("pk"), version=OuterRef("latest_version"))
            .exclude(license="")
            .order_by("-build_number", "pk")
            .values("license")[:1]
        )
        packages = (
            Package.objects.prefetch_related(
                Prefetch("maintainers", queryset=Maintainer.objects.order_by("name"))
            )
            .annotate(build_license=Subquery(build_license))
            .order_by("name")
        )
        params = self.request.query_params
        if params.get("q"):
            packages = packages.filter(name__icontains=params["q"][:100])
        status = _choice(params, "status", Package.Status.values)
        if status:
            packages = packages.filter(status=status)
        if params.get("maintainer"):
            who = params["maintainer"][:100]
            matching = Maintainer.objects.filter(
                Q(github_handle__iexact=who.lstrip("@"))
                | Q(email__iexact=who)
                | Q(name__icontains=who)
            )
            links = Package.maintainers.through.objects.filter(
                package=OuterRef("pk"), maintainer__in=matching
            )
            packages = packages.filter(Exists(links))
        return packages


@extend_schema_view(
    list=extend_schema(
        parameters=[
            _text("package", "Package (build) name, exact."),
            _text("version", "Version, exact."),
            _text("subdir", "Conda subdir, e.g. linux-64."),
            _text("state", "Build state: " + ", ".join(Build.State.values)),
        ]
    )
)
class BuildViewSet(ReadOnlyViewSet):
    """Builds seen in the channels, newest first."""

    serializer_class = serializers.BuildSerializer

    def get_queryset(self):
        builds = Build.objects.select_related("channel").order_by("-id")
        params = self.request.query_params
        for param, lookup in (("package", "name"), ("version", "version"), ("subdir", "subdir")):
            if params.get(param):
                builds = builds.filter(**{lookup: params[param][:128]})
        state = _choice(params, "state", Build.State.values)
        return builds.filter(state=state) if state else builds


@extend_schema_view(
    list=extend_schema(
        parameters=[
            _text("state", "Run state: " + ", ".join(Run.State.values)),
            _text("trigger", "Trigger: " + ", ".join(Run.Trigger.values)),
        ]
    )
)
class RunViewSet(ReadOnlyViewSet):
    """Runs (batches of jobs), newest first; the detail carries progress by verdict."""

    serializer_class = serializers.RunSerializer

    def get_queryset(self):
        runs = Run.objects.select_related("triggered_by", "torch_release").order_by("-id")
        params = self.request.query_params
        state = _choice(params, "state", Run.State.values)
        trigger = _choice(params, "trigger", Run.Trigger.values)
        if state:
            runs = runs.filter(state=state)
        return runs.filter(trigger=trigger) if trigger else runs

    def retrieve(self, request, *args, **kwargs):
        run = self.get_object()
        serializer = serializers.RunDetailSerializer(
            run, context={**self.get_serializer_context(), "progress": get_run_progress(run)}
        )
        return Response(serializer.data)


@method_decorator(cache_anonymous_get, name="dispatch")
@extend_schema_view(
    list=extend_schema(
        parameters=[
            _text("run", "Run id."),
            _text("status", "Job status: " + ", ".join(Job.Status.values)),
            _text("verdict", "Verdict."),
            _text("kind", "Job kind: " + ", ".join(Job.Kind.values)),
            _text("variant", "Variant name, e.g. cuda12.4."),
            _text("platform", "Platform subdir."),
            _text("package", "Package name contains."),
        ]
    )
)
class JobViewSet(ReadOnlyViewSet):
    """Jobs, newest first, cursor-paginated (there are millions)."""

    pagination_class = JobCursorPagination

    def get_serializer_class(self):
        if self.action == "retrieve":
            return serializers.JobDetailSerializer
        return serializers.JobSerializer

    def get_queryset(self):
        if self.action == "retrieve":
            return Job.objects.select_related(
                "build", "torch_release", "variant", "platform", "host"
            )
        params = self.request.query_params
        filters, errors = parse_job_filters(params)
        if errors:
            raise ValidationError({name: [message] for name, message in errors.items()})
        run = params.get("run", "")
        if run:
            if not run.isdigit():
                raise ValidationError({"run": ["Run must be an integer id."]})
            filters["run"] = run
        return list_jobs(filters=filters)

    @extend_schema(responses=serializers.ReproductionSerializer)
    @action(detail=True, methods=["get"])
    def reproduce(self, request, pk=None, format=None):  # noqa: A002 - DRF format suffix
        """How to rerun this job's cell locally: channels, priority, pins, overrides, script."""
        if not str(pk).isdigit():
            raise ValidationError({"id": ["Job id must be an integer."]})
        return Response(get_reproduction(get_job(int(pk))).as_dict())


class HostViewSet(ReadOnlyViewSet):
    """Registered GPU/CPU hosts; `state` is what they are now (silent hosts are offline)."""

    serializer_class = serializers.HostSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"
    queryset = Host.objects.select_related("platform").order_by("name")


@method_decorator(cache_anonymous_get, name="dispatch")
class MatrixView(ConditionalGetMixin, APIView):
    """The compatibility matrix with the same filters as /matrix/, paginated by package."""

    @extend_schema(
        parameters=[
            _text("q", "Package name contains."),
            _text("maintainer", "GitHub handle, e-mail or name."),
            _text("status", "Row filter: " + ", ".join(STATUS_CHOICES)),
            _text("platform", "Only cells of this platform (subdir)."),
            _text("variant", "Only cells of this variant."),
            _text("sort", "Row order: " + ", ".join(SORT_CHOICES)),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description=f"At most {MAX_PAGE_SIZE}."),
        ],
        responses={
            200: {
                "type": "object",
                "properties": {
                    "count": {"type": "integer"},
                    "next": {"type": "string", "nullable": True},
                    "previous": {"type": "string", "nullable": True},
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "results": {"type": "array", "items": {"type": "object"}},
                },
            }
        },
    )
    def get(self, request):
        filters, errors = parse_matrix_filters(
            request.query_params, variants=list_variants(), platforms=list_platforms()
        )
        if errors:
            raise ValidationError({name: [message] for name, message in errors.items()})
        page_size = request.query_params.get("page_size", "50")
        if not page_size.isdigit() or not 1 <= int(page_size) <= MAX_PAGE_SIZE:
            raise ValidationError({"page_size": [f"An integer from 1 to {MAX_PAGE_SIZE}."]})
        matrix = get_results_matrix(
            filters=filters, page_number=request.query_params.get("page"), per_page=int(page_size)
        )
        url = request.build_absolute_uri()
        page = matrix.page
        return Response(
            {
                "count": page.paginator.count,
                "next": replace_query_param(url, "page", page.next_page_number())
                if page.has_next()
                else None,
                "previous": (
                    remove_query_param(url, "page")
                    if page.previous_page_number() == 1
                    else replace_query_param(url, "page", page.previous_page_number())
                )
                if page.has_previous()
                else None,
                "columns": [release.version for release in matrix.columns],
                "results": [
                    {
                        "package": row.package.name,
                        "latest_version": row.package.latest_version,
                        "status": row.package.status,
                        "maintainers": [m.github_handle or m.name for m in row.maintainers],
                        "cells": {
                            release.version: {"worst": cell.worst, "counts": dict(cell.counts)}
                            for release, cell in zip(matrix.columns, row.cells, strict=True)
                        },
                    }
                    for row in matrix.rows
                ],
            }
        )
