"""The planner's evidence: catalog records of the variant-relevant packages, as rattler types.

Pure (no ORM). Specs are read by py-rattler's lenient MatchSpec (as conda reads repodata, so
`pytorch 2.1.0` means ==2.1.0); a spec it cannot read raises UnreadableSpec.
"""

from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from rattler import BuildString
from rattler import MatchSpec
from rattler import PackageRecord
from rattler import Version
from rattler import VersionSpec

PYTHON = "python"
PYTORCH = "pytorch"
# The names under which PyTorch itself appears in conda channels (as the catalog's selectors).
PYTORCH_NAMES = frozenset({"pytorch", "pytorch-cpu", "pytorch-gpu", "libtorch"})
NOARCH = "noarch"


class UnreadableSpec(ValueError):
    """A build carries a spec py-rattler cannot read: the planner cannot judge it."""


@lru_cache(maxsize=65536)
def match_spec(text: str) -> MatchSpec:
    """MatchSpec of a repodata spec (lenient, as conda reads `pytorch 2.1.0`); cached, since
    channels repeat the same specs thousands of times."""
    try:
        return MatchSpec(text)
    except Exception as exc:  # rattler's parse errors share no base class
        raise UnreadableSpec(f"{text!r}: {exc}") from exc


def spec_package(spec: MatchSpec) -> str:
    return spec.name.normalized if spec.name is not None else ""


@lru_cache(maxsize=4096)
def version_of(text: str) -> Version:
    return Version(text)


@lru_cache(maxsize=16384)
def _version_spec(text: str) -> VersionSpec:
    return VersionSpec(text)


def admits_version(spec: MatchSpec, version: str) -> bool:
    """Whether the spec's version part admits `version` (a spec without one admits all)."""
    if spec.version is None:
        return True
    return _version_spec(str(spec.version)).matches(version_of(version))


def group_specs(specs: Iterable[str]) -> dict[str, tuple[MatchSpec, ...]]:
    """name -> its specs; raises UnreadableSpec."""
    grouped: dict[str, list[MatchSpec]] = defaultdict(list)
    for text in specs:
        parsed = match_spec(text)
        grouped[spec_package(parsed)].append(parsed)
    return {name: tuple(items) for name, items in grouped.items()}


@dataclass(frozen=True)
class CatalogRecord:
    """A catalog build as the rules see it (evidence, or a build being planned)."""

    id: int
    name: str
    version: str
    build_string: str
    subdir: str
    channel_id: int
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    noarch: str = ""
    package_id: int | None = None

    @property
    def is_noarch(self) -> bool:
        return self.subdir == NOARCH or bool(self.noarch)


@dataclass
class EvidenceRecord:
    """A catalog record turned into rattler's type once, with its specs grouped by name."""

    facts: CatalogRecord
    record: PackageRecord
    depends: dict[str, tuple[MatchSpec, ...]]
    constrains: dict[str, tuple[MatchSpec, ...]]


class Evidence:
    """The catalog's records of the variant-relevant names, indexed for the rules."""

    def __init__(self, records: Iterable[CatalogRecord]):
        self.by_name: dict[str, list[EvidenceRecord]] = defaultdict(list)
        for facts in records:
            try:
                item = EvidenceRecord(
                    facts=facts,
                    record=PackageRecord(
                        name=facts.name,
                        version=facts.version,
                        build=BuildString(facts.build_string),
                        build_number=0,
                        subdir=facts.subdir,
                        depends=list(facts.depends),
                        constrains=list(facts.constrains),
                    ),
                    depends=group_specs(facts.depends),
                    constrains=group_specs(facts.constrains),
                )
            except (UnreadableSpec, ValueError, TypeError):
                continue  # evidence we cannot read is no evidence (its lint says why)
            self.by_name[facts.name].append(item)
        self._of: dict[tuple[str, str], list[EvidenceRecord]] = {}
        self.distinguishing = self._distinguishing_names()

    def of(self, name: str, subdir: str) -> list[EvidenceRecord]:
        """Records of `name` usable on `subdir` (its own and noarch ones)."""
        key = (name, subdir)
        if key not in self._of:
            self._of[key] = [
                r for r in self.by_name.get(name, ()) if r.facts.subdir in (subdir, NOARCH)
            ]
        return self._of[key]

    def _distinguishing_names(self) -> frozenset[str]:
        """Names PyTorch builds of one version and platform depend on differently (or not at
        all): pytorch-mutex, pytorch-cuda, torchtriton, ... The rules compare a build with a
        PyTorch build on these names only; on the others (numpy, mkl) an incomplete catalog
        would say more than it knows."""
        groups: dict[tuple[str, str], list[dict[str, frozenset[str]]]] = defaultdict(list)
        for item in self.by_name.get(PYTORCH, ()):
            specs = {
                name: frozenset(str(s) for s in values) for name, values in item.depends.items()
            }
            groups[(item.facts.version, item.facts.subdir)].append(specs)
        names: set[str] = set()
        for members in groups.values():
            every = set().union(*members)
            for name in every:
                if len({m.get(name, frozenset()) for m in members}) > 1:
                    names.add(name)
        return frozenset(names - {PYTHON})


def python_fits(depends: Mapping[str, tuple[MatchSpec, ...]], python: str) -> bool:
    """Whether specs on python admit `python` ("" admits everything)."""
    if not python:
        return True
    return all(admits_version(spec, python) for spec in depends.get(PYTHON, ()))
