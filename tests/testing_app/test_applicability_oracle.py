"""The planner's applicability against an oracle of its own (applicability_oracle.py) on every
torchvision, torchaudio and torchtext build of the real pytorch-channel linux-64 snapshot, plus
the cases the issue found wrong, one by one."""

import csv
import json
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from testing_app.planner.applicability import APPLICABLE as APPLICABLE_JUDGEMENT
from testing_app.planner.applicability import Applicability
from testing_app.planner.applicability import Specs
from testing_app.planner.applicability import VariantFacts
from testing_app.planner.engine import Planner
from testing_app.planner.evidence import CatalogRecord
from testing_app.planner.types import Catalog
from testing_app.planner.types import Manual
from testing_app.planner.types import PlanOptions
from testing_app.planner.types import ReleaseAxes
from testing_app.planner.types import VariantAxes
from tests.testing_app.applicability_oracle import APPLICABLE
from tests.testing_app.applicability_oracle import NOT_APPLICABLE
from tests.testing_app.applicability_oracle import UNKNOWN
from tests.testing_app.applicability_oracle import judge_cell

DEMO = Path(__file__).resolve().parents[2] / "packages_app" / "demo_data"
SNAPSHOT_FILE = DEMO / "channels/pytorch-snapshot/linux-64/repodata.json"
SNAPSHOT, OTHER, STAGING = 1, 2, 3
PLATFORMS = {"linux-64": 1}
LINUX = (("__unix", "0"), ("__linux", "5.15"), ("__glibc", "2.28"))
OPTIONS = PlanOptions(
    noarch_python="newest",
    platform_virtual={"linux-64": tuple(f"{n} {v} 0" for n, v in LINUX)},
)
TESTED = ("torchvision", "torchaudio", "torchtext")


@pytest.fixture(scope="module")
def raw_snapshot() -> dict[str, dict]:
    packages = json.loads(SNAPSHOT_FILE.read_text())["packages"]
    return {fn: {**r, "subdir": r.get("subdir") or "linux-64"} for fn, r in packages.items()}


def _catalog_record(index: int, raw: dict, channel: int = SNAPSHOT) -> CatalogRecord:
    return CatalogRecord(
        id=index,
        name=raw["name"],
        version=raw["version"],
        build_string=raw["build"],
        subdir=raw["subdir"],
        channel_id=channel,
        depends=tuple(raw.get("depends") or ()),
        constrains=tuple(raw.get("constrains") or ()),
    )


@pytest.fixture(scope="module")
def variant_rows() -> dict[int, dict]:
    with (DEMO / "reference/variants.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        i: {
            "name": r["name"],
            "kind": r["kind"],
            "version": r["version"],
            "driver": r["min_driver_cuda"],
            "pytorch": tuple(s for s in r["pytorch_channel_specs"].split("|") if s),
        }
        for i, r in enumerate(rows, start=1)
    }


def _variants(rows) -> dict[int, VariantAxes]:
    return {
        i: VariantAxes(
            i, r["name"], r["kind"], {"pytorch": r["pytorch"]}, r["version"], r["driver"]
        )
        for i, r in rows.items()
    }


def _releases(rows, *, linux_only=True) -> list[ReleaseAxes]:
    ids = {r["name"]: i for i, r in rows.items()}
    with (DEMO / "reference/torch_releases.csv").open(newline="") as handle:
        releases = list(csv.DictReader(handle))
    return [
        ReleaseAxes(
            id=100 + n,
            version=r["version"],
            variant_ids=tuple(ids[v] for v in r["variants"].split(";")),
            subdirs=tuple(s for s in r["platforms"].split(";") if s in PLATFORMS or not linux_only),
            pythons=tuple(p for p in r["python_versions"].split(";") if p),
        )
        for n, r in enumerate(releases)
    ]


def _catalog(evidence, rows) -> Catalog:
    return Catalog(
        releases=_releases(rows),
        variants=_variants(rows),
        platforms=PLATFORMS,
        evidence=evidence,
        channel_order=(OTHER, SNAPSHOT),
        channel_names={SNAPSHOT: "pytorch-snapshot", OTHER: "other"},
    )


def _plan_all(raw_snapshot, rows, builds):
    """The planner's cells of `builds`: {(build id, release, variant id, python): verdict}."""
    records = {i: _catalog_record(i, raw) for i, raw in enumerate(raw_snapshot.values(), 1)}
    catalog = _catalog(list(records.values()), rows)
    plan = Planner(catalog, OPTIONS).plan(Manual(builds=tuple(records[i] for i in builds)))
    versions = {r.id: r.version for r in catalog.releases}
    cells = {}
    for cell in plan.to_run:
        verdict = UNKNOWN if cell.unknown else APPLICABLE
        cells[(cell.build_id, versions[cell.torch_release_id], cell.variant_id, cell.python)] = (
            verdict
        )
    for cell in plan.not_applicable:
        key = (cell.build_id, versions[cell.torch_release_id], cell.variant_id, cell.python)
        cells[key] = NOT_APPLICABLE
    return cells, plan


