"""Promotion reads: the queue of candidates, suggested coordinated sets, the confirmation plan,
one promotion's progress, and what the target channel holds."""

from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.db.models import Q
from django.db.models import QuerySet
from rattler import BuildString
from rattler import MatchSpec
from rattler import PackageRecord
from rattler.exceptions import InvalidMatchSpecError
from rattler.exceptions import InvalidVersionError

from distro_site.json_lists import json_list_contains
from packages_app.models import Build
from packages_app.models import Channel
from testing_app.models import InstallabilityCheck
from testing_app.models import Promotion
from testing_app.models import PromotionItem
from testing_app.selectors.gate import BLOCKED
from testing_app.selectors.gate import PROMOTABLE
from testing_app.selectors.gate import WAITING
from testing_app.selectors.gate import GateReport
from testing_app.selectors.gate import SetGateReport
from testing_app.selectors.gate import evaluate_gates
from testing_app.selectors.gate import evaluate_set
from testing_app.selectors.gate_inputs import candidate_builds
from testing_app.selectors.gate_inputs import load_gate_inputs
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
    """Candidates that can only go together: one needs another to be installable."""

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
    )


def _set_key(ids: list[int]) -> str:
    return "set:" + ",".join(str(i) for i in sorted(ids))


def _record(build: Build) -> PackageRecord | None:
    try:
        return PackageRecord(
            name=build.name,
            version=build.version,
            build=BuildString(build.build_string),
            build_number=build.build_number,
            subdir=build.subdir,
            depends=list(build.depends or ()),
        )
    except (InvalidVersionError, ValueError):
        return None


def _met_by(match: MatchSpec, dependent: Build, builds, records: dict) -> bool:
    for build in builds:
        if not _same_platform(dependent, build):
            continue
        record = records.setdefault(build.pk, _record(build))
        if record is not None and match.matches(record):
            return True
    return False


def suggest_set_for(build: Build) -> list[int]:
    """The suggested set `build` belongs to ([] if none): the candidates it depends on or that
    depend on it, and theirs in turn (mv-vision and mv-audio meet through pytorch), read with
    indexed lookups per step instead of the whole queue."""
    related = {build.pk: build}
    names: set[str] = set()
    while True:
        frontier = {b.name for b in related.values()} - names
        if not frontier:
            break
        names |= frontier
        wanted = {n for b in related.values() for n in (b.depends_names or ())}
        condition = Q(name__in=wanted)
        for name in frontier:
            condition |= json_list_contains("depends_names", name)
        for candidate in list_candidate_builds().filter(condition):
            related.setdefault(candidate.pk, candidate)
    return next((ids for ids in suggest_sets(list(related.values())) if build.pk in ids), [])


def available_elsewhere(names) -> dict[str, list[Build]]:
    """Live builds of these names in the target and upstream channels (one query): what a
    staged build's dependency can be installed from without another staged build."""
    by_name = defaultdict(list)
    rows = (
        Build.objects.filter(
            name__in=set(names), channel__role__in=[Channel.Role.TARGET, Channel.Role.UPSTREAM]
        )
        .exclude(state=Build.State.WITHDRAWN)
        .only("pk", "name", "version", "build_string", "build_number", "subdir", "depends")
    )
    for build in rows:
        by_name[build.name].append(build)
    return by_name


def suggest_sets(
    builds: list[Build], elsewhere: dict[str, list[Build]] | None = None
) -> list[list[int]]:
    """Groups of candidates that need each other: a candidate whose dependency (an exact pin or
    a range: torchvision 0.21 needs pytorch >=2.6,<2.7) is met by a staged candidate and by no
    live build in the target or upstream channels cannot be installed without it. Promoting one
    without the other leaves users with something they cannot install. Returns lists of build
    ids (sorted by name), for groups of two or more."""
    by_name = defaultdict(list)
    for build in builds:
        by_name[build.name].append(build)
    if elsewhere is None:
        elsewhere = available_elsewhere(by_name)
    parent = {b.pk: b.pk for b in builds}

    def find(pk: int) -> int:
        while parent[pk] != pk:
            parent[pk] = parent[parent[pk]]
            pk = parent[pk]
        return pk

    records = {}
    for dependent in builds:
        for spec in dependent.depends or ():
            try:
                match = MatchSpec(spec)
            except InvalidMatchSpecError:
                continue
            name = match.name.normalized if match.name is not None else ""
            if name == dependent.name or name not in by_name:
                continue
            if _met_by(match, dependent, elsewhere.get(name, ()), records):
                continue  # installable without the staged builds of that name
            for dependency in by_name[name]:
                if _met_by(match, dependent, [dependency], records):
                    parent[find(dependent.pk)] = find(dependency.pk)
    components = defaultdict(list)
    for build in builds:
        components[find(build.pk)].append(build)
    return [
        [b.pk for b in sorted(members, key=lambda b: (b.name, b.subdir))]
        for members in components.values()
        if len(members) > 1
    ]


def _same_platform(a: Build, b: Build) -> bool:
    return a.subdir == b.subdir or "noarch" in (a.subdir, b.subdir)


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
