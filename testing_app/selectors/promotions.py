"""Promotion reads: the queue of candidates, suggested coordinated sets, the confirmation plan,
one promotion's progress, and what the target channel holds."""

from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.db.models import QuerySet

from packages_app.models import Build
from packages_app.models import Channel
from testing_app.models import InstallabilityCheck
from testing_app.models import Promotion
from testing_app.models import PromotionItem
from testing_app.selectors import promotion_sets
from testing_app.selectors.gate import BLOCKED
from testing_app.selectors.gate import PROMOTABLE
from testing_app.selectors.gate import WAITING
from testing_app.selectors.gate import GateReport
from testing_app.selectors.gate import SetGateReport
from testing_app.selectors.gate import evaluate_gates
from testing_app.selectors.gate import evaluate_set
from testing_app.selectors.gate_inputs import candidate_builds
from testing_app.selectors.gate_inputs import load_gate_inputs
from testing_app.selectors.promotion_sets import SetSolveProgress
from testing_app.selectors.promotion_sets import get_set_solve_progress
from testing_app.selectors.promotion_sets import suggest_sets
from testing_app.services.promotion_backends import backend_name
from testing_app.services.promotion_backends import make_backend

GROUPS = ((PROMOTABLE, "Promotable"), (WAITING, "Waiting"), (BLOCKED, "Blocked"))
RECENT_PROMOTIONS = 20


def list_candidate_builds() -> QuerySet[Build]:
    """Staged builds of registered packages in staging channels, oldest first."""
    return (
        Build.objects.filter(
            state=Build.State.STAGED,
            channel__role=Channel.Role.STAGING,
            package__isnull=False,
        )
        .select_related("package", "channel")
        .order_by("first_seen_at", "pk")
    )


@dataclass(frozen=True)
class SuggestedSet:
    """Candidates that can only go together: the solver installs one only with another."""

    builds: tuple[Build, ...]
    gate: SetGateReport

    @property
    def ids(self) -> list[int]:
        return [b.pk for b in self.builds]

    @property
    def title(self) -> str:
        return " + ".join(f"{b.name} {b.version}" for b in self.builds)


@dataclass(frozen=True)
class QueueGroup:
    status: str
    title: str
    reports: list[GateReport]  # oldest first, at most the limit asked for
    total: int

    @property
    def truncated(self) -> bool:
        return self.total > len(self.reports)


@dataclass(frozen=True)
class PromotionQueue:
    groups: list[QueueGroup]
    sets: list[SuggestedSet]
    recent: list[Promotion]
    target: Channel | None
    set_solves: SetSolveProgress

    @property
    def total(self) -> int:
        return sum(group.total for group in self.groups)


def get_promotion_queue(*, limit_per_group: int | None = None) -> PromotionQueue:
    """Every candidate judged by the gate (a fixed number of queries for all of them), grouped
    promotable / waiting / blocked, oldest first; plus suggested sets and recent promotions."""
    builds = list(list_candidate_builds())
    sets = suggest_sets(builds)
    subjects = tuple(_set_key(ids) for ids in sets)
    inputs = load_gate_inputs(builds, subjects=subjects)
    reports = evaluate_gates(builds, inputs=inputs)
    grouped = defaultdict(list)
    for build in builds:
        grouped[reports[build.pk].status].append(reports[build.pk])
    by_pk = {b.pk: b for b in builds}
    suggested = []
    for ids in sets:
        members = [by_pk[pk] for pk in ids]
        suggested.append(SuggestedSet(tuple(members), evaluate_set(members, inputs=inputs)))
    recent = list(
        Promotion.objects.select_related("requested_by", "target_channel").prefetch_related(
            Prefetch("items", queryset=PromotionItem.objects.select_related("build"))
        )[:RECENT_PROMOTIONS]
    )
    return PromotionQueue(
        groups=[
            QueueGroup(key, title, grouped[key][:limit_per_group], len(grouped[key]))
            for key, title in GROUPS
        ],
        sets=suggested,
        recent=recent,
        target=inputs.target_channel,
        set_solves=get_set_solve_progress(by_pk),
    )


def _set_key(ids: list[int]) -> str:
    return "set:" + ",".join(str(i) for i in sorted(ids))


