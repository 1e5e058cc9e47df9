"""Applicability by co-installability: is a cell possible at all, by the records' own metadata?

Pure (no ORM, no I/O). A cell (build B, PyTorch version V, variant X, platform P, python Y) is
applicable exactly when some PyTorch record of version V for P, from the whole channel stack,
that X claims (variant_selectors.py) is co-installable with B in one of X's environments:

- B and that PyTorch record T each fit the environment: their depends and constrains on the
  names the environment holds (pytorch-mutex, cudatoolkit, pytorch-cuda, cuda-version, cpuonly,
  python Y, the virtual packages __cuda, __glibc, __osx, ...) match its probe records; a depends
  on a virtual package the machine lacks (a CPU cell's __cuda) does not fit;
- B's specs on PyTorch match T (a spec on another PyTorch name, pytorch-cpu, by version);
  T's specs on B's name match B;
- for any other name both depend on or constrain (libtorch, torchtriton, ...), one record of
  the catalog satisfies both sides' specs (names the catalog holds no record of decide nothing).

Every match is a py-rattler MatchSpec against a PackageRecord; no version or build string is
parsed here. When the stack holds no PyTorch V record for P at all, nothing can decide: the cell
is *unknown* (planned: its install check decides) with that reason, never guessed.

Answers are cached per equivalence class: the specs of B that the rules read (signature) x the
cell, so thousands of builds with the same constraints cost one judgement per cell.
"""

from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from rattler import BuildString
from rattler import PackageRecord

from testing_app.planner.evidence import NOARCH
from testing_app.planner.evidence import PYTHON
from testing_app.planner.evidence import CatalogRecord
from testing_app.planner.evidence import UnreadableSpec
from testing_app.planner.evidence import admits_version
from testing_app.planner.evidence import group_specs
from testing_app.planner.evidence import version_of
from testing_app.planner.variant_selectors import ACCELERATOR_NAMES
from testing_app.planner.variant_selectors import ENVIRONMENTS
from testing_app.planner.variant_selectors import TORCH_BUILD_NAMES
from testing_app.planner.variant_selectors import VariantEnvironment
from testing_app.planner.variant_selectors import environments_of

VIRTUAL_PREFIX = "__"
CUDA_VIRTUAL = "__cuda"


@dataclass(frozen=True)
class VariantFacts:
    """What the engine needs of a variant."""

    id: int
    name: str
    kind: str
    version: str = ""
    driver: str = ""


@dataclass(frozen=True)
class Judgement:
    """ "" reason and no unknown: applicable. reason: not applicable, why. unknown: undecided."""

    reason: str = ""
    unknown: str = ""


APPLICABLE = Judgement()


@dataclass
class Specs:
    """A record with its specs grouped by name (raises UnreadableSpec when built)."""

    facts: CatalogRecord
    record: PackageRecord
    depends: dict
    constrains: dict

    @classmethod
    def of(cls, facts: CatalogRecord) -> "Specs":
        try:
            record = PackageRecord(
                name=facts.name,
                version=facts.version,
                build=BuildString(facts.build_string),
                build_number=0,
                subdir=facts.subdir,
            )
        except Exception as exc:  # noqa: BLE001 - rattler's errors share no base class
            raise UnreadableSpec(f"{facts.name} {facts.version}: {exc}") from exc
        return cls(facts, record, group_specs(facts.depends), group_specs(facts.constrains))

    @property
    def names(self) -> set[str]:
        return set(self.depends) | set(self.constrains)

    @property
    def is_torch_build(self) -> bool:
        """A PyTorch build itself (not a metapackage depending on one)."""
        return self.facts.name in TORCH_BUILD_NAMES and not (TORCH_BUILD_NAMES & set(self.depends))


@lru_cache(maxsize=4096)
def probe(text: str) -> PackageRecord:
    """`name version build` as a record of the environment."""
    name, version, build = text.split()
    return PackageRecord(
        name=name, version=version, build=BuildString(build), build_number=0, subdir=NOARCH
    )


@dataclass(frozen=True)
class Environment:
    """One concrete environment of a cell: probe records by name, and what it stands for."""

    label: str
    records: Mapping[str, PackageRecord]
    needs_accelerator: bool
    # Whether the platform's virtual packages are known (PlanOptions.platform_virtual): then a
    # depends on one the machine lacks does not fit; otherwise only __cuda (the variant's) is.
    platform_known: bool = True