@pytest.mark.slow
def test_the_planner_agrees_with_the_oracle_on_every_real_build(raw_snapshot, variant_rows):
    raw_by_id = dict(enumerate(raw_snapshot.values(), 1))
    records_by_name: dict[str, list[dict]] = {}
    for raw in raw_snapshot.values():
        records_by_name.setdefault(raw["name"], []).append(raw)
    tested = [i for i, raw in raw_by_id.items() if raw["name"] in TESTED]
    cells, _ = _plan_all(raw_snapshot, variant_rows, tested)

    disagreements: dict[int, list] = {}
    tally = Counter()
    for (build_id, release, variant_id, python), planned in cells.items():
        build = raw_by_id[build_id]
        if not python and any(d.split()[0] == "python" for d in build.get("depends", ())):
            expected = NOT_APPLICABLE  # no python of the release fits the build's
        else:
            expected = judge_cell(
                build, release, variant_rows[variant_id], "linux-64", python, records_by_name,
                list(LINUX),
            )  # fmt: skip
        tally[expected] += 1
        if planned != expected:
            disagreements.setdefault(build_id, []).append(
                (release, variant_rows[variant_id]["name"], python, planned, expected)
            )
    builds_with_cells = {key[0] for key in cells}
    print(
        f"\noracle: {len(tested)} builds, {len(cells)} cells ({dict(tally)}); planner agrees on "
        f"{len(builds_with_cells) - len(disagreements)} of {len(builds_with_cells)} builds"
    )
    assert len(tested) == 563
    assert builds_with_cells == set(tested)
    assert not disagreements, {raw_by_id[b]["build"]: d[:3] for b, d in disagreements.items()}


def _cells_of(raw_snapshot, rows, filename, *, extra_evidence=()):
    ids = {fn: i for i, fn in enumerate(raw_snapshot, 1)}
    records = {i: _catalog_record(i, raw) for i, raw in enumerate(raw_snapshot.values(), 1)}
    catalog = _catalog([*records.values(), *extra_evidence], rows)
    plan = Planner(catalog, OPTIONS).plan(Manual(builds=(records[ids[filename]],)))
    versions = {r.id: r.version for r in catalog.releases}
    names = {i: r["name"] for i, r in rows.items()}
    applicable = sorted(
        (versions[c.torch_release_id], names[c.variant_id], c.python)
        for c in plan.to_run
        if not c.unknown
    )
    reasons = {
        (versions[c.torch_release_id], names[c.variant_id], c.python): c.reason
        for c in plan.not_applicable
    }
    unknown = {
        (versions[c.torch_release_id], names[c.variant_id]): c.unknown
        for c in plan.to_run
        if c.unknown
    }
    return applicable, reasons, unknown


def test_pytorch_is_read_from_the_whole_stack_not_the_first_channel(raw_snapshot, variant_rows):
    # A channel ahead of the snapshot holds PyTorch, but not 2.1.0.
    first = CatalogRecord(
        id=900001, name="pytorch", version="2.0.0", build_string="py3.10_cpu_0",
        subdir="linux-64", channel_id=OTHER, depends=("python >=3.10,<3.11.0a0",),
    )  # fmt: skip
    applicable, reasons, _ = _cells_of(
        raw_snapshot, variant_rows, "torchvision-0.16.0-py310_cpu.tar.bz2", extra_evidence=[first]
    )
    assert applicable == [("2.1.0", "cpu", "3.10")]
    assert "pytorch-mutex ==1.0 cpu" in reasons[("2.1.0", "cuda11.8", "3.10")]


def test_a_cudatoolkit_bound_excludes_other_cuda_but_not_cpu(raw_snapshot, variant_rows):
    applicable, reasons, _ = _cells_of(
        raw_snapshot, variant_rows, "torchaudio-0.10.0-py36_cu102.tar.bz2"
    )
    # pytorch-1.10.0-py3.6_cpu_0 co-installs with it by metadata; cuda11.1 does not.
    assert applicable == [("1.10.0", "cpu", "3.6"), ("1.10.0", "cuda10.2", "3.6")]
    assert "cudatoolkit >=10.2,<10.3" in reasons[("1.10.0", "cuda11.1", "3.6")]


