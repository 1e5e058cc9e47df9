"""The planner as a pure function: real pytorch-channel records, no database."""

import csv
import json
from pathlib import Path

import pytest

from testing_app.planner.engine import Planner
from testing_app.planner.engine import reverse_closure
from testing_app.planner.evidence import CatalogRecord
from testing_app.planner.types import Catalog
from testing_app.planner.types import ExistingCell
from testing_app.planner.types import FullRun
from testing_app.planner.types import Manual
from testing_app.planner.types import NewBuilds
from testing_app.planner.types import PlanOptions
from testing_app.planner.types import ReleaseAxes
from testing_app.planner.types import ReleaseWave
from testing_app.planner.types import VariantAxes

DEMO = Path(__file__).resolve().parents[2] / "packages_app" / "demo_data"
SNAPSHOT, MUTEX, STAGING = 1, 2, 3
PLATFORMS = {"linux-64": 1, "win-64": 2, "osx-64": 3, "osx-arm64": 4, "linux-aarch64": 5}
OPTIONS = PlanOptions(
    default_flavour="conda-forge",
    variant_subdirs={"cuda": ("linux-64", "linux-aarch64", "win-64"), "rocm": ("linux-64",)},
)


FILENAMES: dict[int, str] = {}  # record id -> file name, to find builds in the tests


def _records(path: Path, channel: int, start: int) -> list[CatalogRecord]:
    raw = json.loads(path.read_text())
    records = []
    for key in ("packages", "packages.conda"):
        for filename, r in sorted((raw.get(key) or {}).items()):
            records.append(
                CatalogRecord(
                    id=start + len(records),
                    name=r["name"],
                    version=r["version"],
                    build_string=r["build"],
                    subdir=r.get("subdir") or raw["info"]["subdir"],
                    channel_id=channel,
                    depends=tuple(r.get("depends") or ()),
                    constrains=tuple(r.get("constrains") or ()),
                )
            )
            FILENAMES[records[-1].id] = filename
    return records


@pytest.fixture(scope="module")
def snapshot():
    return _records(DEMO / "channels/pytorch-snapshot/linux-64/repodata.json", SNAPSHOT, 1)


@pytest.fixture(scope="module")
def variants():
    with (DEMO / "reference/variants.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        i: VariantAxes(
            id=i,
            name=row["name"],
            kind=row["kind"],
            select_specs={
                "pytorch": tuple(s for s in row["pytorch_channel_specs"].split("|") if s),
                "conda-forge": tuple(s for s in row["conda_forge_specs"].split("|") if s),
            },
            version=row["version"],
            driver=row["min_driver_cuda"],
        )
        for i, row in enumerate(rows, start=1)
    }


def _releases(variants, versions) -> list[ReleaseAxes]:
    ids = {v.name: k for k, v in variants.items()}
    with (DEMO / "reference/torch_releases.csv").open(newline="") as handle:
        rows = {row["version"]: row for row in csv.DictReader(handle)}
    return [
        ReleaseAxes(
            id=100 + i,
            version=version,
            variant_ids=tuple(ids[v] for v in rows[version]["variants"].split(";")),
            subdirs=tuple(rows[version]["platforms"].split(";")),
            pythons=tuple(rows[version]["python_versions"].split(";")),
        )
        for i, version in enumerate(versions)
    ]


def _catalog(snapshot, variants, versions, **extra) -> Catalog:
    evidence = [r for r in snapshot if r.name in {"pytorch", "pytorch-cuda", "torchtriton"}]
    evidence += _records(DEMO / "channels/lockfile/pytorch/noarch/repodata.json", MUTEX, 90000)
    return Catalog(
        releases=_releases(variants, versions),
        variants=variants,
        platforms=PLATFORMS,
        evidence=evidence,
        channel_order=(SNAPSHOT, MUTEX),
        channel_names={SNAPSHOT: "pytorch-snapshot", MUTEX: "pytorch", STAGING: "staging"},
        **extra,
    )


def _build(snapshot, filename) -> CatalogRecord:
    return next(r for r in snapshot if FILENAMES.get(r.id) == filename)


def _cells(plan, catalog, variants):
    versions = {r.id: r.version for r in catalog.releases}
    subdirs = {v: k for k, v in PLATFORMS.items()}
    return sorted(
        (
            versions[c.torch_release_id],
            variants[c.variant_id].name,
            subdirs[c.platform_id],
            c.python,
        )
        for c in plan.to_run
    )


def _noarch(name, depends, *, id, version="1.0", channel=STAGING) -> CatalogRecord:
    return CatalogRecord(
        id=id,
        name=name,
        version=version,
        build_string="pyhd8ed1ab_0",
        subdir="noarch",
        channel_id=channel,
        depends=tuple(depends),
        noarch="python",
    )


