"""The planner's building blocks: variants per channel flavour, cell axes, builds being planned.

Pure (no ORM, no I/O). Whether a cell is possible at all is decided in
planner_applicability.py (co-installability with the channel stack's PyTorch records); what is
here only says which flavour's specs a build's jobs add to its environment (`pytorch-cuda 12.1.*`
for the pytorch channel, `cuda-version 12.1.*` for conda-forge).
"""

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass

from rattler import BuildString
from rattler import MatchSpec
from rattler import PackageRecord

from testing_app.planner.evidence import PYTHON
from testing_app.planner.evidence import CatalogRecord
from testing_app.planner.evidence import EvidenceRecord


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