def test_pytorch_112_cuda116_is_selected_by_cudatoolkit(raw_snapshot, variant_rows):
    applicable, _, _ = _cells_of(
        raw_snapshot, variant_rows, "torchvision-0.13.0-py310_cu116.tar.bz2"
    )
    assert ("1.12.0", "cuda11.6", "3.10") in applicable
    assert ("1.12.0", "cpu", "3.10") not in applicable


def test_a_cpu_build_of_the_pre_mutex_era_gets_its_cells(raw_snapshot, variant_rows):
    applicable, _, _ = _cells_of(raw_snapshot, variant_rows, "torchaudio-0.10.0-py36_cpu.tar.bz2")
    assert ("1.10.0", "cpu", "3.6") in applicable


def test_a_release_the_stack_has_no_pytorch_of_is_unknown_not_guessed(raw_snapshot, variant_rows):
    bound = CatalogRecord(
        id=900002, name="kornia", version="0.8.0", build_string="pyhd8ed1ab_0", subdir="noarch",
        channel_id=STAGING, depends=("python >=3.9", "pytorch >=2.5,<2.6"), noarch="python",
    )  # fmt: skip
    records = [_catalog_record(i, raw) for i, raw in enumerate(raw_snapshot.values(), 1)]
    catalog = _catalog(records, variant_rows)
    plan = Planner(catalog, OPTIONS).plan(Manual(builds=(bound,)))
    unknown = [c for c in plan.to_run if c.unknown]
    assert unknown
    assert plan.unknown == len(unknown)
    assert unknown[0].unknown == "no PyTorch 2.5.1 record for linux-64 in the channel stack"
    assert all(c.reason.startswith("requires pytorch") for c in plan.not_applicable[:5])


def test_legacy_pytorch_cpu_builds_are_pytorch(raw_snapshot):
    engine = Applicability([], OPTIONS.platform_virtual)
    legacy = Specs.of(_catalog_record(1, raw_snapshot["pytorch-cpu-1.1.0-py3.7_cpu_0.tar.bz2"]))
    cpu = VariantFacts(1, "cpu", "cpu")
    cuda = VariantFacts(2, "cuda10.0", "cuda", "10.0")

    assert legacy.is_torch_build
    assert engine.judge(legacy, "1.1.0", cpu, "linux-64", "3.7") == APPLICABLE_JUDGEMENT
    assert engine.judge(legacy, "1.1.0", cuda, "linux-64", "3.7").reason == (
        "is not a cuda10.0 build of PyTorch"
    )
    assert engine.judge(legacy, "1.0.1", cpu, "linux-64", "3.7").reason == (
        "is PyTorch 1.1.0, not 1.0.1"
    )


def _conda_forge_records() -> dict[str, CatalogRecord]:
    raw = json.loads((DEMO / "channels/lockfile/conda-forge/linux-64/repodata.json").read_text())
    records = {**raw.get("packages", {}), **raw.get("packages.conda", {})}
    return {
        fn: _catalog_record(i, {**r, "subdir": "linux-64"}, channel=OTHER)
        for i, (fn, r) in enumerate(sorted(records.items()), 1)
    }


def test_conda_forge_cuda_builds_by_cuda_version_glibc_and_their_pytorch_glob():
    records = _conda_forge_records()
    torchvision = Specs.of(records["torchvision-0.22.0-cuda_py312_h4a51b5c_1.conda"])
    engine = Applicability(records.values(), OPTIONS.platform_virtual)
    cpu = VariantFacts(1, "cpu", "cpu")
    cuda126 = VariantFacts(2, "cuda12.6", "cuda", "12.6")
    cuda128 = VariantFacts(3, "cuda12.8", "cuda", "12.8")
    cuda118 = VariantFacts(4, "cuda11.8", "cuda", "11.8")

    judge = partial(engine.judge, torchvision, "2.7.1", subdir="linux-64", python="3.12")
    assert judge(variant=cuda126) == APPLICABLE_JUDGEMENT
    # conda-forge's cuda126 PyTorch admits cuda-version >=12.6,<13: a CUDA 12.8 environment too.
    assert judge(variant=cuda128) == APPLICABLE_JUDGEMENT
    assert "has no cuda11.8 build" in judge(variant=cuda118).reason
    assert judge(variant=cpu).reason  # `pytorch * cuda*` matches no CPU build of 2.7.1

    # On a glibc 2.12 machine no conda-forge PyTorch 2.7.1 (__glibc >=2.17) can be installed.
    old_glibc = Applicability(records.values(), {"linux-64": ("__glibc 2.12 0",)})
    reason = old_glibc.judge(torchvision, "2.7.1", cuda126, "linux-64", "3.12").reason
    assert (
        reason
        == "PyTorch 2.7.1 in the channel stack has no cuda12.6 build for linux-64 and Python 3.12"
    )
