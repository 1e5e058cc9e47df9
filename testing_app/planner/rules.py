"""The planner's applicability rules: which cells a build's own constraints exclude.

Pure (no ORM, no I/O). Every decision is a py-rattler MatchSpec matched against the catalog's
records of the packages that select a variant (pytorch, pytorch-cuda, cpuonly, cuda-version,
pytorch-mutex, ...), never a parsed build string. The records are the *evidence*: when the
catalog holds no record that a variant-side spec admits, nothing is known and the cell stays
applicable, so an incomplete catalog never hides a cell (the install check decides it then).

A cell (PyTorch release R, variant V, platform P, python) is not applicable to a build when:
1. the build's PyTorch specs (depends or constrains) do not admit R;
2. V needs a GPU and the build's channel flavour has no spec that selects it (ROCm on conda);
3. the build depends on a package that only other variants select (pytorch-cuda on cpu);
4. the build's spec on a package V selects conflicts with V's spec (pytorch-cuda 12.1.* on
   cuda11.8);
5. the channel that provides PyTorch to the build's environment (strict priority, as the solver
   reads it) has R but no build of it for V on P (and that python); or
6. none of those PyTorch builds of R for V fits the build: they come with packages the build
   contradicts (torchvision ..._cpu needs pytorch-mutex 1.0 cpu; PyTorch for cuda12.1 comes with
   pytorch-mutex 1.0 cuda).
"""

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field

from rattler import BuildString
from rattler import MatchSpec
from rattler import PackageRecord

from testing_app.planner.evidence import CPU_KIND
from testing_app.planner.evidence import PYTHON
from testing_app.planner.evidence import PYTORCH
from testing_app.planner.evidence import PYTORCH_NAMES
from testing_app.planner.evidence import CatalogRecord
from testing_app.planner.evidence import Evidence
from testing_app.planner.evidence import EvidenceRecord
from testing_app.planner.evidence import admits_version
from testing_app.planner.evidence import match_spec
from testing_app.planner.evidence import python_fits
from testing_app.planner.evidence import version_of


@dataclass(frozen=True)
class VariantRule:
    """One variant under one channel flavour: the specs that select it, grouped by name."""

    id: int
    name: str
    kind: str
    specs: tuple[str, ...]
    selects: Mapping[str, tuple[MatchSpec, ...]]

    @property
    def selected_names(self) -> frozenset[str]:
        return frozenset(self.selects)


@dataclass(frozen=True)
class CellAxes:
    """One cell as the rules judge it (no build)."""

    release_version: str
    variant: VariantRule
    subdir: str
    python: str
    # Channels in the order the solver reads them for this build (strict priority).
    channel_order: tuple[int, ...]


@dataclass
class AnchorSet:
    """The PyTorch builds a cell would install: of release R, for variant V, on platform P."""

    records: list[EvidenceRecord]
    provider: int | None
    provider_has_release: bool
    provider_has_python: bool = True


