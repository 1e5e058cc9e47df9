"""Everything the promotion gate reads, for many builds at once, in a fixed number of queries.

The gate (selectors/gate.py) is a pure function of these inputs, so the promotion queue can
judge every candidate with the same dozen queries that one excuses page needs.
"""

from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import NamedTuple

from django.db.models import Count
from django.db.models import F
from django.db.models import Func
from django.db.models import IntegerField
from django.db.models import Q
from django.utils import timezone

from distro_site.json_lists import json_list_contains
from distro_site.sql_arrays import in_array
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import InstallabilityCheck
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import PromotionItem
from testing_app.models import Variant
from testing_app.models import Waiver
from testing_app.models.promotions import OPEN_PROMOTION_STATES

# Up to this many candidate names, dependents are found with one containment test per name;
# beyond it (the queue), reading the latest builds of live packages once is faster.
FEW_NAMES = 20
# A dependent's live builds of these package states are expected to be re-tested.
LIVE_PACKAGE_STATES = (Package.Status.ACTIVE, Package.Status.AT_RISK)


class CellRow(NamedTuple):
    torch_release_id: int
    variant_id: int
    platform_id: int
    python: str
    verdict: str
    previous_verdict: str
    latest_job_id: int | None


class JobRow(NamedTuple):
    pk: int
    build_id: int
    build_name: str
    torch_release_id: int
    variant_id: int
    platform_id: int
    python: str
    status: str
    verdict: str
    pinned_build_id: int | None

    @property
    def cell(self) -> tuple:
        return (
            self.build_id,
            self.torch_release_id,
            self.variant_id,
            self.platform_id,
            self.python,
        )


class CheckRow(NamedTuple):
    """What the gate reads of one installability check: the queue reads thousands, so rows, not
    model instances, and the size of the solved environment, not the environment itself."""

    pk: int
    subject_key: str
    subdir: str
    label: str
    state: str
    ok: bool | None
    baseline_ok: bool | None
    explanation: str
    error_message: str
    finished_at: datetime | None
    package_count: int

    def get_state_display(self) -> str:
        return InstallabilityCheck.State(self.state).label


CHECK_FIELDS = (
    "pk",
    "subject_key",
    "subdir",
    "label",
    "state",
    "ok",
    "baseline_ok",
    "explanation",
    "error_message",
    "finished_at",
)


@dataclass(frozen=True)
class DependentBuild:
    """A live build of a registered package at its latest version: what re-tests cover."""

    name: str
    version: str
    build_string: str
    subdir: str
    depends: tuple[str, ...]


@dataclass
class ReleaseAxes:
    """Supported PyTorch releases and what each ships: the axes of the required cells."""

    releases: list[TorchRelease]
    release_variants: dict[int, list[Variant]]
    release_platforms: dict[int, list[Platform]]
    variants: dict[int, Variant]
    platforms: dict[int, Platform]
    platform_by_subdir: dict[str, Platform]


def load_release_axes() -> ReleaseAxes:
    """Four queries: supported releases with their variants and platforms, and both tables."""
    releases = list(
        TorchRelease.objects.filter(supported=True).prefetch_related("variants", "platforms")
    )
    variants = {v.pk: v for v in Variant.objects.all()}
    platforms = {p.pk: p for p in Platform.objects.all()}
    return ReleaseAxes(
        releases=releases,
        release_variants={r.pk: list(r.variants.all()) for r in releases},
        release_platforms={r.pk: list(r.platforms.all()) for r in releases},
        variants=variants,
        platforms=platforms,
        platform_by_subdir={p.subdir: p for p in platforms.values()},
    )


