"""The planner: which cells a trigger tests, as a pure function over a catalog snapshot.

No ORM and no I/O: `services/planning.py` loads a `Catalog` (selectors/planning.py), calls
`plan()`, and writes the result in bulk. Whether a cell is possible at all is decided by
co-installability of the build with PyTorch records of the whole channel stack
(planner/applicability.py, variants as data in variant_selectors.py).

Cells = PyTorch releases x the variants each release ships x platforms (the build's subdir;
noarch: every platform the release ships) x python (the build's own; noarch: the newest the
release ships, or as PlanOptions says). A cell the build's constraints exclude is planned as
`not_applicable` with the reason; one already decided for the same inputs (same build, same
pinned upstream build) is left alone unless the trigger forces it.
"""

from collections import deque
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence

from rattler import Version

from testing_app.planner.applicability import Applicability
from testing_app.planner.applicability import Judgement
from testing_app.planner.applicability import Specs
from testing_app.planner.applicability import VariantFacts
from testing_app.planner.evidence import PYTORCH_NAMES
from testing_app.planner.evidence import CatalogRecord
from testing_app.planner.evidence import UnreadableSpec
from testing_app.planner.evidence import admits_version
from testing_app.planner.evidence import group_specs
from testing_app.planner.evidence import python_fits
from testing_app.planner.evidence import spec_package
from testing_app.planner.pinned import pinned_dependent_targets
from testing_app.planner.rules import CellAxes
from testing_app.planner.rules import PlannedBuild
from testing_app.planner.rules import VariantRule
from testing_app.planner.rules import choose_flavour
from testing_app.planner.types import DECIDED_VERDICTS
from testing_app.planner.types import IN_FLIGHT_VERDICTS
from testing_app.planner.types import NOARCH_PYTHON_POLICIES
from testing_app.planner.types import Catalog
from testing_app.planner.types import ExistingCell
from testing_app.planner.types import FullRun
from testing_app.planner.types import Manual
from testing_app.planner.types import NewBuilds
from testing_app.planner.types import Plan
from testing_app.planner.types import PlannedCell
from testing_app.planner.types import PlanOptions
from testing_app.planner.types import ReleaseAxes
from testing_app.planner.types import ReleaseWave
from testing_app.planner.types import Target
from testing_app.planner.types import Trigger
from testing_app.planner.types import VariantAxes


def reverse_closure(
    dependents: Mapping[str, Iterable[str]], name: str, *, depth: int | None
) -> dict[str, int]:
    """Packages that depend on `name` (depth 1) and, up to `depth` (None: all), on those."""
    found: dict[str, int] = {}
    queue = deque([(name, 0)])
    while queue:
        current, level = queue.popleft()
        if depth is not None and level >= depth:
            continue
        for dependent in dependents.get(current, ()):
            if dependent != name and dependent not in found:
                found[dependent] = level + 1
                queue.append((dependent, level + 1))
    return found


