"""The gate's policies about the artifact itself: installable from the target, lint, license,
not already promoted. Pure functions of one build (or set) and the gate's inputs."""

from collections import defaultdict

from django.conf import settings
from django.urls import reverse

from packages_app.models import Build
from testing_app.gate.types import FAIL
from testing_app.gate.types import PASS
from testing_app.gate.types import POLICY_INSTALLABILITY
from testing_app.gate.types import POLICY_LICENSE
from testing_app.gate.types import POLICY_LINT
from testing_app.gate.types import POLICY_NOT_PROMOTED
from testing_app.gate.types import WAITING
from testing_app.gate.types import Evidence
from testing_app.gate.types import GateLine
from testing_app.gate.types import PolicyResult
from testing_app.gate.types import plural
from testing_app.models import InstallabilityCheck
from testing_app.selectors.gate_inputs import CheckRow
from testing_app.selectors.gate_inputs import GateInputs
from testing_app.selectors.installability_plan import ALONE
from testing_app.selectors.installability_plan import check_labels
from testing_app.selectors.installability_plan import required_subdirs

# --- installability ---------------------------------------------------------------------------


def installability_policy(
    builds: list[Build], subject_key: str, inputs: GateInputs, *, anchor_url: str = ""
) -> PolicyResult:
    """The stored solver outcomes of `subject_key` (one build, or a coordinated set) against the
    target channel: for every platform needed and every install set, the latest check."""
    if inputs.target_channel is None:
        return PolicyResult(POLICY_INSTALLABILITY, FAIL, "no target channel is configured")
    latest: dict[tuple[str, str], CheckRow] = {}
    for check in inputs.checks.get(subject_key, ()):
        latest.setdefault((check.subdir, check.label), check)
    subdirs = required_subdirs(builds, inputs)
    lines, counts = [], defaultdict(int)
    for subdir in subdirs:
        for label in check_labels():
            line = _check_line(latest.get((subdir, label)), subdir, label, anchor_url)
            counts[line.status] += 1
            lines.append(line)
    evidence = tuple(Evidence(f"solver output {line.text}", line.url) for line in lines if line.url)
    if counts[FAIL]:
        first = next(line for line in lines if line.status == FAIL)
        status, reason = FAIL, f"not installable: {first.text}: {first.note}"
    elif counts[WAITING]:
        status, reason = WAITING, f"{counts[WAITING]} of {len(lines)} solver checks still to run"
    else:
        status, reason = PASS, f"solves on {', '.join(subdirs)} ({plural(len(lines), 'check')})"
    return PolicyResult(POLICY_INSTALLABILITY, status, reason, tuple(lines), evidence[:20])


def _check_line(check, subdir: str, label: str, anchor_url: str) -> GateLine:
    text = f"{subdir} [{label if label != ALONE else 'by itself'}]"
    if check is None:
        return GateLine(WAITING, text, "", "", "not checked yet")
    url = f"{anchor_url}#check-{check.pk}" if anchor_url else ""
    if check.state in (InstallabilityCheck.State.QUEUED, InstallabilityCheck.State.RUNNING):
        return GateLine(WAITING, text, "", url, f"check {check.get_state_display().lower()}")
    if check.state == InstallabilityCheck.State.ERROR:
        return GateLine(FAIL, text, "", url, f"the check could not run: {check.error_message}")
    when = f"checked {check.finished_at:%Y-%m-%d %H:%M}"
    if check.ok:
        return GateLine(PASS, text, "", url, f"{when}, {check.package_count} packages")
    if check.baseline_ok is False:
        return GateLine(PASS, text, "", url, f"{when}: unsolvable without this build too")
    first_line = (check.explanation or "unsolvable").strip().splitlines()[-1].strip()
    return GateLine(FAIL, text, "", url, f"{when}: {first_line}")


# --- lint, license, not promoted --------------------------------------------------------------


def lint_policy(build: Build, inputs: GateInputs) -> PolicyResult:
    """The build's lint; builds that give the lint the same inputs (the queue's builds often
    do) share one result per set of gate inputs."""
    from packages_app.lint.rules import PYTORCH_NAMES

    # Everything lint_build reads of a build.
    key = (
        "lint",
        build.name.lower() in PYTORCH_NAMES,
        tuple(build.depends or ()),
        tuple(build.constrains or ()),
        bool(build.package_id and build.package.abi_coupled),
        build.noarch or ("python" if build.subdir == "noarch" else ""),
    )
    result = inputs.memo.get(key)
    if result is None:
        result = inputs.memo[key] = _lint_policy(build)
    return result


def _lint_policy(build: Build) -> PolicyResult:
    from packages_app.lint.rules import ERROR
    from packages_app.lint.rules import lint_build

    findings = lint_build(build)
    lines = tuple(
        GateLine(FAIL if f.severity == ERROR else PASS, f.spec or f.code, "", "", f.message)
        for f in findings
    )
    errors = [f for f in findings if f.severity == ERROR]
    if errors:
        return PolicyResult(POLICY_LINT, FAIL, errors[0].message, lines)
    warnings = len(findings)
    reason = "PyTorch bound present and admits bugfix releases"
    reason += f" ({warnings} warning{'s' * (warnings > 1)})" if warnings else ""
    return PolicyResult(POLICY_LINT, PASS, reason, lines)


def _normalise(text: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def license_policy(build: Build, inputs: GateInputs) -> PolicyResult:
    license_text = build.license or (build.package.license if build.package_id else "")
    key = ("license", license_text)
    result = inputs.memo.get(key)
    if result is None:
        result = inputs.memo[key] = _license_policy(license_text)
    return result


def _license_policy(license_text: str) -> PolicyResult:
    normalised = f" {_normalise(license_text)} "
    for forbidden in settings.NON_REDISTRIBUTABLE_LICENSES:
        if forbidden and f" {_normalise(forbidden)} " in normalised:
            return PolicyResult(
                POLICY_LICENSE,
                FAIL,
                f"license {license_text!r} forbids redistribution ({forbidden})",
            )
    if not license_text:
        return PolicyResult(POLICY_LICENSE, PASS, "no license recorded; none is on the block list")
    return PolicyResult(POLICY_LICENSE, PASS, f"{license_text}")


def not_promoted_policy(build: Build, inputs: GateInputs) -> PolicyResult:
    if build.state == Build.State.PROMOTED:
        return PolicyResult(POLICY_NOT_PROMOTED, FAIL, "already promoted")
    if build.state == Build.State.WITHDRAWN:
        return PolicyResult(POLICY_NOT_PROMOTED, FAIL, "withdrawn from its channel")
    if (build.subdir, build.filename) in inputs.in_target:
        return PolicyResult(
            POLICY_NOT_PROMOTED, FAIL, "a file of that name is already in the target"
        )
    if build.pk in inputs.open_items:
        promotion_id, state = inputs.open_items[build.pk]
        url = reverse("testing:promotion-detail", kwargs={"pk": promotion_id})
        return PolicyResult(
            POLICY_NOT_PROMOTED,
            WAITING,
            f"part of promotion #{promotion_id} ({state}): let it finish, resume or cancel it",
            (),
            (Evidence(f"promotion #{promotion_id}", url),),
        )
    return PolicyResult(POLICY_NOT_PROMOTED, PASS, "staged, in no other promotion")