@dataclass
class Rules:
    """The rules over one catalog snapshot, with their caches."""

    evidence: Evidence
    # flavour -> names that some variant of that flavour selects (PyTorch's own names excluded).
    owned_names: Mapping[str, frozenset[str]]
    channel_names: Mapping[int, str] = field(default_factory=dict)
    _anchors: dict[tuple, AnchorSet] = field(default_factory=dict)
    _providers: dict[tuple, int | None] = field(default_factory=dict)

    # --- PyTorch builds of a cell -------------------------------------------------------------
    def provider(self, channel_order: tuple[int, ...], subdir: str) -> int | None:
        """The first channel (in solver order) holding any PyTorch build for the platform: with
        strict channel priority the solver takes PyTorch from there only."""
        key = (channel_order, subdir)
        if key not in self._providers:
            channels = {r.facts.channel_id for r in self.evidence.of(PYTORCH, subdir)}
            self._providers[key] = next((c for c in channel_order if c in channels), None)
        return self._providers[key]

    def anchors(self, axes: CellAxes, flavour: str) -> AnchorSet:
        key = (
            axes.release_version,
            axes.variant.id,
            axes.subdir,
            axes.python,
            axes.channel_order,
            flavour,
        )
        if key not in self._anchors:
            self._anchors[key] = self._find_anchors(axes, flavour)
        return self._anchors[key]

    def _find_anchors(self, axes: CellAxes, flavour: str) -> AnchorSet:
        provider = self.provider(axes.channel_order, axes.subdir)
        if provider is None:
            return AnchorSet([], None, False)
        release = version_of(axes.release_version)
        pool = [
            item
            for item in self.evidence.of(PYTORCH, axes.subdir)
            if item.facts.channel_id == provider and version_of(item.facts.version) == release
        ]
        if not pool:
            return AnchorSet([], provider, False)
        fitting_python = [item for item in pool if python_fits(item.depends, axes.python)]
        if not fitting_python:
            return AnchorSet([], provider, True, provider_has_python=False)
        consistent = [
            item
            for item in fitting_python
            if self.selects_variant(item, axes.variant, flavour, axes.subdir)
        ]
        owned = axes.variant.selected_names - PYTORCH_NAMES
        # Positive evidence wins: PyTorch builds that name V's own packages (cuda12.1's build
        # depends on pytorch-cuda) are V's builds; a cpu build merely tolerates them.
        preferred = [
            item for item in consistent if owned & (set(item.depends) | set(item.constrains))
        ]
        return AnchorSet(preferred or consistent, provider, True)

    def selects_variant(
        self, item: EvidenceRecord, variant: VariantRule, flavour: str, subdir: str
    ) -> bool:
        """Whether a PyTorch build is one of V's: V's specs on PyTorch match it, it depends on no
        package only other variants select, and its specs on V's packages fit V's."""
        for name, specs in variant.selects.items():
            if name == item.facts.name and not all(s.matches(item.record) for s in specs):
                return False
        foreign = self.owned_names.get(flavour, frozenset()) - variant.selected_names
        if foreign & set(item.depends):
            return False
        for name, specs in variant.selects.items():
            if name in PYTORCH_NAMES:
                continue
            theirs = (*item.depends.get(name, ()), *item.constrains.get(name, ()))
            if theirs and not self.evidence.compatible(name, subdir, specs, theirs):
                return False
        return True

    # --- a build in a cell --------------------------------------------------------------------
    def exclusion(self, build: "PlannedBuild", axes: CellAxes) -> str:
        """Why the build's own constraints exclude the cell ("" when they do not)."""
        variant, flavour = axes.variant, build.flavour
        reason = self._pytorch_version_conflict(build, axes.release_version)
        if reason:
            return reason
        if variant.kind != CPU_KIND and not variant.specs:
            return f"no conda package selects {variant.name} (in {flavour} channels)"
        foreign = (self.owned_names.get(flavour, frozenset()) - variant.selected_names) & set(
            build.depends
        )
        if foreign:
            name = sorted(foreign)[0]
            return f"depends on {name}, which {variant.name} does not install"
        for name, specs in variant.selects.items():
            if name == build.facts.name:
                continue  # a PyTorch build itself: judged as a PyTorch build below
            mine = (*build.depends.get(name, ()), *build.constrains.get(name, ()))
            if name in PYTORCH_NAMES:
                # V's spec on PyTorch (conda-forge: pytorch * cuda*) for release R only.
                specs = (*specs, match_spec(f"{name} =={axes.release_version}"))
            if mine and not self.evidence.compatible(name, axes.subdir, specs, mine):
                return f"{_text(mine)} conflicts with {variant.name} ({_text(specs)})"
        if build.facts.name in PYTORCH_NAMES:
            return self._own_pytorch_exclusion(build, axes)
        return self._anchor_exclusion(build, axes)

    def _pytorch_version_conflict(self, build: "PlannedBuild", release: str) -> str:
        if build.facts.name in PYTORCH_NAMES:
            if version_of(build.facts.version) != version_of(release):
                return f"is PyTorch {build.facts.version}, not {release}"
            return ""
        for kind, grouped in (("requires", build.depends), ("constrains", build.constrains)):
            for name in PYTORCH_NAMES & set(grouped):
                for spec in grouped[name]:
                    if not admits_version(spec, release):
                        return f"{kind} {spec}"
        return ""

    def _own_pytorch_exclusion(self, build: "PlannedBuild", axes: CellAxes) -> str:
        item = build.as_evidence()
        if item is None or self.selects_variant(item, axes.variant, build.flavour, axes.subdir):
            return ""
        return f"is not a {axes.variant.name} build of PyTorch"

    def _anchor_exclusion(self, build: "PlannedBuild", axes: CellAxes) -> str:
        anchors = self.anchors(axes, build.flavour)
        channel = self.channel_names.get(anchors.provider or 0, "its PyTorch channel")
        if anchors.provider_has_release and not anchors.records:
            where = f" and Python {axes.python}" if not anchors.provider_has_python else ""
            return (
                f"PyTorch {axes.release_version} in {channel} has no {axes.variant.name} build "
                f"for {axes.subdir}{where}"
            )
        if not anchors.records:
            return ""  # nothing known about PyTorch R here: the install check decides
        conflicts = [self._misfit(build, anchor, axes.subdir) for anchor in anchors.records]
        if all(conflicts):
            return conflicts[0]
        return ""

    def _misfit(self, build: "PlannedBuild", anchor: EvidenceRecord, subdir: str) -> str:
        """Why the build cannot be installed with this PyTorch build ("" when it can)."""
        for grouped in (build.depends, build.constrains):
            for spec in grouped.get(PYTORCH, ()):
                if not spec.matches(anchor.record):
                    return f"{spec} does not match {anchor.facts.name} {anchor.facts.version}"
        relevant = self.evidence.distinguishing | self.owned_names_all
        pairs = (
            (anchor.depends, build.depends),
            (anchor.depends, build.constrains),
            (anchor.constrains, build.depends),
        )
        for theirs, mine in pairs:
            for name in relevant & set(theirs) & set(mine):
                if not self.evidence.compatible(name, subdir, theirs[name], mine[name]):
                    return (
                        f"needs {_text(mine[name])}; PyTorch {anchor.facts.version} for this "
                        f"variant comes with {_text(theirs[name])}"
                    )
        return ""

    @property
    def owned_names_all(self) -> frozenset[str]:
        return frozenset().union(*self.owned_names.values()) if self.owned_names else frozenset()