def test_plan_torchvision_cu121_build_selects_its_one_cell(snapshot, variants):
    catalog = _catalog(snapshot, variants, ["2.0.1", "2.1.0", "2.1.2"])
    build = _build(snapshot, "torchvision-0.16.0-py310_cu121.tar.bz2")

    plan = Planner(catalog, OPTIONS).plan(Manual(builds=(build,)))

    assert _cells(plan, catalog, variants) == [("2.1.0", "cuda12.1", "linux-64", "3.10")]
    assert plan.to_run[0].extra_specs == ("pytorch-cuda 12.1.*",)  # the pytorch channel's way
    reasons = {
        (variants[c.variant_id].name, c.torch_release_id): c.reason for c in plan.not_applicable
    }
    release_210 = catalog.releases[1].id
    assert reasons[("cpu", release_210)] == (
        "needs pytorch-mutex ==1.0 cuda; cpu (pytorch-mutex cpu) has pytorch-mutex 1.0 cpu"
    )
    assert reasons[("cuda11.8", release_210)] == (
        "needs pytorch-cuda 12.1.*; cuda11.8 (pytorch-cuda) has pytorch-cuda 11.8 0"
    )
    assert reasons[("cuda12.1", catalog.releases[2].id)] == "requires pytorch ==2.1.0"
    assert reasons[("rocm5.6", release_210)] == "no conda channel ships PyTorch for rocm5.6"


def test_plan_torchvision_cpu_build_is_excluded_from_cuda_by_its_mutex(snapshot, variants):
    catalog = _catalog(snapshot, variants, ["2.1.0"])
    build = _build(snapshot, "torchvision-0.16.0-py311_cpu.tar.bz2")

    plan = Planner(catalog, OPTIONS).plan(Manual(builds=(build,)))

    assert _cells(plan, catalog, variants) == [("2.1.0", "cpu", "linux-64", "3.11")]
    cuda = next(c for c in plan.not_applicable if variants[c.variant_id].name == "cuda12.1")
    assert "pytorch-mutex ==1.0 cpu" in cuda.reason
    assert "has pytorch-mutex 1.0 cuda" in cuda.reason


def test_plan_noarch_package_newest_python_every_shipped_platform(variants):
    catalog = _catalog([], variants, ["2.5.1"])
    kornia = _noarch("kornia", ["python >=3.9", "pytorch >=2.0,<2.6"], id=5)

    plan = Planner(catalog, OPTIONS).plan(Manual(builds=(kornia,)))

    cells = _cells(plan, catalog, variants)
    assert {c[3] for c in cells} == {"3.12"}  # 2.5.1 ships 3.9-3.12: the newest one
    assert {c[2] for c in cells} == {"linux-64", "win-64", "osx-arm64", "linux-aarch64"}
    assert ("2.5.1", "cuda12.4", "osx-arm64", "3.12") not in cells  # no CUDA on macOS
    assert ("2.5.1", "cpu", "osx-arm64", "3.12") in cells
    assert not any(c[1].startswith("rocm") for c in cells)


def test_plan_noarch_python_all_policy_plans_every_python(variants):
    catalog = _catalog([], variants, ["2.5.1"])
    kornia = _noarch("kornia", ["python >=3.10", "pytorch"], id=5)
    options = PlanOptions(default_flavour="conda-forge", noarch_python="all")

    plan = Planner(catalog, options).plan(Manual(builds=(kornia,)))

    assert {c.python for c in plan.to_run} == {"3.10", "3.11", "3.12"}


def test_plan_python_build_for_a_python_the_release_lacks_is_not_applicable(variants):
    catalog = _catalog([], variants, ["2.1.0"])
    py37 = CatalogRecord(
        id=4, name="old", version="1.0", build_string="py37_0", subdir="linux-64",
        channel_id=STAGING, depends=("python >=3.7,<3.8.0a0", "pytorch >=2"),
    )  # fmt: skip

    plan = Planner(catalog, OPTIONS).plan(Manual(builds=(py37,)))

    assert plan.to_run == []
    assert {c.reason for c in plan.not_applicable} == {
        "needs python >=3.7,<3.8.0a0; PyTorch 2.1.0 ships Python 3.8, 3.9, 3.10, 3.11"
    }


