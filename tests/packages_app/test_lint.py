"""The upper-bound lint (packages_app.lint.rules) on real records of the pytorch-channel
snapshot, the rules it adds for ABI-coupled packages and key dependencies, the report command
and the page."""

import json
from functools import cache
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from packages_app.lint.rules import ABI_NOT_PINNED
from packages_app.lint.rules import KEY_DEPENDENCY_UNBOUNDED
from packages_app.lint.rules import PYTORCH_EXCLUDES_BUGFIX
from packages_app.lint.rules import PYTORCH_UNBOUNDED
from packages_app.lint.rules import SPEC_INVALID
from packages_app.lint.rules import LintFinding
from packages_app.lint.rules import lint_build
from packages_app.lint.rules import lint_build_depends
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.services.catalog import import_repodata
from packages_app.services.packages import register_package
from tests import factories

SNAPSHOT = (
    Path(__file__).resolve().parents[2]
    / "packages_app/demo_data/channels/pytorch-snapshot/linux-64/repodata.json"
)


@cache
def _records() -> dict[str, dict]:
    data = json.loads(SNAPSHOT.read_text())
    return {**data.get("packages", {}), **data.get("packages.conda", {})}


def lint_record(filename: str, *, abi_coupled: bool) -> list[LintFinding]:
    """The lint of one real repodata record, by its file name in the snapshot."""
    record = _records()[filename]
    return lint_build_depends(
        name=record["name"],
        depends=record.get("depends", []),
        constrains=record.get("constrains", []),
        abi_coupled=abi_coupled,
        noarch=record.get("noarch", "") or "",
    )


def codes(findings: list[LintFinding]) -> list[str]:
    return [f.code for f in findings]


def test_lint_unversioned_pytorch_dependency_is_unbounded_error():
    (finding,) = lint_record("ignite-0.1.0-py36_0.tar.bz2", abi_coupled=False)
    assert finding == LintFinding(
        code=PYTORCH_UNBOUNDED,
        severity="error",
        message="pytorch has no upper bound: a future PyTorch would be installed with it "
        "untested. Bound it below the next minor release, e.g. <2.6.",
        spec="pytorch",
    )


def test_lint_major_wildcard_is_a_bound_that_admits_bugfix_releases():
    # ignite 0.4.0 depends on "pytorch 1.*.*": below 2.0, every 1.x bugfix admitted.
    assert lint_record("ignite-0.4.0-py35_0.tar.bz2", abi_coupled=False) == []


def test_lint_exact_pin_excludes_bugfix_unless_abi_coupled():
    findings = lint_record("torchdata-0.7.0-py310.tar.bz2", abi_coupled=False)
    assert codes(findings) == [PYTORCH_EXCLUDES_BUGFIX]
    assert findings[0].message == (
        "pytorch 2.1.0 excludes 2.1.1, a bugfix release of 2.1.0; prefer <2.2.0"
    )
    assert findings[0].spec == "pytorch 2.1.0"
    # The same pin is exactly right for a package built against one PyTorch.
    assert lint_record("torchdata-0.7.0-py310.tar.bz2", abi_coupled=True) == []


def test_lint_abi_coupled_torchvision_pin_passes_and_numpy_warns():
    findings = lint_record("torchvision-0.16.0-py310_cpu.tar.bz2", abi_coupled=True)
    assert codes(findings) == [KEY_DEPENDENCY_UNBOUNDED]
    assert findings[0].severity == "warning"
    assert findings[0].spec == "numpy >=1.11"
    assert "pytorch" not in findings[0].spec


def test_lint_exact_pin_with_build_string_is_read_by_rattler():
    # torchdistx pins "pytorch 1.11.0 py3.7_cpu_0": version and build, one exact artifact.
    filename = "torchdistx-0.1.0-py37_cpu_0.tar.bz2"
    assert codes(lint_record(filename, abi_coupled=False)) == [PYTORCH_EXCLUDES_BUGFIX]
    assert lint_record(filename, abi_coupled=True) == []


def test_lint_dev_pin_admits_no_release_at_all():
    filename = "torchcsprng-0.2.0-py36_cu110.tar.bz2"  # "pytorch 1.8.0.dev20210208"
    excludes = [
        f for f in lint_record(filename, abi_coupled=False) if f.code == PYTORCH_EXCLUDES_BUGFIX
    ]
    assert "admits no PyTorch X.Y.Z release" in excludes[0].message
    assert codes(lint_record(filename, abi_coupled=True)) == [KEY_DEPENDENCY_UNBOUNDED]