@dataclass
class PlannedBuild:
    """A build being planned: its specs grouped by name and the channel flavour it speaks."""

    facts: CatalogRecord
    depends: dict[str, tuple[MatchSpec, ...]]
    constrains: dict[str, tuple[MatchSpec, ...]]
    flavour: str

    @property
    def python_specs(self) -> tuple[MatchSpec, ...]:
        return self.depends.get(PYTHON, ())

    def as_evidence(self) -> EvidenceRecord | None:
        try:
            record = PackageRecord(
                name=self.facts.name,
                version=self.facts.version,
                build=BuildString(self.facts.build_string),
                build_number=0,
                subdir=self.facts.subdir,
            )
        except (ValueError, TypeError):
            return None
        return EvidenceRecord(self.facts, record, self.depends, self.constrains)

    def signature(self, relevant: frozenset[str]) -> tuple:
        """What the rules read of this build: builds with equal signatures get equal answers."""
        return (
            self.flavour,
            self.facts.name if self.facts.name in PYTORCH_NAMES else "",
            self.facts.version if self.facts.name in PYTORCH_NAMES else "",
            self.facts.build_string if self.facts.name in PYTORCH_NAMES else "",
            tuple(
                sorted(
                    (kind, name, str(spec))
                    for kind, grouped in (("d", self.depends), ("c", self.constrains))
                    for name, specs in grouped.items()
                    if name in relevant
                    for spec in specs
                )
            ),
        )


def choose_flavour(
    names: Iterable[str], owned_names: Mapping[str, frozenset[str]], default: str
) -> str:
    """The channel flavour a build speaks: the one whose variant-selecting packages it names
    most (pytorch-cuda and cpuonly: the pytorch channel; cuda-version: conda-forge); ties go to
    the configured default."""
    present = set(names)
    best, best_count = default, len(owned_names.get(default, frozenset()) & present)
    for flavour, owned in sorted(owned_names.items()):
        count = len(owned & present)
        if count > best_count:
            best, best_count = flavour, count
    return best


def _text(specs: Iterable[MatchSpec]) -> str:
    return " and ".join(str(s) for s in specs)