def test_plan_new_build_retests_dependents_with_it_pinned(variants):
    upstream = _noarch("kornia", ["python >=3.9", "pytorch >=2.0"], id=10, version="0.8.0")
    dependent = _noarch("fastai", ["python >=3.9", "kornia >=0.7", "pytorch"], id=11)
    excluded = _noarch("old-user", ["python >=3.9", "kornia <0.8", "pytorch"], id=12)
    catalog = _catalog(
        [],
        variants,
        ["2.5.1"],
        dependents={"kornia": frozenset({"fastai", "old-user"})},
        latest_builds={"fastai": [dependent], "old-user": [excluded], "kornia": [upstream]},
    )

    plan = Planner(catalog, OPTIONS).plan(NewBuilds(builds=(upstream,)))

    pinned = {(c.build_id, c.pinned_build_id) for c in plan.to_run}
    assert (10, None) in pinned  # kornia's own cells
    assert (11, 10) in pinned  # fastai re-tested with the new kornia pinned
    assert not any(c.build_id == 12 for c in plan.to_run)  # its bound excludes kornia 0.8.0
    assert not any(c.build_id == 12 for c in plan.not_applicable)  # and its cells stay as they are


def test_plan_abi_coupled_package_retests_transitive_dependents(variants):
    upstream = _noarch("torchvision", ["python >=3.9", "pytorch"], id=20, version="0.20.0")
    direct = _noarch("kornia", ["python >=3.9", "torchvision"], id=21)
    transitive = _noarch("fastai", ["python >=3.9", "kornia"], id=22)
    graph = {"torchvision": frozenset({"kornia"}), "kornia": frozenset({"fastai"})}
    latest = {"kornia": [direct], "fastai": [transitive]}

    def retested(abi_coupled: frozenset, depth) -> set:
        catalog = _catalog(
            [], variants, ["2.5.1"], dependents=graph, latest_builds=latest, abi_coupled=abi_coupled
        )
        options = PlanOptions(default_flavour="conda-forge", abi_revdep_depth=depth)
        plan = Planner(catalog, options).plan(NewBuilds(builds=(upstream,)))
        return {c.build_id for c in plan.to_run if c.pinned_build_id == 20}

    assert retested(frozenset(), None) == {21}  # direct dependents only
    assert retested(frozenset({"torchvision"}), None) == {21, 22}  # ABI: the whole closure
    assert retested(frozenset({"torchvision"}), 1) == {21}  # depth configurable


def _pytorch_stand_in(id: int, version: str = "2.5.1") -> CatalogRecord:
    return CatalogRecord(
        id=id, name="pytorch", version=version, build_string="cpu_0", subdir="linux-64",
        channel_id=STAGING,
    )  # fmt: skip


def test_plan_pytorch_build_retests_its_dependents_pinned_in_its_own_release(variants):
    stand_in = _pytorch_stand_in(30)
    user = _noarch("kornia", ["python >=3.9", "pytorch"], id=31)
    excluded = _noarch("old-user", ["python >=3.9", "pytorch <2.5"], id=32)
    catalog = _catalog(
        [],
        variants,
        ["2.5.1", "2.4.1"],
        dependents={"pytorch": frozenset({"kornia", "old-user"})},
        latest_builds={"kornia": [user], "old-user": [excluded]},
    )
    catalog.evidence = [*catalog.evidence, stand_in]

    plan = Planner(catalog, OPTIONS).plan(NewBuilds(builds=(stand_in,)))

    own = [c for c in plan.to_run if c.pinned_build_id is None]
    retests = [c for c in plan.to_run if c.pinned_build_id == 30]
    assert {c.build_id for c in own} == {30}
    assert {c.build_id for c in retests} == {31}  # old-user's bound excludes pytorch 2.5.1
    versions = {r.id: r.version for r in catalog.releases}
    assert {versions[c.torch_release_id] for c in retests} == {"2.5.1"}  # never the 2.4.1 cells
    assert plan.unplannable == []


def test_plan_pytorch_build_without_its_release_says_why_its_dependents_wait(variants):
    stand_in = _pytorch_stand_in(33, version="2.6.0")
    user = _noarch("kornia", ["python >=3.9", "pytorch"], id=34)
    catalog = _catalog(
        [],
        variants,
        ["2.5.1"],
        dependents={"pytorch": frozenset({"kornia"})},
        latest_builds={"kornia": [user]},
    )

    plan = Planner(catalog, OPTIONS).plan(NewBuilds(builds=(stand_in,)))

    assert not any(c.pinned_build_id for c in plan.to_run)
    assert plan.unplannable == [
        (
            33,
            "no PyTorch release 2.6.0 is registered: its dependents cannot be re-tested with "
            "it until it is",
        )
    ]