def test_lint_other_pytorch_names_count_as_pytorch():
    findings = lint_record("torchvision-cpu-0.2.1-py27_1.tar.bz2", abi_coupled=False)
    assert codes(findings) == [PYTORCH_UNBOUNDED, KEY_DEPENDENCY_UNBOUNDED]
    assert findings[0].spec == "pytorch-cpu >=0.4"


def test_lint_pytorch_itself_and_packages_without_pytorch_get_no_pytorch_findings():
    assert lint_record("pytorch-2.1.0-py3.10_cpu_0.tar.bz2", abi_coupled=False) == []
    faiss = lint_record("faiss-cpu-0.1-py27_cuda8.0.61hc0154d9_1.tar.bz2", abi_coupled=False)
    assert codes(faiss) == [KEY_DEPENDENCY_UNBOUNDED]  # numpy >=1.11; python is bounded


@pytest.mark.parametrize(
    ("spec", "abi_coupled", "expected"),
    [
        ("pytorch >=2.4,<=2.5.0", False, [PYTORCH_EXCLUDES_BUGFIX]),
        ("pytorch >=2.4,<2.6", False, []),
        ("pytorch 2.5.*", False, []),
        ("pytorch ~=2.5.0", False, []),
        ("pytorch <2.5.1", False, [PYTORCH_EXCLUDES_BUGFIX]),
        ("pytorch >=2.4,<2.6", True, [ABI_NOT_PINNED]),
        ("pytorch <=2.5.0", True, [ABI_NOT_PINNED, PYTORCH_EXCLUDES_BUGFIX]),
        ("pytorch ==2.5.1", True, []),
        ("pytorch 2.5.*", True, []),
        ("pytorch", True, [PYTORCH_UNBOUNDED, ABI_NOT_PINNED]),
        ("pytorch !=2.5.0", False, [PYTORCH_UNBOUNDED]),
        ("pytorch >=2.4,<<2.6", False, [SPEC_INVALID]),
    ],
)
def test_lint_rules(spec, abi_coupled, expected):
    findings = lint_build_depends(name="x", depends=[spec], constrains=[], abi_coupled=abi_coupled)
    assert codes(findings) == expected


def test_lint_constrains_bound_an_open_dependency():
    findings = lint_build_depends(
        name="x", depends=["pytorch"], constrains=["pytorch <2.6"], abi_coupled=False
    )
    assert findings == []
    # A constraint alone is no dependency: nothing to say about PyTorch.
    assert lint_build_depends(name="x", depends=[], constrains=["pytorch"], abi_coupled=False) == []


def test_lint_python_is_exempt_on_noarch_python_only():
    depends = ["python >=3.9", "pytorch >=2.4,<2.6"]
    assert (
        lint_build_depends(
            name="x", depends=depends, constrains=[], abi_coupled=False, noarch="python"
        )
        == []
    )
    findings = lint_build_depends(name="x", depends=depends, constrains=[], abi_coupled=False)
    assert [(f.code, f.spec) for f in findings] == [(KEY_DEPENDENCY_UNBOUNDED, "python >=3.9")]


@pytest.fixture
def snapshot_catalog(db):
    channel = Channel.objects.create(name="pytorch-snapshot", url=SNAPSHOT.parent.parent.as_uri())
    import_repodata(channel=channel, source=str(SNAPSHOT))
    # As seed_demo registers them: the ABI-coupled packages pin one exact PyTorch.
    for name, abi_coupled in [
        ("torchvision", True),
        ("torchaudio", True),
        ("torchtext", True),
        ("torchcsprng", True),
        ("torchdata", False),
        ("ignite", False),
    ]:
        register_package(name=name, summary="", abi_coupled=abi_coupled)
    return channel


@pytest.mark.slow
def test_lint_build_takes_abi_coupling_from_the_registered_package(snapshot_catalog):
    torchvision = Build.objects.select_related("package").get(
        filename="torchvision-0.16.0-py310_cpu.tar.bz2"
    )
    assert codes(lint_build(torchvision)) == [KEY_DEPENDENCY_UNBOUNDED]
    assert PYTORCH_EXCLUDES_BUGFIX in codes(lint_build(torchvision, abi_coupled=False))
    unregistered = Build.objects.get(filename="torchdistx-0.1.0-py37_cpu_0.tar.bz2")
    assert unregistered.package is None
    assert codes(lint_build(unregistered)) == [PYTORCH_EXCLUDES_BUGFIX]


