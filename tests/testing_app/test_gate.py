"""The promotion gate, one policy at a time (DESIGN.md section 6), then the whole report."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from packages_app.models import Build
from packages_app.models import Channel
from packages_app.models import Package
from testing_app.gate.types import FAIL
from testing_app.gate.types import PASS
from testing_app.gate.types import WAIVED
from testing_app.models import CellResult
from testing_app.models import InstallabilityCheck
from testing_app.models import Variant
from testing_app.selectors.gate import BLOCKED
from testing_app.selectors.gate import PROMOTABLE
from testing_app.selectors.gate import WAITING
from testing_app.selectors.gate import evaluate_gates
from testing_app.selectors.gate import get_build_gate
from testing_app.selectors.gate import get_set_gate
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def axes(settings):
    """PyTorch 2.5.1 (cpu + cuda12.4 on linux-64 and osx-arm64), 2.4.1 (cpu, linux-64), and an
    unsupported 2.6.0; a target channel; install sets of just pytorch."""
    settings.INSTALL_SETS = [["pytorch"]]
    linux = factories.PlatformFactory(subdir="linux-64")
    mac = factories.PlatformFactory(subdir="osx-arm64")
    cpu = factories.VariantFactory(name="cpu", kind=Variant.Kind.CPU)
    cuda = factories.VariantFactory(name="cuda12.4", kind=Variant.Kind.CUDA, needs_gpu=True)
    new = factories.TorchReleaseFactory(version="2.5.1", supported=True)
    new.variants.set([cpu, cuda])
    new.platforms.set([linux, mac])
    old = factories.TorchReleaseFactory(version="2.4.1", supported=True)
    old.variants.set([cpu])
    old.platforms.set([linux])
    unsupported = factories.TorchReleaseFactory(version="2.6.0", supported=False)
    unsupported.variants.set([cpu])
    unsupported.platforms.set([linux])
    target = Channel.objects.create(name="target", url="file:///srv/target", role="target")
    return {
        "linux": linux,
        "mac": mac,
        "cpu": cpu,
        "cuda": cuda,
        "new": new,
        "old": old,
        "unsupported": unsupported,
        "target": target,
    }


def candidate(name="kornia", *, depends=("pytorch >=2.5,<2.6",), subdir="linux-64", **kw):
    package = kw.pop("package", None) or factories.PackageFactory(name=name)
    if kw.pop("maintained", True) and not package.maintainers.exists():
        package.maintainers.add(factories.MaintainerFactory())
    staging = factories.ChannelFactory(name="staging", role=Channel.Role.STAGING)
    return factories.BuildFactory(
        channel=staging,
        package=package,
        name=name,
        subdir=subdir,
        depends=list(depends),
        license=kw.pop("license", "BSD-3-Clause"),
        **kw,
    )


def cell(build, release, variant, platform, verdict, **extra):
    return CellResult.objects.create(
        build=build,
        package=build.package,
        torch_release=release,
        variant=variant,
        platform=platform,
        verdict=verdict,
        **extra,
    )


def pass_all_cells(build, axes):
    for variant in (axes["cpu"], axes["cuda"]):
        cell(build, axes["new"], variant, axes["linux"], "passed")


def checks_ok(build, axes, *, ok=True, **extra):
    for label in ("alone", "pytorch"):
        InstallabilityCheck.objects.create(
            kind="gate",
            subject_key=f"build:{build.pk}",
            build_ids=[build.pk],
            build=build,
            target_channel=axes["target"],
            subdir=build.subdir if build.subdir != "noarch" else "linux-64",
            label=label,
            state="done",
            ok=ok,
            finished_at=timezone.now(),
            **extra,
        )


def policy(build, key):
    return get_build_gate(build.pk).policy(key)


# --- package ----------------------------------------------------------------------------------


def test_package_policy_unregistered_build_fails(axes):
    build = candidate()
    build.package = None
    build.save()
    result = policy(build, "package")
    assert result.status == FAIL
    assert "not a registered package" in result.reason


def test_package_policy_deprecated_package_fails(axes):
    build = candidate()
    Package.objects.filter(pk=build.package_id).update(status=Package.Status.DEPRECATED)
    result = policy(build, "package")
    assert result.status == FAIL
    assert "deprecated" in result.reason


def test_package_policy_without_maintainer_fails(axes):
    build = candidate(maintained=False)
    result = policy(build, "package")
    assert (result.status, result.reason) == (FAIL, "package has no maintainer")


def test_package_policy_active_with_maintainer_passes(axes):
    result = policy(candidate(), "package")
    assert result.status == PASS
    assert "1 maintainer" in result.reason


# --- required cells ---------------------------------------------------------------------------


def test_cells_policy_all_required_passed_passes(axes):
    build = candidate()
    pass_all_cells(build, axes)
    result = policy(build, "cells")
    assert result.status == PASS
    assert result.reason == "2 of 2 required cells passed"


def test_cells_policy_requires_admitted_supported_releases_and_their_variants(axes):
    # Admits 2.4.1 and 2.5.1 (and the unsupported 2.6.0, which is not required): on linux-64,
    # 2.5.1 ships cpu + cuda12.4 and 2.4.1 ships cpu: three required cells.
    build = candidate(depends=("pytorch >=2.4,<2.7",))
    result = policy(build, "cells")
    assert sorted(line.text for line in result.lines) == [
        "PyTorch 2.4.1 × cpu × linux-64",
        "PyTorch 2.5.1 × cpu × linux-64",
        "PyTorch 2.5.1 × cuda12.4 × linux-64",
    ]


def test_cells_policy_noarch_build_needs_every_platform_the_release_ships(axes):
    build = candidate(subdir="noarch")
    texts = sorted(line.text for line in policy(build, "cells").lines)
    assert texts == [
        "PyTorch 2.5.1 × cpu × linux-64",
        "PyTorch 2.5.1 × cpu × osx-arm64",
        "PyTorch 2.5.1 × cuda12.4 × linux-64",
        "PyTorch 2.5.1 × cuda12.4 × osx-arm64",
    ]


def test_cells_policy_one_failed_cell_fails_with_the_cell_in_the_reason(axes):
    build = candidate()
    cell(build, axes["new"], axes["cpu"], axes["linux"], "passed")
    job = factories.JobFactory(build=build, torch_release=axes["new"], variant=axes["cuda"])
    cell(build, axes["new"], axes["cuda"], axes["linux"], "failed", latest_job=job)
    result = policy(build, "cells")
    assert result.status == FAIL
    assert result.reason == (
        "1 of 2 required cells failed, e.g. PyTorch 2.5.1 × cuda12.4 × linux-64 failed"
    )
    failing = result.lines[0]
    assert failing.url == f"/jobs/{job.pk}/"
    assert failing.waive_cell == (axes["new"].pk, axes["cuda"].pk, axes["linux"].pk)
    assert f"/jobs/{job.pk}/" in [e.url for e in result.evidence]


def test_cells_policy_queued_cell_is_waiting_not_failing(axes):
    build = candidate()
    cell(build, axes["new"], axes["cpu"], axes["linux"], "passed")
    cell(build, axes["new"], axes["cuda"], axes["linux"], "running")
    result = policy(build, "cells")
    assert result.status == WAITING
    assert "no final result yet" in result.reason


def test_cells_policy_cell_without_result_is_waiting(axes):
    build = candidate()
    cell(build, axes["new"], axes["cpu"], axes["linux"], "passed")
    result = policy(build, "cells")
    assert result.status == WAITING
    assert any("no result yet" in line.note for line in result.lines)


def test_cells_policy_not_applicable_cell_is_not_required(axes):
    build = candidate()
    cell(build, axes["new"], axes["cpu"], axes["linux"], "passed")
    cell(build, axes["new"], axes["cuda"], axes["linux"], "not_applicable")
    assert policy(build, "cells").reason == "1 of 1 required cells passed"


def test_cells_policy_infrastructure_error_fails_and_says_so(axes):
    build = candidate()
    cell(build, axes["new"], axes["cpu"], axes["linux"], "passed")
    cell(build, axes["new"], axes["cuda"], axes["linux"], "error")
    result = policy(build, "cells")
    assert result.status == FAIL
    assert "infrastructure error" in result.lines[0].note


def test_cells_policy_waived_cell_passes_with_the_reason(axes):
    build = candidate()
    cell(build, axes["new"], axes["cpu"], axes["linux"], "passed")
    cell(build, axes["new"], axes["cuda"], axes["linux"], "waived", previous_verdict="failed")
    factories.WaiverFactory(
        build=build,
        policy="",
        torch_release=axes["new"],
        variant=axes["cuda"],
        platform=axes["linux"],
        reason="driver bug on the CI hosts",
    )
    result = policy(build, "cells")
    assert result.status == PASS
    assert result.reason == "2 required cells passed or waived (1 waived)"
    waived = next(line for line in result.lines if line.status == WAIVED)
    assert "driver bug on the CI hosts" in waived.note


def test_cells_policy_waived_cell_with_expired_waiver_fails_again(axes):
    build = candidate()
    cell(build, axes["new"], axes["cpu"], axes["linux"], "passed")
    cell(build, axes["new"], axes["cuda"], axes["linux"], "waived", previous_verdict="failed")
    factories.WaiverFactory(
        build=build,
        policy="",
        torch_release=axes["new"],
        variant=axes["cuda"],
        platform=axes["linux"],
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    assert policy(build, "cells").status == FAIL


def test_cells_policy_no_admitted_supported_release_fails(axes):
    build = candidate(depends=("pytorch >=3.0,<3.1",))
    result = policy(build, "cells")
    assert result.status == FAIL
    assert "no supported PyTorch release is admitted" in result.reason


# --- tests exist ------------------------------------------------------------------------------


def test_tests_policy_no_tests_cell_fails(axes):
    build = candidate()
    cell(build, axes["new"], axes["cpu"], axes["linux"], "no_tests")
    result = policy(build, "tests")
    assert result.status == FAIL
    assert result.reason == "conda-build found nothing to test on 1 cell"


def test_tests_policy_tests_ran_passes(axes):
    build = candidate()
    pass_all_cells(build, axes)
    assert policy(build, "tests").status == PASS


def test_tests_policy_nothing_finished_is_waiting(axes):
    build = candidate()
    cell(build, axes["new"], axes["cpu"], axes["linux"], "queued")
    assert policy(build, "tests").status == WAITING


# --- reverse dependencies ---------------------------------------------------------------------


def _dependent(axes, name="fastai", depends=("kornia >=1.0",)):
    package = factories.PackageFactory(name=name, latest_version="2.0.0")
    return factories.BuildFactory(
        channel=factories.ChannelFactory(name="upstream", role="upstream"),
        package=package,
        name=name,
        version="2.0.0",
        depends=list(depends),
    )


def _retest(dependent, upstream, axes, verdict, *, pinned=True, status="finished"):
    return factories.JobFactory(
        build=dependent,
        torch_release=axes["new"],
        variant=axes["cpu"],
        platform=axes["linux"],
        pinned_build=upstream if pinned else None,
        status=status,
        verdict=verdict if status == "finished" else "",
    )


def test_reverse_dependencies_policy_regression_fails(json_lookup_modes, axes):
    build = candidate()
    dependent = _dependent(axes)
    before = _retest(dependent, build, axes, "passed", pinned=False)
    after = _retest(dependent, build, axes, "failed")
    result = policy(build, "reverse_dependencies")
    assert result.status == FAIL
    assert result.reason == "1 re-test regressed"
    line = result.lines[0]
    assert line.text == "fastai on PyTorch 2.5.1 × cpu × linux-64"
    assert line.note == f"regression: passed before (job {before.pk}), failed with this build"
    assert line.url == f"/jobs/{after.pk}/"


def test_reverse_dependencies_policy_failure_that_already_existed_does_not_block(axes):
    build = candidate()
    dependent = _dependent(axes)
    _retest(dependent, build, axes, "failed", pinned=False)
    _retest(dependent, build, axes, "failed")
    result = policy(build, "reverse_dependencies")
    assert result.status == PASS
    assert "not a regression" in result.lines[0].note


def test_reverse_dependencies_policy_baseline_ignores_other_candidates_pins(axes):
    build = candidate()
    other = candidate(name="other-upstream")
    dependent = _dependent(axes)
    _retest(dependent, build, axes, "passed", pinned=False)
    _retest(dependent, other, axes, "failed")  # pinned to another candidate: not a baseline
    _retest(dependent, build, axes, "failed")
    assert policy(build, "reverse_dependencies").status == FAIL


def test_reverse_dependencies_policy_retest_in_flight_is_waiting(axes):
    build = candidate()
    _retest(_dependent(axes), build, axes, "", status="running")
    assert policy(build, "reverse_dependencies").status == WAITING


def test_reverse_dependencies_policy_dependent_not_retested_yet_is_waiting(axes):
    build = candidate()
    _dependent(axes)  # depends on kornia >=1.0, which this 1.0.0 build satisfies
    result = policy(build, "reverse_dependencies")
    assert result.status == WAITING
    assert result.lines[0].note == "not re-tested with this build yet"


def test_reverse_dependencies_policy_dependent_excluding_this_version_is_not_expected(axes):
    build = candidate()
    _dependent(axes, depends=("kornia <1.0",))
    result = policy(build, "reverse_dependencies")
    assert result.status == PASS
    assert result.reason == "no registered package depends on this build"


# --- installability ---------------------------------------------------------------------------


def test_installability_policy_unchecked_is_waiting(axes):
    result = policy(candidate(), "installability")
    assert result.status == WAITING
    assert result.reason == "2 of 2 solver checks still to run"


def test_installability_policy_solved_passes(axes):
    build = candidate()
    checks_ok(build, axes)
    assert policy(build, "installability").status == PASS


def test_installability_policy_unsolvable_fails_with_the_solver_text(axes):
    build = candidate()
    checks_ok(
        build,
        axes,
        ok=False,
        explanation="Cannot solve the request because of: No candidates were found for pytorch",
    )
    result = policy(build, "installability")
    assert result.status == FAIL
    assert "No candidates were found for pytorch" in result.reason
    assert any("#check-" in e.url for e in result.evidence)


def test_installability_policy_set_unsolvable_before_too_does_not_block(axes):
    build = candidate()
    checks_ok(build, axes, ok=False, baseline_ok=False, explanation="unsolvable")
    result = policy(build, "installability")
    assert result.status == PASS
    assert "unsolvable without this build too" in result.lines[0].note


def test_installability_policy_check_that_could_not_run_fails(axes):
    build = candidate()
    for label in ("alone", "pytorch"):
        InstallabilityCheck.objects.create(
            kind="gate",
            subject_key=f"build:{build.pk}",
            build=build,
            target_channel=axes["target"],
            subdir="linux-64",
            label=label,
            state="error",
            error_message="channel unreachable",
        )
    result = policy(build, "installability")
    assert result.status == FAIL
    assert "channel unreachable" in result.reason


def test_installability_policy_without_target_channel_fails(axes):
    Channel.objects.filter(role="target").delete()
    result = policy(candidate(), "installability")
    assert (result.status, result.reason) == (FAIL, "no target channel is configured")


def test_installability_policy_waiver_turns_waiting_into_waived(axes):
    build = candidate()
    factories.WaiverFactory(build=build, policy="installability", reason="solver cannot see it")
    result = policy(build, "installability")
    assert result.status == WAIVED
    assert "solver cannot see it" in result.reason


# --- lint, license, not promoted --------------------------------------------------------------


def test_lint_policy_unbounded_pytorch_fails(axes):
    result = policy(candidate(depends=("pytorch >=2.4",)), "lint")
    assert result.status == FAIL
    assert result.lines[0].status == FAIL


def test_lint_policy_bound_admitting_bugfixes_passes(axes):
    assert policy(candidate(), "lint").status == PASS


def test_lint_policy_exact_pin_on_a_non_abi_package_fails(axes):
    assert policy(candidate(depends=("pytorch ==2.5.1",)), "lint").status == FAIL


@pytest.mark.parametrize(
    "license_text",
    ["LicenseRef-NVIDIA-End-User-License-Agreement", "NVIDIA End User License Agreement"],
)
def test_license_policy_nvidia_eula_fails(axes, license_text):
    result = policy(candidate(name="cudatoolkit", license=license_text), "license")
    assert result.status == FAIL
    assert "forbids redistribution" in result.reason


def test_license_policy_configurable_list(axes, settings):
    settings.NON_REDISTRIBUTABLE_LICENSES = ["Proprietary Intel"]
    assert policy(candidate(license="LicenseRef-ProprietaryIntel"), "license").status == PASS
    assert policy(candidate(name="mkl", license="Proprietary - Intel"), "license").status == FAIL


def test_license_policy_bsd_passes(axes):
    assert policy(candidate(), "license").status == PASS


def test_not_promoted_policy_promoted_build_fails(axes):
    build = candidate(state=Build.State.PROMOTED)
    assert policy(build, "not_promoted").status == FAIL


def test_not_promoted_policy_file_already_in_target_fails(axes):
    build = candidate()
    factories.BuildFactory(
        channel=axes["target"], name=build.name, subdir=build.subdir, filename=build.filename
    )
    result = policy(build, "not_promoted")
    assert (result.status, result.reason) == (FAIL, "a file of that name is already in the target")


def test_not_promoted_policy_open_promotion_is_waiting(axes):
    build = candidate()
    item = factories.PromotionItemFactory(build=build, promotion__state="partial")
    result = policy(build, "not_promoted")
    assert result.status == WAITING
    assert f"promotion #{item.promotion_id} (partial)" in result.reason


# --- the whole report -------------------------------------------------------------------------


def test_gate_every_policy_passing_is_promotable(axes):
    build = candidate()
    pass_all_cells(build, axes)
    checks_ok(build, axes)
    report = get_build_gate(build.pk)
    assert report.status == PROMOTABLE
    assert report.summary == "Every policy passes"
    assert [p.policy for p in report.policies] == [
        "package",
        "cells",
        "reverse_dependencies",
        "installability",
        "tests",
        "lint",
        "license",
        "not_promoted",
    ]


def test_gate_waiting_alone_is_waiting_never_blocked(axes):
    build = candidate()
    pass_all_cells(build, axes)
    report = get_build_gate(build.pk)
    assert report.status == WAITING
    assert report.summary == (
        "Installable from the target channel: 2 of 2 solver checks still to run"
    )


def test_gate_failure_blocks_and_counts_the_other_reasons(axes):
    build = candidate(depends=("pytorch >=2.5",), license="NVIDIA End User License Agreement")
    pass_all_cells(build, axes)
    report = get_build_gate(build.pk)
    assert report.status == BLOCKED
    assert report.summary.startswith("Upper bound on PyTorch (lint): ")
    assert report.summary.endswith("(+1 more)")


def test_gate_policy_waiver_makes_failing_lint_promotable(axes):
    build = candidate(depends=("pytorch >=2.5",))
    pass_all_cells(build, axes)
    checks_ok(build, axes)
    factories.WaiverFactory(build=build, policy="lint", reason="upstream promised a bound")
    report = get_build_gate(build.pk)
    assert report.policy("lint").status == WAIVED
    assert report.status == PROMOTABLE
    assert report.summary == "Every policy passes (1 waived)"


def test_gate_license_is_not_waivable(axes):
    build = candidate(license="NVIDIA End User License Agreement")
    factories.WaiverFactory(build=build, policy="license", reason="please")
    assert get_build_gate(build.pk).policy("license").status == FAIL


def test_evaluate_gates_query_count_does_not_grow_with_builds(axes):
    def queries_for(count):
        for i in range(count):
            build = candidate(name=f"pkg-{count}-{i}")
            pass_all_cells(build, axes)
            checks_ok(build, axes)
            dependent = _dependent(axes, name=f"dep-{count}-{i}", depends=(build.name,))
            _retest(dependent, build, axes, "passed")
        loaded = list(
            Build.objects.filter(name__startswith=f"pkg-{count}-").select_related(
                "package", "channel"
            )
        )
        with CaptureQueriesContext(connection) as captured:
            reports = evaluate_gates(loaded)
        assert len(reports) == count
        return len(captured)

    assert queries_for(2) == queries_for(8)


def test_set_gate_judges_installability_of_the_set_as_a_whole(axes):
    vision = candidate(name="torchvision", depends=("pytorch ==2.5.1",))
    Package.objects.filter(pk=vision.package_id).update(abi_coupled=True)
    audio = candidate(name="torchaudio", depends=("pytorch >=2.5,<2.6",))
    for build in (vision, audio):
        pass_all_cells(build, axes)
    report = get_set_gate([vision.pk, audio.pk])
    assert report.status == WAITING
    assert report.installability.reason == "2 of 2 solver checks still to run"
    key = f"set:{min(vision.pk, audio.pk)},{max(vision.pk, audio.pk)}"
    for label in ("alone", "pytorch"):
        InstallabilityCheck.objects.create(
            kind="gate",
            subject_key=key,
            build_ids=sorted([vision.pk, audio.pk]),
            target_channel=axes["target"],
            subdir="linux-64",
            label=label,
            state="done",
            ok=True,
            finished_at=timezone.now(),
        )
    report = get_set_gate([vision.pk, audio.pk])
    assert report.status == PROMOTABLE
    assert report.summary == "All 2 members pass, and the set installs from the target"


def test_set_gate_one_blocked_member_blocks_the_set(axes):
    good = candidate(name="good")
    bad = candidate(name="bad", depends=("pytorch >=2.5",))
    for build in (good, bad):
        pass_all_cells(build, axes)
    report = get_set_gate([good.pk, bad.pk])
    assert report.status == BLOCKED
    assert report.summary.startswith("bad 1.0.0: Upper bound on PyTorch (lint)")