def test_plan_coordinated_set_members_are_retested_with_each_other(variants):
    stand_in = _pytorch_stand_in(35)
    vision = _noarch("mv-vision", ["python >=3.9", "pytorch >=2.5,<2.6"], id=36)
    audio = _noarch("mv-audio", ["python >=3.9", "pytorch ==2.5.1", "mv-vision"], id=37)
    catalog = _catalog(
        [],
        variants,
        ["2.5.1"],
        dependents={"pytorch": frozenset({"mv-vision", "mv-audio"}), "mv-vision": {"mv-audio"}},
        latest_builds={"mv-vision": [vision], "mv-audio": [audio]},
    )
    catalog.evidence = [*catalog.evidence, stand_in]

    plan = Planner(catalog, OPTIONS).plan(NewBuilds(builds=(stand_in, vision, audio)))

    pairs = {(c.build_id, c.pinned_build_id) for c in plan.to_run}
    # Each member's own cells, and every dependent re-tested with each new upstream build:
    # the members of the set are not left as re-tests the gate waits for.
    assert {(35, None), (36, None), (37, None)} <= pairs
    assert {(36, 35), (37, 35), (37, 36)} <= pairs


def test_plan_stack_holding_pytorch_without_the_variant_excludes_it(variants):
    stand_in = CatalogRecord(
        id=40, name="pytorch", version="2.5.1", build_string="cpu_sample_0", subdir="linux-64",
        channel_id=STAGING,
    )  # fmt: skip
    sample = CatalogRecord(
        id=41, name="sample", version="1.0", build_string="0", subdir="linux-64",
        channel_id=STAGING, depends=("pytorch >=2.4,<2.6",),
    )  # fmt: skip
    catalog = _catalog([], variants, ["2.5.1"])
    catalog.evidence = [*catalog.evidence, stand_in]
    catalog.channel_order = (STAGING, SNAPSHOT, MUTEX)

    plan = Planner(catalog, OPTIONS).plan(Manual(builds=(sample,)))

    assert _cells(plan, catalog, variants) == [("2.5.1", "cpu", "linux-64", "")]
    cuda = next(c for c in plan.not_applicable if variants[c.variant_id].name == "cuda12.4")
    assert cuda.reason == "PyTorch 2.5.1 in the channel stack has no cuda12.4 build for linux-64"


def test_plan_decided_cells_are_skipped_unless_forced_or_pinned_differently(variants):
    kornia = _noarch("kornia", ["python >=3.9", "pytorch"], id=50)
    catalog = _catalog([], variants, ["2.5.1"])
    first = Planner(catalog, OPTIONS).plan(Manual(builds=(kornia,)))
    catalog.existing = {c.identity: ExistingCell("passed") for c in first.to_run}
    catalog.existing |= {c.identity: ExistingCell("not_applicable") for c in first.not_applicable}

    again = Planner(catalog, OPTIONS).plan(Manual(builds=(kornia,)))
    forced = Planner(catalog, OPTIONS).plan(Manual(builds=(kornia,), force=True))
    catalog.existing = {c.identity: ExistingCell("error") for c in first.to_run}
    after_error = Planner(catalog, OPTIONS).plan(Manual(builds=(kornia,)))

    assert (again.to_run, again.not_applicable) == ([], [])
    assert again.already_decided == first.candidates
    assert len(forced.to_run) == len(first.to_run)
    assert len(after_error.to_run) == len(first.to_run)  # infrastructure errors are re-run


def test_plan_unreadable_spec_is_reported_not_raised(variants):
    broken = _noarch("broken", ["python >=3.9", "numpy >=<1"], id=60)
    fine = _noarch("fine", ["python >=3.9", "pytorch"], id=61)
    catalog = _catalog([], variants, ["2.5.1"])

    plan = Planner(catalog, OPTIONS).plan(Manual(builds=(broken, fine)))

    assert [i for i, _ in plan.unplannable] == [60]
    assert "numpy >=<1" in plan.unplannable[0][1]
    assert {c.build_id for c in plan.to_run} == {61}


def test_plan_release_wave_and_full_run_take_the_latest_builds(variants):
    kornia = _noarch("kornia", ["python >=3.9", "pytorch"], id=70)
    catalog = _catalog([], variants, ["2.5.1", "2.4.1"], latest_builds={"kornia": [kornia]})
    wave_release = catalog.releases[1].id

    wave = Planner(catalog, OPTIONS).plan(ReleaseWave(release_id=wave_release))
    full = Planner(catalog, OPTIONS).plan(FullRun())

    assert {c.torch_release_id for c in wave.to_run} == {wave_release}
    assert {c.torch_release_id for c in full.to_run} == {r.id for r in catalog.releases}


def test_reverse_closure_depth_and_cycles():
    graph = {"a": ["b"], "b": ["c", "a"], "c": ["d"]}
    assert reverse_closure(graph, "a", depth=1) == {"b": 1}
    assert reverse_closure(graph, "a", depth=None) == {"b": 1, "c": 2, "d": 3}
    assert reverse_closure(graph, "z", depth=None) == {}