def suggest_set_for(build: Build) -> list[int]:
    """The suggested set `build` belongs to ([] if none), sorted by name, from the stored
    set-partner solves of the current candidates (two queries, no solving)."""
    keys = {
        pk: (name, subdir, pk)
        for pk, name, subdir in list_candidate_builds().values_list("pk", "name", "subdir")
    }
    group = promotion_sets.suggest_set_for(build, keys)
    return sorted(group, key=lambda pk: keys.get(pk, (build.name, build.subdir, pk)))


@dataclass(frozen=True)
class PlanItem:
    build: Build
    source: str
    destination: str


@dataclass(frozen=True)
class PromotionPlan:
    """What the confirmation page shows: each file, from where to where, and the set's gate."""

    items: list[PlanItem]
    source: Channel
    target: Channel
    backend: str
    gate: SetGateReport

    @property
    def build_ids(self) -> list[int]:
        return [item.build.pk for item in self.items]


def plan_promotion(*, build_ids, check_url: str = "") -> PromotionPlan:
    """The plan for promoting these builds together; ValidationError when they cannot be."""
    ids = sorted({int(pk) for pk in build_ids})
    builds = sorted(candidate_builds(ids), key=lambda b: (b.name, b.subdir, b.pk))
    if not builds:
        raise ValidationError("Choose at least one build to promote.")
    if len(builds) != len(ids):
        missing = sorted(set(ids) - {b.pk for b in builds})
        raise ValidationError(f"No build with id {', '.join(map(str, missing))}.")
    sources = {b.channel_id for b in builds}
    if len(sources) > 1:
        raise ValidationError("A promotion copies from one channel; these builds are in several.")
    target = Channel.objects.filter(role=Channel.Role.TARGET).first()
    if target is None:
        raise ValidationError("No target channel is configured.")
    source = builds[0].channel
    if source.pk == target.pk:
        raise ValidationError("These builds are already in the target channel.")
    name = backend_name(target)
    backend = make_backend(name=name, source=source, target=target)
    items = [PlanItem(b, *backend.describe(b)) for b in builds]
    gate = evaluate_set(builds, check_url=check_url)
    return PromotionPlan(items=items, source=source, target=target, backend=name, gate=gate)


@dataclass(frozen=True)
class PromotionView:
    promotion: Promotion
    items: list[PromotionItem]
    checks: list[InstallabilityCheck]

    @property
    def landed(self) -> list[PromotionItem]:
        return [i for i in self.items if i.state == PromotionItem.State.DONE]

    @property
    def precopy_checks(self) -> list[InstallabilityCheck]:
        return [c for c in self.checks if c.kind == InstallabilityCheck.Kind.PRECOPY]

    @property
    def post_checks(self) -> list[InstallabilityCheck]:
        return [c for c in self.checks if c.kind == InstallabilityCheck.Kind.POST]


def get_promotion(pk: int) -> PromotionView:
    """One promotion with its items (build and package) and its checks: three queries."""
    promotion = Promotion.objects.select_related(
        "source_channel", "target_channel", "requested_by"
    ).get(pk=pk)
    items = list(promotion.items.select_related("build__package", "build__channel").order_by("pk"))
    checks = list(
        promotion.installability_checks.select_related("torch_release").order_by("kind", "pk")
    )
    return PromotionView(promotion, items, checks)


@dataclass(frozen=True)
class TargetOverview:
    target: Channel | None
    builds: list[Build]
    checks: list[InstallabilityCheck]
    promotion: Promotion | None


def get_target_overview(*, limit: int = 100) -> TargetOverview:
    """What users install from: the newest builds of the target channel and the install-set
    checks of the latest finished promotion."""
    target = Channel.objects.filter(role=Channel.Role.TARGET).first()
    if target is None:
        return TargetOverview(None, [], [], None)
    builds = list(
        Build.objects.filter(channel=target)
        .exclude(state=Build.State.WITHDRAWN)
        .select_related("package")
        .order_by("-first_seen_at", "-pk")[:limit]
    )
    latest = (
        Promotion.objects.filter(target_channel=target, state=Promotion.State.DONE)
        .order_by("-finished_at", "-pk")
        .first()
    )
    checks = []
    if latest is not None:
        checks = list(
            latest.installability_checks.filter(kind=InstallabilityCheck.Kind.POST)
            .select_related("torch_release")
            .order_by("pk")
        )
    return TargetOverview(target, builds, checks, latest)