class Applicability:
    """The engine over one catalog snapshot (the whole channel stack's records)."""

    def __init__(
        self,
        evidence: Iterable[CatalogRecord],
        platform_virtual: Mapping[str, tuple[str, ...]],
    ):
        self.platform_virtual = platform_virtual
        self.torch: dict[tuple[str, object], list[Specs]] = defaultdict(list)
        self.pool: dict[str, list[Specs]] = defaultdict(list)
        for facts in evidence:
            try:
                item = Specs.of(facts)
            except UnreadableSpec:
                continue  # a record we cannot read is no evidence (its lint says why)
            if item.is_torch_build:
                self.torch[(facts.subdir, version_of(facts.version))].append(item)
            else:
                self.pool[facts.name].append(item)
        self.torch_dependency_names = frozenset(
            name for items in self.torch.values() for item in items for name in item.names
        )
        self._environments: dict[tuple, tuple[Environment, ...]] = {}
        self._judged: dict[tuple, Judgement] = {}

    # --- equivalence classes ------------------------------------------------------------------
    def relevant(self, name: str) -> bool:
        return (
            name.startswith(VIRTUAL_PREFIX)
            or name in TORCH_BUILD_NAMES
            or name == PYTHON
            or name in self.torch_dependency_names
            or name in _PROBE_NAMES
        )

    def signature(self, build: Specs) -> tuple:
        """What the rules read of a build: builds with equal signatures get equal answers."""
        own = (
            (build.facts.name, build.facts.version, build.facts.build_string)
            if build.is_torch_build or build.facts.name in self.torch_dependency_names
            else ()
        )
        specs = tuple(
            sorted(
                (kind, str(spec))
                for kind, grouped in (("d", build.depends), ("c", build.constrains))
                for name, items in grouped.items()
                if self.relevant(name)
                for spec in items
            )
        )
        return own, specs

    def judge(
        self,
        build: Specs,
        release: str,
        variant: VariantFacts,
        subdir: str,
        python: str,
        *,
        signature: tuple | None = None,
    ) -> Judgement:
        """The cell's judgement; `signature` (self.signature(build)) may be passed in, computed
        once per build."""
        key = (signature or self.signature(build), release, variant, subdir, python)
        if key not in self._judged:
            self._judged[key] = self._judge(build, release, variant, subdir, python)
        return self._judged[key]

    # --- the rule ---------------------------------------------------------------------------
    def _judge(self, build, release, variant, subdir, python) -> Judgement:
        environments = self.environments(variant, subdir, python)
        if build.is_torch_build:
            if version_of(build.facts.version) != version_of(release):
                return Judgement(f"is PyTorch {build.facts.version}, not {release}")
            if any(self.claims(build, env) for env in environments):
                return APPLICABLE
            return Judgement(f"is not a {variant.name} build of PyTorch")
        reason = self._pytorch_bound(build, release)
        if reason:
            return Judgement(reason)
        if not environments:
            return Judgement(f"no conda channel ships PyTorch for {variant.name}")
        candidates = [
            *self.torch.get((subdir, version_of(release)), ()),
            *self.torch.get((NOARCH, version_of(release)), ()),
        ]
        if not candidates:
            return Judgement(
                unknown=f"no PyTorch {release} record for {subdir} in the channel stack"
            )
        claimed, first_reason = False, ""
        for env in environments:
            for torch in candidates:
                if not self.claims(torch, env):
                    continue
                claimed = True
                reason = self.misfit(build, env) or self.conflict(build, torch, subdir)
                if not reason:
                    return APPLICABLE
                first_reason = first_reason or reason
        if not claimed:
            where = f" and Python {python}" if python else ""
            return Judgement(
                f"PyTorch {release} in the channel stack has no {variant.name} build for "
                f"{subdir}{where}"
            )
        return Judgement(first_reason)

    def _pytorch_bound(self, build: Specs, release: str) -> str:
        for kind, grouped in (("requires", build.depends), ("constrains", build.constrains)):
            for name in TORCH_BUILD_NAMES & set(grouped):
                for spec in grouped[name]:
                    if not admits_version(spec, release):
                        return f"{kind} {spec}"
        return ""

    def environments(self, variant: VariantFacts, subdir: str, python: str):
        key = (variant, subdir, python)
        if key not in self._environments:
            self._environments[key] = tuple(
                self._environment(template, variant, subdir, python)
                for template in environments_of(variant.kind, variant.version, variant.driver)
            )
        return self._environments[key]

    def _environment(
        self, template: VariantEnvironment, variant: VariantFacts, subdir: str, python: str
    ) -> Environment:
        texts = [*self.platform_virtual.get(subdir, ()), *template.virtual, *template.records]
        if python:
            texts.append(f"{PYTHON} {python} 0")
        records = {}
        for text in texts:
            record = probe(text)
            records[record.name.normalized] = record
        label = f"{variant.name} ({template.mechanism})"
        known = subdir in self.platform_virtual
        return Environment(label, records, template.needs_accelerator, known)

    def claims(self, torch: Specs, env: Environment) -> bool:
        """Whether a PyTorch record is a build of the environment's variant: it fits the
        environment, every accelerator package it depends on is one the environment holds
        (a cudatoolkit build is not claimed by the pytorch-cuda mechanism), and it uses an
        accelerator exactly when the environment is a CUDA one."""
        if self.misfit(torch, env):
            return False
        accelerators = ACCELERATOR_NAMES & set(torch.depends)
        if any(name not in env.records for name in accelerators):
            return False
        return bool(accelerators) == env.needs_accelerator

    @staticmethod
    def misfit(item: Specs, env: Environment) -> str:
        """Why a record does not fit the environment ("" when it does)."""
        for name, specs in item.depends.items():
            held = env.records.get(name)
            if held is None:
                decided = name == CUDA_VIRTUAL or env.platform_known
                if name.startswith(VIRTUAL_PREFIX) and decided:
                    return f"needs {_text(specs)}; {env.label} machines have no {name}"
                continue
            if not all(spec.matches(held) for spec in specs):
                return f"needs {_text(specs)}; {env.label} has {_held(held)}"
        for name, specs in item.constrains.items():
            held = env.records.get(name)
            if held is not None and not all(spec.matches(held) for spec in specs):
                return f"constrains {_text(specs)}; {env.label} has {_held(held)}"
        return ""

    def conflict(self, build: Specs, torch: Specs, subdir: str) -> str:
        """Why B and T cannot be installed together by their own specs ("" when they can)."""
        label = f"{torch.facts.name} {torch.facts.version} {torch.facts.build_string}"
        for grouped in (build.depends, build.constrains):
            for name in TORCH_BUILD_NAMES & set(grouped):
                for spec in grouped[name]:
                    fits = (
                        spec.matches(torch.record)
                        if name == torch.facts.name
                        else admits_version(spec, torch.facts.version)
                    )
                    if not fits:
                        return f"{spec} does not match {label}"
        for grouped in (torch.depends, torch.constrains):
            for spec in grouped.get(build.facts.name, ()):
                if not spec.matches(build.record):
                    return f"{label} needs {spec}"
        shared = (build.names & torch.names) - TORCH_BUILD_NAMES - _PROBE_NAMES - {PYTHON}
        for name in sorted(shared):
            if name.startswith(VIRTUAL_PREFIX) or not (
                name in build.depends or name in torch.depends
            ):
                continue
            pool = [r for r in self.pool.get(name, ()) if r.facts.subdir in (subdir, NOARCH)]
            if not pool:
                continue  # the catalog holds no record of it: nothing to decide with
            specs = [
                *build.depends.get(name, ()),
                *build.constrains.get(name, ()),
                *torch.depends.get(name, ()),
                *torch.constrains.get(name, ()),
            ]
            if not any(all(s.matches(r.record) for s in specs) for r in pool):
                return f"no {name} fits both {_text(specs)} (with {label})"
        return ""


# Names the variant environments hold: decided by the environment, not by the catalog.
_PROBE_NAMES = frozenset(
    probe(text.format(version="1.0", driver="1.0")).name.normalized
    for templates in ENVIRONMENTS.values()
    for template in templates
    for text in (*template.records, *template.virtual)
)


def _text(specs) -> str:
    return " and ".join(str(s) for s in specs)


def _held(record: PackageRecord) -> str:
    if record.name.normalized.startswith(VIRTUAL_PREFIX):
        return f"{record.name.normalized} {record.version}"
    return f"{record.name.normalized} {record.version} {record.build}"