class Planner:
    """Plans triggers against one catalog snapshot (the caches live as long as the instance)."""

    def __init__(self, catalog: Catalog, options: PlanOptions | None = None):
        self.catalog = catalog
        self.options = options or PlanOptions()
        if self.options.noarch_python not in NOARCH_PYTHON_POLICIES:
            raise ValueError(f"noarch_python must be one of {NOARCH_PYTHON_POLICIES}")
        self.flavours = sorted(
            {flavour for v in catalog.variants.values() for flavour in v.select_specs}
        )
        self.variant_rules = {
            flavour: {v.id: self._variant_rule(v, flavour) for v in catalog.variants.values()}
            for flavour in {*self.flavours, self.options.default_flavour}
        }
        owned = {
            flavour: frozenset().union(*(r.selected_names for r in rules.values())) - PYTORCH_NAMES
            for flavour, rules in self.variant_rules.items()
        }
        # flavour -> names its variants select: which flavour's specs a build's jobs add.
        self.owned_names = owned
        # The PyTorch records of the whole channel stack (not the first channel holding any).
        self.applicability = Applicability(catalog.evidence, self.options.platform_virtual)
        self.variant_facts = {
            v.id: VariantFacts(v.id, v.name, v.kind, v.version, v.driver)
            for v in catalog.variants.values()
        }
        self._specs: dict[int, tuple[Specs, tuple]] = {}
        # Builds expand() could not plan re-tests for, reported by the next plan_targets().
        self._unplannable: list[tuple[int, str]] = []

    @staticmethod
    def _variant_rule(variant: VariantAxes, flavour: str) -> VariantRule:
        specs = tuple(variant.select_specs.get(flavour, ()))
        try:
            selects = group_specs(specs)
        except UnreadableSpec:
            # A Variant row whose spec py-rattler cannot read selects nothing: its GPU cells are
            # not applicable (with that reason) rather than the whole plan failing.
            specs, selects = (), {}
        return VariantRule(variant.id, variant.name, variant.kind, specs, selects)

    # --- triggers -> targets ------------------------------------------------------------------
    def plan(self, trigger: Trigger) -> Plan:
        """The plan of a trigger: its targets' cells, judged and filtered."""
        targets, releases = self.expand(trigger)
        return self.plan_targets(targets, releases, force=trigger.force)

    def expand(self, trigger: Trigger) -> tuple[list[Target], list[ReleaseAxes]]:
        """The builds (with pinned upstream builds) and releases a trigger plans."""
        releases = list(self.catalog.releases)
        if isinstance(trigger, ReleaseWave):
            releases = [r for r in releases if r.id == trigger.release_id]
            targets = self._latest_targets()
        elif isinstance(trigger, FullRun):
            targets = self._latest_targets()
        elif isinstance(trigger, Manual):
            if trigger.release_ids:
                releases = [r for r in releases if r.id in trigger.release_ids]
            targets = [Target(b) for b in trigger.builds]
        else:
            targets = [Target(b) for b in trigger.builds]
            if trigger.reverse_dependencies:
                retests, unplannable = pinned_dependent_targets(
                    self.catalog, self.options, trigger.builds, releases, reverse_closure
                )
                targets += retests
                self._unplannable += unplannable
        return targets, releases

    def _latest_targets(self) -> list[Target]:
        return [
            Target(build)
            for name in sorted(self.catalog.latest_builds)
            for build in self.catalog.latest_builds[name]
        ]

    # --- targets -> cells ---------------------------------------------------------------------
    def plan_targets(
        self, targets: Sequence[Target], releases: Sequence[ReleaseAxes], *, force: bool = False
    ) -> Plan:
        plan = Plan(unplannable=self._unplannable)
        self._unplannable = []
        seen: set[tuple] = set()
        for target in sorted(targets, key=lambda t: t.pinned is not None):
            try:
                build = self._planned_build(target.build)
            except UnreadableSpec as exc:
                plan.unplannable.append((target.build.id, f"unreadable spec {exc}"))
                continue
            try:
                pinned = self._planned_build(target.pinned) if target.pinned else None
            except UnreadableSpec as exc:
                plan.unplannable.append((target.pinned.id, f"unreadable spec {exc}"))
                continue
            chosen = releases
            if target.release_ids:
                chosen = [r for r in releases if r.id in target.release_ids]
            for cell in self._cells(build, pinned, chosen):
                plan.candidates += 1
                if cell.identity in seen:
                    continue
                seen.add(cell.identity)
                if not force and self._decided(cell):
                    plan.already_decided += 1
                elif cell.applicable:
                    plan.to_run.append(cell)
                    plan.unknown += bool(cell.unknown)
                else:
                    plan.not_applicable.append(cell)
        return plan

    def _planned_build(self, facts: CatalogRecord) -> PlannedBuild:
        depends, constrains = group_specs(facts.depends), group_specs(facts.constrains)
        flavour = choose_flavour(
            [*depends, *constrains], self.owned_names, self.options.default_flavour
        )
        return PlannedBuild(facts, depends, constrains, flavour)

    def _decided(self, cell: PlannedCell) -> bool:
        existing = self.catalog.existing.get(cell.identity)
        if existing is None:
            return False
        if not cell.applicable:
            return existing.verdict == "not_applicable"
        return existing.verdict in DECIDED_VERDICTS or existing.verdict in IN_FLIGHT_VERDICTS

    def _cells(
        self, build: PlannedBuild, pinned: PlannedBuild | None, releases: Sequence[ReleaseAxes]
    ) -> Iterable[PlannedCell]:
        facts = build.facts
        order = self._channel_order(facts.channel_id)
        for release in releases:
            pythons = self._pythons(build, release)
            subdirs = release.subdirs if facts.is_noarch else (facts.subdir,)
            for subdir in subdirs:
                platform_id = self.catalog.platforms.get(subdir)
                if platform_id is None:
                    continue
                for variant_id in release.variant_ids:
                    variant = self.variant_rules[build.flavour][variant_id]
                    if not self._variant_on(variant.kind, subdir):
                        continue
                    for python in pythons or ("",):
                        axes = CellAxes(release.version, variant, subdir, python, order)
                        cell = self._cell(build, pinned, release, axes, platform_id, subdir)
                        if cell is not None:
                            yield cell

    def _cell(self, build, pinned, release, axes, platform_id, subdir) -> PlannedCell | None:
        reason = unknown = ""
        if subdir not in release.subdirs:
            reason = f"PyTorch {release.version} ships no {subdir} build"
        elif not axes.python and build.python_specs:
            shipped = ", ".join(release.pythons) or "none"
            reason = (
                f"needs {build.python_specs[0]}; PyTorch {release.version} ships Python {shipped}"
            )
        else:
            judgement = self._judge(build, axes)
            reason, unknown = judgement.reason, judgement.unknown
        # A re-test only makes sense where the build is tested at all and the pinned upstream
        # build fits the same cell; otherwise the cell is left as it is.
        if pinned is not None and (reason or self._pinned_misfit(build, pinned, axes)):
            return None
        return PlannedCell(
            build_id=build.facts.id,
            torch_release_id=release.id,
            variant_id=axes.variant.id,
            platform_id=platform_id,
            python=axes.python,
            pinned_build_id=pinned.facts.id if pinned else None,
            extra_specs=axes.variant.specs,
            reason=reason,
            unknown=unknown,
        )

    def _judge(self, build: PlannedBuild, axes: CellAxes) -> Judgement:
        specs, signature = self._build_specs(build)
        variant = self.variant_facts[axes.variant.id]
        return self.applicability.judge(
            specs, axes.release_version, variant, axes.subdir, axes.python, signature=signature
        )

    def _build_specs(self, build: PlannedBuild) -> tuple[Specs, tuple]:
        facts = build.facts
        key = (facts.id, facts.name, facts.version, facts.build_string, facts.subdir)
        if key not in self._specs:
            specs = Specs(facts, _record_of(facts), build.depends, build.constrains)
            self._specs[key] = (specs, self.applicability.signature(specs))
        return self._specs[key]

    def _pinned_misfit(self, build: PlannedBuild, pinned: PlannedBuild, axes: CellAxes) -> bool:
        upstream = pinned.facts
        if not upstream.is_noarch and upstream.subdir != axes.subdir:
            return True
        if not python_fits(pinned.depends, axes.python):
            return True
        record = pinned.as_evidence()
        for spec in build.depends.get(upstream.name, ()):
            if record is None or not spec.matches(record.record):
                return True
        pinned_axes = CellAxes(
            axes.release_version,
            self.variant_rules[pinned.flavour][axes.variant.id],
            axes.subdir,
            axes.python,
            self._channel_order(upstream.channel_id),
        )
        return bool(self._judge(pinned, pinned_axes).reason)

    def _pythons(self, build: PlannedBuild, release: ReleaseAxes) -> tuple[str, ...]:
        specs = build.python_specs
        if not specs:
            return ()
        fitting = tuple(p for p in release.pythons if all(admits_version(s, p) for s in specs))
        if not fitting or not (build.facts.is_noarch or len(fitting) > 1):
            return fitting
        policy = self.options.noarch_python
        if policy == "all":
            return fitting
        ordered = sorted(fitting, key=Version)
        return (ordered[-1],) if policy == "newest" else (ordered[0],)

    def _variant_on(self, kind: str, subdir: str) -> bool:
        allowed = self.options.variant_subdirs.get(kind)
        return allowed is None or subdir in allowed

    def _channel_order(self, channel_id: int) -> tuple[int, ...]:
        order = self.catalog.channel_order
        return order if channel_id in order else (channel_id, *order)


def _record_of(facts: CatalogRecord):
    return Specs.of(
        CatalogRecord(
            id=facts.id,
            name=facts.name,
            version=facts.version,
            build_string=facts.build_string,
            subdir=facts.subdir,
            channel_id=facts.channel_id,
        )
    ).record


__all__ = [
    "Catalog",
    "CatalogRecord",
    "ExistingCell",
    "FullRun",
    "Manual",
    "NewBuilds",
    "Plan",
    "PlanOptions",
    "PlannedCell",
    "Planner",
    "ReleaseAxes",
    "ReleaseWave",
    "Target",
    "VariantAxes",
    "reverse_closure",
    "spec_package",
]
