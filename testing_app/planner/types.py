"""The planner's inputs and outputs: plain values, loaded and written by the planning service."""

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

from testing_app.planner.evidence import CatalogRecord

# Verdicts after which a cell is decided for its inputs; `error`/`timeout` (infrastructure) are
# not: planning the cell again runs it again.
DECIDED_VERDICTS = frozenset(
    {"passed", "failed", "uninstallable", "no_tests", "not_applicable", "waived"}
)
IN_FLIGHT_VERDICTS = frozenset({"queued", "running"})
NOARCH_PYTHON_POLICIES = ("newest", "oldest", "all")


@dataclass(frozen=True)
class ReleaseAxes:
    """A PyTorch release and what it ships."""

    id: int
    version: str
    variant_ids: tuple[int, ...]
    subdirs: tuple[str, ...]
    pythons: tuple[str, ...]


@dataclass(frozen=True)
class VariantAxes:
    """A variant: its kind and, per channel flavour, the specs that select it."""

    id: int
    name: str
    kind: str
    select_specs: Mapping[str, tuple[str, ...]]
    # The accelerator version (cuda12.1: "12.1") and the driver CUDA it needs (min_driver_cuda).
    version: str = ""
    driver: str = ""


@dataclass(frozen=True)
class ExistingCell:
    """What CellResult (or, for a pinned re-test, PinnedCellResult) says of a cell now, keyed
    by PlannedCell.identity."""

    verdict: str
    pinned_build_id: int | None = None


@dataclass
class Catalog:
    """Everything the planner reads, loaded by selectors/planning.py."""

    releases: Sequence[ReleaseAxes]
    variants: Mapping[int, VariantAxes]
    platforms: Mapping[str, int]  # subdir -> Platform id
    evidence: Sequence[CatalogRecord]
    # Channel ids in the order the solver reads them (staging, target, upstream); a build's own
    # channel goes first when it is none of them.
    channel_order: tuple[int, ...] = ()
    channel_names: Mapping[int, str] = field(default_factory=dict)
    # dependency name -> names of packages whose live builds depend on it.
    dependents: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Active registered packages -> the builds of their latest version.
    latest_builds: Mapping[str, Sequence[CatalogRecord]] = field(default_factory=dict)
    abi_coupled: frozenset[str] = frozenset()
    # PlannedCell.identity -> what the cell says now.
    existing: Mapping[tuple, ExistingCell] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanOptions:
    """Knobs from settings (PLAN_*); the defaults are the documented ones."""

    default_flavour: str = "conda-forge"
    noarch_python: str = "newest"
    revdep_depth: int = 1
    # Reverse dependencies of an ABI-coupled package are re-tested transitively, this deep
    # (None: the whole closure).
    abi_revdep_depth: int | None = None
    # Variant kind -> the subdirs it exists on (cuda: not on macOS); kinds absent: everywhere.
    variant_subdirs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # subdir -> the machine's virtual packages as probe records ("__glibc 2.28 0"), as the
    # install check assumes them (install_checks.platform_virtual_packages).
    platform_virtual: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class NewBuilds:
    """New builds of registered packages: their cells, plus their dependents re-tested."""

    builds: tuple[CatalogRecord, ...]
    force: bool = False
    reverse_dependencies: bool = True


@dataclass(frozen=True)
class ReleaseWave:
    """A new PyTorch release (rc or final): every active package's latest builds against it."""

    release_id: int
    force: bool = False


@dataclass(frozen=True)
class FullRun:
    """Every active package's latest builds against every supported release."""

    force: bool = False


@dataclass(frozen=True)
class Manual:
    """Chosen builds, optionally against chosen releases only."""

    builds: tuple[CatalogRecord, ...]
    release_ids: tuple[int, ...] = ()
    force: bool = False


Trigger = NewBuilds | ReleaseWave | FullRun | Manual


@dataclass(frozen=True)
class Target:
    build: CatalogRecord
    pinned: CatalogRecord | None = None
    # Only these releases (empty: every release of the plan): a pinned PyTorch build fits the
    # cells of its own release only.
    release_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class PlannedCell:
    """One cell of the plan: to run (install check first), or not applicable with the reason."""

    build_id: int
    torch_release_id: int
    variant_id: int
    platform_id: int
    python: str
    pinned_build_id: int | None
    extra_specs: tuple[str, ...]
    reason: str = ""
    # Nothing in the catalog decides the cell (no PyTorch record of the release for the platform
    # in the channel stack): it is planned, its install check decides, and this says why.
    unknown: str = ""

    @property
    def key(self) -> tuple:
        return (
            self.build_id,
            self.torch_release_id,
            self.variant_id,
            self.platform_id,
            self.python,
        )

    @property
    def identity(self) -> tuple:
        """The cell's key plus the pinned upstream build: a re-test with a pinned build is a
        cell of its own, apart from the dependent's (models/pinned_results.py)."""
        return (*self.key, self.pinned_build_id)

    @property
    def applicable(self) -> bool:
        return not self.reason


@dataclass
class Plan:
    to_run: list[PlannedCell] = field(default_factory=list)
    not_applicable: list[PlannedCell] = field(default_factory=list)
    already_decided: int = 0
    # (build id, why it cannot be planned): a spec py-rattler cannot read (a lint error).
    unplannable: list[tuple[int, str]] = field(default_factory=list)
    candidates: int = 0
    unknown: int = 0