@dataclass
class GateInputs(ReleaseAxes):
    now: datetime | None = None
    maintainer_counts: dict[int, int] = field(default_factory=dict)
    cells: dict[int, list[CellRow]] = field(default_factory=dict)
    waivers: dict[int, list[Waiver]] = field(default_factory=dict)
    pinned_jobs: dict[int, list[JobRow]] = field(default_factory=dict)
    # Pinned job pk -> the latest earlier finished job of the same cell without any pin.
    baselines: dict[int, JobRow] = field(default_factory=dict)
    dependents: dict[str, list[DependentBuild]] = field(default_factory=dict)
    checks: dict[str, list[CheckRow]] = field(default_factory=dict)
    open_items: dict[int, tuple[int, str]] = field(default_factory=dict)
    in_target: set[tuple[str, str]] = field(default_factory=set)
    target_channel: Channel | None = None
    # What the policies work out once and share between builds with the same inputs (the
    # admitted releases of a set of constraints): lives as long as these inputs.
    memo: dict = field(default_factory=dict)


def candidate_builds(ids) -> list[Build]:
    """Builds with what the gate reads of them (package, channel) in one query."""
    return list(Build.objects.filter(pk__in=ids).select_related("package", "channel"))


def load_gate_inputs(
    builds: list[Build],
    *,
    subjects: tuple[str, ...] = (),
    ignore_promotion_id: int | None = None,
    now: datetime | None = None,
) -> GateInputs:
    """Read the gate's inputs for `builds` (and the installability checks of `subjects`)."""
    ids = [b.pk for b in builds]
    package_ids = {b.package_id for b in builds if b.package_id}
    axes = load_release_axes()
    inputs = GateInputs(
        **vars(axes),
        now=now or timezone.now(),
        maintainer_counts=dict(
            Package.maintainers.through.objects.filter(package_id__in=in_array(package_ids))
            .values("package_id")
            .annotate(n=Count("maintainer_id"))
            .values_list("package_id", "n")
        ),
    )
    _load_cells(inputs, ids)
    _load_waivers(inputs, ids)
    _load_reverse_dependency_results(inputs, ids)
    _load_dependents(inputs, {b.name for b in builds})
    subject_keys = {*(f"build:{pk}" for pk in ids), *subjects}
    _load_checks(inputs, subject_keys)
    _load_promotion_state(inputs, builds, ignore_promotion_id=ignore_promotion_id)
    return inputs


def _load_cells(inputs: GateInputs, ids: list[int]) -> None:
    rows = CellResult.objects.filter(build_id__in=in_array(ids)).values_list(
        "build_id",
        "torch_release_id",
        "variant_id",
        "platform_id",
        "python",
        "verdict",
        "previous_verdict",
        "latest_job_id",
    )
    cells = inputs.cells
    for values in rows:
        # Rows are named tuples: the queue builds tens of thousands of them per request.
        row = CellRow._make(values[1:])
        if values[0] in cells:
            cells[values[0]].append(row)
        else:
            cells[values[0]] = [row]


def _load_checks(inputs: GateInputs, subject_keys: set[str]) -> None:
    """Each subject's checks, newest first."""
    rows = (
        InstallabilityCheck.objects.filter(subject_key__in=in_array(subject_keys, "text"))
        .annotate(package_count=JSONArrayLength("packages"))
        .order_by("-id")
        .values_list(*CHECK_FIELDS, "package_count")
    )
    for values in rows:
        check = CheckRow(*values)
        inputs.checks.setdefault(check.subject_key, []).append(check)


class JSONArrayLength(Func):
    """The length of a JSON list (0 for anything else), counted in the database."""

    template = (
        "(CASE WHEN jsonb_typeof(%(expressions)s) = 'array' "
        "THEN jsonb_array_length(%(expressions)s) ELSE 0 END)"
    )
    output_field = IntegerField()

    def as_sqlite(self, compiler, connection, **extra_context):
        # The local demo's database: SQLite's JSON1 functions say the same.
        template = (
            "(CASE WHEN json_type(%(expressions)s) = 'array' "
            "THEN json_array_length(%(expressions)s) ELSE 0 END)"
        )
        return self.as_sql(compiler, connection, template=template, **extra_context)