@pytest.mark.slow
def test_lint_report_counts_the_real_snapshot(snapshot_catalog):
    out = StringIO()
    call_command("lint_report", "--channel", "pytorch-snapshot", "--examples", "2", stdout=out)
    report = out.getvalue()
    assert report.startswith("pytorch-snapshot: 2181 builds linted, ")
    # ignite (15, plain "pytorch"), ignite-nightly (48), torchtriton (8), the -cpu packages.
    assert "pytorch-unbounded (error): 83 builds in 5 packages" in report
    # torchdata pins exactly but is not ABI-coupled; torchdistx(-cc) are not registered.
    assert "pytorch-excludes-bugfix (error): 81 builds in 3 packages" in report
    assert "    torchdata: 31\n" in report
    assert "abi-not-pinned (error): 0 builds" in report
    assert (
        "e.g. linux-64/torchdata-0.3.0-py310.tar.bz2: pytorch 1.11.0 excludes 1.11.1, a bugfix "
        "release of 1.11.0; prefer <1.12.0"
    ) in report
    out = StringIO()
    call_command(
        "lint_report", "--channel", "pytorch-snapshot", "--package", "torchvision", stdout=out
    )
    assert "pytorch-snapshot: 303 builds linted, 24 clean, 0 with errors" in out.getvalue()


@pytest.mark.django_db
def test_lint_report_unknown_channel_is_a_clear_error():
    with pytest.raises(CommandError, match="No channel 'nope'"):
        call_command("lint_report", "--channel", "nope")


@pytest.mark.django_db
def test_package_page_shows_lint_findings_of_the_latest_version(client):
    package = factories.PackageFactory(name="torch-tight")
    for version, spec in [("0.1", "pytorch >=2.4,<2.6"), ("0.2", "pytorch >=2.4,<=2.5.0")]:
        factories.BuildFactory(
            name="torch-tight", package=package, version=version, depends=[spec, "numpy"]
        )
    content = client.get("/packages/torch-tight/").content.decode()
    lint = content[content.index('id="lint"') :]
    assert "torch-tight 0.2" in lint
    assert "pytorch-excludes-bugfix" in lint
    assert "pytorch &gt;=2.4,&lt;=2.5.0 excludes 2.5.1, a bugfix release of 2.5.0" in lint
    assert "numpy has no upper bound" in lint
    clean = factories.PackageFactory(name="torch-fine")
    factories.BuildFactory(name="torch-fine", package=clean, depends=["pytorch >=2.4,<2.6"])
    assert "pass the lint" in client.get("/packages/torch-fine/").content.decode()


def test_lint_python_bound_by_python_abi_pin_counts_as_bounded():
    # conda-forge's debugpy-1.8.20-py314h42812f9_0.conda (linux-64) depends on a bare python
    # and `python_abi 3.14.* *_cp314`, which pins the interpreter series.
    depends = ["python", "libgcc >=14", "libstdcxx >=14", "python_abi 3.14.* *_cp314"]
    assert (
        lint_build_depends(name="debugpy", depends=depends, constrains=[], abi_coupled=False) == []
    )
    findings = lint_build_depends(
        name="debugpy", depends=["python"], constrains=[], abi_coupled=False
    )
    assert codes(findings) == [KEY_DEPENDENCY_UNBOUNDED]


@pytest.mark.django_db
def test_lint_build_in_the_noarch_subdir_without_noarch_field_is_noarch_python():
    # Records out of lock files lose `noarch`; appnope-0.1.4-pyhd8ed1ab_1 depends on python >=3.9.
    build = factories.BuildFactory(
        name="appnope", subdir="noarch", noarch="", depends=["python >=3.9"]
    )
    assert lint_build(build) == []
    build.subdir = "linux-64"
    assert codes(lint_build(build)) == [KEY_DEPENDENCY_UNBOUNDED]


@pytest.mark.parametrize("name", ["pytorch-cpu", "pytorch-gpu"])
def test_legacy_pytorch_names_count_as_pytorch_for_the_upper_bound_lint(name):
    # torchvision-cpu and friends of the 0.x-1.1 pytorch channel depended on pytorch-cpu.
    findings = lint_build_depends(
        name="torchvision-cpu", depends=[f"{name} >=1.0"], constrains=[], abi_coupled=False
    )
    assert [f.code for f in findings] == [PYTORCH_UNBOUNDED]
    bounded = lint_build_depends(
        name="torchvision-cpu", depends=[f"{name} >=1.0,<1.2"], constrains=[], abi_coupled=False
    )
    assert bounded == []
