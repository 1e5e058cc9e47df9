"""The policies of the promotion gate (DESIGN.md section 6) about the build's results: package,
required cells, tests exist, reverse dependencies; each a pure function of one build and the
inputs selectors/gate_inputs.py read for it (the artifact's own policies are in
selectors/gate_artifact.py), plus the helpers both share. `waiting` is never a failure: it means
a result is still to come.

No query here: builds, jobs and waivers come in loaded. The policies compare them against the
models' status and verdict vocabularies (Package.Status, Job.Status, Verdict), which is why
they import those (pyproject.toml's import contracts say so)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from rattler import BuildString
from rattler import MatchSpec
from rattler import PackageRecord
from rattler.exceptions import InvalidMatchSpecError
from rattler.exceptions import InvalidVersionError
from rattler.exceptions import InvalidVersionSpecError

from distro_site.url_templates import job_url
from distro_site.url_templates import package_url
from packages_app.lint.rules import PYTORCH_NAMES
from packages_app.lint.torch_releases import admitted_torch_releases
from packages_app.models import Package
from testing_app.gate.types import FAIL
from testing_app.gate.types import PASS
from testing_app.gate.types import POLICY_CELLS
from testing_app.gate.types import POLICY_PACKAGE
from testing_app.gate.types import POLICY_REVERSE_DEPENDENCIES
from testing_app.gate.types import POLICY_TESTS
from testing_app.gate.types import WAITING
from testing_app.gate.types import WAIVED
from testing_app.gate.types import Evidence
from testing_app.gate.types import GateLine
from testing_app.gate.types import PolicyResult
from testing_app.gate.types import plural
from testing_app.models import Job
from testing_app.models.verdicts import IN_FLIGHT_VERDICTS
from testing_app.models.verdicts import Verdict

if TYPE_CHECKING:
    from packages_app.models import Build
    from testing_app.models import Waiver
    from testing_app.selectors.gate_inputs import GateInputs

# Verdicts that count as the package's (or the infrastructure's) failure on a cell.
FAILING_VERDICTS = frozenset(
    {Verdict.FAILED, Verdict.UNINSTALLABLE, Verdict.TIMEOUT, Verdict.ERROR}
)
# A package that is at risk is still in the distribution: a passing build is how it recovers.
PROMOTABLE_PACKAGE_STATES = (Package.Status.ACTIVE, Package.Status.AT_RISK)
# Which of a cell's rows (one per python) speaks for it: the worst, in this order.
RANK = {
    verdict: rank
    for rank, verdict in enumerate(
        [*sorted(FAILING_VERDICTS), *sorted(IN_FLIGHT_VERDICTS), Verdict.NO_TESTS]
    )
}
MAX_LINES = 200
# The verdicts the per-cell code compares against, as plain strings: the queue compares tens of
# thousands of cells, and reading an enum member costs more than the comparison itself.
_WAIVED = str(Verdict.WAIVED.value)
_FAILED = str(Verdict.FAILED.value)
_NOT_APPLICABLE = str(Verdict.NOT_APPLICABLE.value)
_INSTALLABLE = str(Verdict.INSTALLABLE.value)
_NO_TESTS = str(Verdict.NO_TESTS.value)
_ERROR = str(Verdict.ERROR.value)
_IN_FLIGHT = frozenset(str(v.value) for v in IN_FLIGHT_VERDICTS)
_FAILING = frozenset(str(v.value) for v in FAILING_VERDICTS)
_LAST_RANK = len(RANK)


def cell_label(inputs: GateInputs, release_id: int, variant_id: int, platform_id: int) -> str:
    release = next((r for r in inputs.releases if r.pk == release_id), None)
    version = release.version if release else "(unsupported release)"
    variant, platform = inputs.variants[variant_id].name, inputs.platforms[platform_id].subdir
    return f"PyTorch {version} × {variant} × {platform}"


def waiver_note(waiver: Waiver) -> str:
    who = waiver.created_by.get_username() if waiver.created_by else "a release manager"
    until = f", until {waiver.expires_at:%Y-%m-%d %H:%M}" if waiver.expires_at else ""
    return f"waived by {who} on {waiver.created_at:%Y-%m-%d}{until}: {waiver.reason}"


def policy_waiver(build: Build, policy: str, inputs: GateInputs) -> Waiver | None:
    return next((w for w in inputs.waivers.get(build.pk, ()) if w.policy == policy), None)


def cell_waivers(build: Build, inputs: GateInputs) -> dict[tuple[int, int, int], Waiver]:
    return {
        (w.torch_release_id, w.variant_id, w.platform_id): w
        for w in reversed(inputs.waivers.get(build.pk, ()))
        if not w.policy
    }


# --- package ----------------------------------------------------------------------------------


def package_policy(build: Build, inputs: GateInputs) -> PolicyResult:
    package = build.package
    if package is None:
        return PolicyResult(POLICY_PACKAGE, FAIL, f"{build.name} is not a registered package")
    evidence = (Evidence(f"package {package.name}", package_url(package.name)),)
    if package.status not in PROMOTABLE_PACKAGE_STATES:
        return PolicyResult(
            POLICY_PACKAGE, FAIL, f"package is {package.get_status_display().lower()}", (), evidence
        )
    count = inputs.maintainer_counts.get(package.pk, 0)
    if not count:
        return PolicyResult(POLICY_PACKAGE, FAIL, "package has no maintainer", (), evidence)
    state = "active" if package.status == Package.Status.ACTIVE else "at risk (still listed)"
    return PolicyResult(
        POLICY_PACKAGE,
        PASS,
        f"{state}, {count} maintainer{'s' if count != 1 else ''}",
        (),
        evidence,
    )


# --- required cells ---------------------------------------------------------------------------


def required_cells(build: Build, inputs: GateInputs) -> list[tuple]:
    """(release, variant, platform) the build must pass: supported releases its constraints
    admit x its platform (noarch: those each release ships) x the variants each release ships."""
    return [cell[1:] for cell in _required_cell_keys(build, inputs)]


def _required_cell_keys(build: Build, inputs: GateInputs) -> list[tuple]:
    """((release id, variant id, platform id), release, variant, platform) of each required
    cell. Builds of the same platform and constraints share one answer (the queue's builds
    mostly do): it is worked out once per set of inputs."""
    # What admitted_torch_releases reads of a build: its constraints, and its own version
    # when it is PyTorch itself.
    own = (build.name, build.version) if build.name in PYTORCH_NAMES else None
    key = ("required_cells", own, build.subdir, tuple(build.depends), tuple(build.constrains))
    cells = inputs.memo.get(key)
    if cells is None:
        cells = inputs.memo[key] = [
            ((release.pk, variant.pk, platform.pk), release, variant, platform)
            for release, variant, platform in _required_cells(build, inputs)
        ]
    return cells


def _required_cells(build: Build, inputs: GateInputs) -> list[tuple]:
    cells = []
    for release in admitted_torch_releases(build, inputs.releases):
        shipped = inputs.release_platforms[release.pk]
        if build.subdir == "noarch":
            platforms = shipped
        else:
            own = inputs.platform_by_subdir.get(build.subdir)
            platforms = [own] if own is not None and own in shipped else []
        for platform in platforms:
            for variant in inputs.release_variants[release.pk]:
                cells.append((release, variant, platform))
    return cells


def effective_verdict(row) -> str:
    """What a cell marked `waived` really said (its failure, kept as previous_verdict); whether
    the failure is accepted is the waivers' business, not the cell's marking."""
    verdict = row.verdict
    if verdict == _WAIVED:
        return row.previous_verdict or _FAILED
    return verdict


def cells_policy(build: Build, inputs: GateInputs) -> PolicyResult:
    try:
        required = _required_cell_keys(build, inputs)
    except (InvalidMatchSpecError, InvalidVersionSpecError, InvalidVersionError) as exc:
        return PolicyResult(POLICY_CELLS, FAIL, f"its dependencies cannot be read: {exc}")
    matrix = (
        Evidence("package test matrix", package_url(build.package.name) + "#test-matrix")
        if build.package_id
        else Evidence("package page", build.get_absolute_url())
    )
    if not required:
        return PolicyResult(
            POLICY_CELLS,
            FAIL,
            "no supported PyTorch release is admitted by its constraints on this platform",
            (),
            (matrix,),
        )
    rows_by_cell = defaultdict(list)
    for row in inputs.cells.get(build.pk, ()):
        rows_by_cell[(row.torch_release_id, row.variant_id, row.platform_id)].append(row)
    waivers = cell_waivers(build, inputs)
    lines, counts = [], defaultdict(int)
    for key, release, variant, platform in required:
        line = _cell_line(
            f"PyTorch {release.version} × {variant.name} × {platform.subdir}",
            rows_by_cell.get(key, []),
            waivers.get(key),
            key,
        )
        if line is None:
            continue  # not applicable: the build's own constraints exclude the cell
        counts[line.status] += 1
        lines.append(line)
    return _cells_result(lines, counts, matrix)


def _cell_line(label: str, rows: list, waiver: Waiver | None, key) -> GateLine | None:
    if not rows:
        return GateLine(WAITING, label, "", "", "no result yet (not planned or not reported)")
    if len(rows) == 1:  # the usual case: one python per cell, nothing to rank
        worst = rows[0]
        verdict = effective_verdict(worst)
        if verdict == _NOT_APPLICABLE:
            return None
        relevant = rows
    else:
        relevant = [(v, r) for r in rows if (v := effective_verdict(r)) != _NOT_APPLICABLE]
        if not relevant:
            return None
        verdict, worst = min(relevant, key=lambda pair: RANK.get(pair[0], _LAST_RANK))
    label += f" × py{worst.python}" if worst.python and len(relevant) == 1 else ""
    url = job_url(worst.latest_job_id)
    if verdict in _IN_FLIGHT:
        return GateLine(WAITING, label, verdict, url, "in flight")
    if verdict in _FAILING:
        if waiver is not None:
            return GateLine(WAIVED, label, Verdict.WAIVED, url, waiver_note(waiver))
        note = (
            "infrastructure error, not the package's fault: retry it" if verdict == _ERROR else ""
        )
        return GateLine(FAIL, label, verdict, url, note, waive_cell=key)
    if verdict == _INSTALLABLE:
        # The environment solves, but nothing was tested: neither a pass nor a failure.
        return GateLine(WAITING, label, verdict, url, "installable, not tested (no package file)")
    if verdict == _NO_TESTS:
        return GateLine(PASS, label, verdict, url, "ran, but has no tests (see Tests exist)")
    return GateLine(PASS, label, verdict, url)


def _cells_result(lines: list[GateLine], counts: dict, matrix: Evidence) -> PolicyResult:
    total = len(lines)
    order = {FAIL: 0, WAITING: 1, WAIVED: 2, PASS: 3}
    lines.sort(key=lambda line: order[line.status])
    evidence = (matrix, *(Evidence(line.text, line.url) for line in lines if line.status == FAIL))
    if not total:
        return PolicyResult(
            POLICY_CELLS, PASS, "every admitted cell is not applicable", (), (matrix,)
        )
    if counts[FAIL]:
        first = next(line for line in lines if line.status == FAIL)
        reason = (
            f"{counts[FAIL]} of {total} required cells failed, e.g. {first.text} {first.verdict}"
        )
        status = FAIL
    elif counts[WAITING]:
        reason = f"{counts[WAITING]} of {total} required cells have no final result yet"
        status = WAITING
    else:
        reason = f"{counts[PASS]} of {total} required cells passed"
        if counts[WAIVED]:
            reason = f"{plural(total, 'required cell')} passed or waived ({counts[WAIVED]} waived)"
        status = PASS
    return PolicyResult(POLICY_CELLS, status, reason, tuple(lines[:MAX_LINES]), evidence[:20])


# --- tests exist ------------------------------------------------------------------------------


def tests_policy(build: Build, inputs: GateInputs) -> PolicyResult:
    waivers = cell_waivers(build, inputs)
    rows = inputs.cells.get(build.pk, ())
    no_tests, ran, lines = 0, 0, []
    for row in rows:
        key = (row.torch_release_id, row.variant_id, row.platform_id)
        verdict = effective_verdict(row)
        if verdict == Verdict.NO_TESTS:
            label = cell_label(inputs, row.torch_release_id, row.variant_id, row.platform_id)
            waiver = waivers.get(key)
            status = WAIVED if waiver else FAIL
            note = waiver_note(waiver) if waiver else "conda-build said: Nothing to test for"
            lines.append(GateLine(status, label, verdict, job_url(row.latest_job_id), note, key))
            no_tests += 0 if waiver else 1
        elif verdict in (Verdict.PASSED, Verdict.FAILED, Verdict.WAIVED):
            ran += 1
    if no_tests:
        return PolicyResult(
            POLICY_TESTS,
            FAIL,
            f"conda-build found nothing to test on {plural(no_tests, 'cell')}",
            tuple(lines),
        )
    if ran:
        return PolicyResult(POLICY_TESTS, PASS, f"tests ran on {plural(ran, 'cell')}", tuple(lines))
    return PolicyResult(POLICY_TESTS, WAITING, "no test has run to the end yet", tuple(lines))


# --- reverse dependencies (regression-only) ---------------------------------------------------


def reverse_dependencies_policy(build: Build, inputs: GateInputs) -> PolicyResult:
    lines, counts = [], defaultdict(int)
    tested = set()
    for job in sorted(inputs.pinned_jobs.get(build.pk, ()), key=lambda j: (j.build_name, j.pk)):
        tested.add(job.build_name)
        line = _retest_line(job, inputs)
        counts[line.status] += 1
        lines.append(line)
    for name in sorted(_expected_dependents(build, inputs) - tested):
        lines.append(GateLine(WAITING, name, "", "", "not re-tested with this build yet"))
        counts[WAITING] += 1
    lines.sort(key=lambda line: {FAIL: 0, WAITING: 1, PASS: 2}[line.status])
    evidence = tuple(Evidence(line.text, line.url) for line in lines if line.status == FAIL)
    if not lines:
        return PolicyResult(
            POLICY_REVERSE_DEPENDENCIES, PASS, "no registered package depends on this build"
        )
    if counts[FAIL]:
        status, reason = FAIL, f"{plural(counts[FAIL], 're-test')} regressed"
    elif counts[WAITING]:
        status, reason = WAITING, f"{plural(counts[WAITING], 're-test')} still to come"
    else:
        status, reason = PASS, f"{plural(counts[PASS], 're-test')}, no regression"
    return PolicyResult(POLICY_REVERSE_DEPENDENCIES, status, reason, tuple(lines), evidence[:20])


def _retest_line(job, inputs: GateInputs) -> GateLine:
    cell = cell_label(inputs, job.torch_release_id, job.variant_id, job.platform_id)
    label = f"{job.build_name} on {cell}"
    verdict = job.verdict or job.status
    if job.status in (Job.Status.QUEUED, Job.Status.RUNNING):
        return GateLine(WAITING, label, job.status, job_url(job.pk), "in flight")
    if job.verdict not in FAILING_VERDICTS:
        return GateLine(PASS, label, verdict, job_url(job.pk))
    baseline = inputs.baselines.get(job.pk)
    if baseline is None:
        return GateLine(
            FAIL, label, verdict, job_url(job.pk), "new failure: no earlier result to compare"
        )
    if baseline.verdict in FAILING_VERDICTS:
        note = f"already {baseline.verdict} before this build (job {baseline.pk}): not a regression"
        return GateLine(PASS, label, verdict, job_url(job.pk), note)
    note = f"regression: {baseline.verdict} before (job {baseline.pk}), {verdict} with this build"
    return GateLine(FAIL, label, verdict, job_url(job.pk), note)


def _expected_dependents(build: Build, inputs: GateInputs) -> set[str]:
    """Dependents whose latest build accepts this build: those the planner re-tests."""
    dependents = inputs.dependents.get(build.name, ())
    if not dependents:
        return set()
    try:
        record = PackageRecord(
            name=build.name,
            version=build.version,
            build=BuildString(build.build_string),
            build_number=build.build_number,
            subdir=build.subdir,
            depends=list(build.depends or ()),
        )
    except (InvalidVersionError, ValueError):
        return set()
    expected = set()
    for dependent in dependents:
        if build.subdir not in ("noarch", dependent.subdir) and dependent.subdir != "noarch":
            continue
        for spec in dependent.depends:
            try:
                match = MatchSpec(spec)
            except InvalidMatchSpecError:
                continue
            named = match.name is not None and match.name.normalized == build.name
            if named and match.matches(record):
                expected.add(dependent.name)
    return expected