def _load_waivers(inputs: GateInputs, ids: list[int]) -> None:
    valid = (
        Waiver.objects.filter(build_id__in=in_array(ids), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=inputs.now))
        .select_related("created_by")
        .order_by("-id")
    )
    for waiver in valid:
        inputs.waivers.setdefault(waiver.build_id, []).append(waiver)


JOB_FIELDS = (
    "pk",
    "build_id",
    "build__name",
    "torch_release_id",
    "variant_id",
    "platform_id",
    "python",
    "status",
    "verdict",
    "pinned_build_id",
)


def _load_reverse_dependency_results(inputs: GateInputs, ids: list[int]) -> None:
    """The latest re-test per dependent cell pinned to each build, and each one's baseline: the
    latest earlier finished job of the same cell with no pin at all (the dependent tested
    against the channels as they were, not against some other candidate)."""
    latest: dict[tuple, JobRow] = {}
    for values in (
        Job.objects.filter(pinned_build_id__in=in_array(ids))
        .exclude(status=Job.Status.CANCELLED)
        .order_by("pk")
        .values_list(*JOB_FIELDS)
    ):
        row = JobRow(*values)
        latest[(row.pinned_build_id, row.cell)] = row  # ascending pk: the last one wins
    for row in latest.values():
        inputs.pinned_jobs.setdefault(row.pinned_build_id, []).append(row)
    if not latest:
        return
    wanted = defaultdict(list)
    for row in latest.values():
        wanted[row.cell].append(row)
    history = (
        Job.objects.filter(
            build_id__in={row.build_id for row in latest.values()},
            torch_release_id__in={row.torch_release_id for row in latest.values()},
            status=Job.Status.FINISHED,
            pinned_build__isnull=True,
            pk__lt=max(row.pk for row in latest.values()),
        )
        .order_by("pk")
        .values_list(*JOB_FIELDS)
    )
    for values in history:
        earlier = JobRow(*values)
        for pinned in wanted.get(earlier.cell, ()):
            if earlier.pk < pinned.pk:
                inputs.baselines[pinned.pk] = earlier  # ascending pk: the latest earlier wins


def _load_dependents(inputs: GateInputs, names: set[str]) -> None:
    """Live builds, at their package's latest version, that name one of `names` in depends."""
    if not names:
        return
    rows = (
        Build.objects.filter(package__status__in=LIVE_PACKAGE_STATES)
        .filter(version=F("package__latest_version"))
        .exclude(state=Build.State.WITHDRAWN)
        .values_list("name", "version", "build_string", "subdir", "depends", "depends_names")
    )
    if len(names) <= FEW_NAMES:
        # An excuses page: an indexed containment test per name beats reading every build.
        condition = Q()
        for name in names:
            condition |= json_list_contains("depends_names", name)
        rows = rows.filter(condition)
    for name, version, build_string, subdir, depends, depends_names in rows:
        dependent = DependentBuild(name, version, build_string, subdir, tuple(depends or ()))
        for dependency in set(depends_names or ()) & names:
            if dependency != name:
                inputs.dependents.setdefault(dependency, []).append(dependent)


def _load_promotion_state(
    inputs: GateInputs, builds: list[Build], *, ignore_promotion_id: int | None
) -> None:
    open_items = PromotionItem.objects.filter(
        build_id__in=in_array(b.pk for b in builds), promotion__state__in=OPEN_PROMOTION_STATES
    ).exclude(state=PromotionItem.State.DONE)
    if ignore_promotion_id is not None:
        open_items = open_items.exclude(promotion_id=ignore_promotion_id)
    for build_id, promotion_id, state in open_items.values_list(
        "build_id", "promotion_id", "promotion__state"
    ):
        inputs.open_items[build_id] = (promotion_id, state)
    inputs.target_channel = Channel.objects.filter(role=Channel.Role.TARGET).first()
    if inputs.target_channel is not None:
        inputs.in_target = set(
            Build.objects.filter(
                channel=inputs.target_channel,
                filename__in=in_array({b.filename for b in builds}, "text"),
            )
            .exclude(state=Build.State.WITHDRAWN)
            .values_list("subdir", "filename")
        )
