"""The promotion gate ("excuses", DESIGN.md section 6): why a build, or a coordinated set, can or
cannot go into the target channel.

Each policy returns pass / waiting / fail / waived with a human reason and links to its evidence
(gate/policies.py). A build is promotable when no policy fails or waits; a coordinated set when
every member is and the set as a whole installs from the target. Reads only: the inputs for any
number of builds come from a fixed number of queries (gate_inputs.py).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from distro_site.url_templates import fast_reverse
from packages_app.models import Build
from testing_app.gate.policies import cells_policy
from testing_app.gate.policies import package_policy
from testing_app.gate.policies import policy_waiver
from testing_app.gate.policies import reverse_dependencies_policy
from testing_app.gate.policies import tests_policy
from testing_app.gate.policies import waiver_note
from testing_app.gate.types import BLOCKED
from testing_app.gate.types import FAIL
from testing_app.gate.types import POLICY_INSTALLABILITY
from testing_app.gate.types import PROMOTABLE
from testing_app.gate.types import WAITING
from testing_app.gate.types import WAIVED
from testing_app.gate.types import Evidence
from testing_app.gate.types import PolicyResult
from testing_app.gate.types import overall_status
from testing_app.gate.types import summary_line
from testing_app.selectors.gate_artifact import installability_policy
from testing_app.selectors.gate_artifact import license_policy
from testing_app.selectors.gate_artifact import lint_policy
from testing_app.selectors.gate_artifact import not_promoted_policy
from testing_app.selectors.gate_inputs import GateInputs
from testing_app.selectors.gate_inputs import candidate_builds
from testing_app.selectors.gate_inputs import load_gate_inputs
from testing_app.selectors.installability_plan import subject_key

__all__ = [
    "BLOCKED",
    "PROMOTABLE",
    "WAITING",
    "GateReport",
    "SetGateReport",
    "evaluate_gates",
    "evaluate_set",
    "get_build_gate",
    "get_set_gate",
]


@dataclass(frozen=True)
class GateReport:
    """Every policy's result for one build, and the overall outcome."""

    build: Build
    status: str  # promotable | waiting | blocked
    policies: tuple[PolicyResult, ...]

    @property
    def promotable(self) -> bool:
        return self.status == PROMOTABLE

    @property
    def summary(self) -> str:
        return summary_line(self.status, self.policies)

    def policy(self, key: str) -> PolicyResult | None:
        return next((p for p in self.policies if p.policy == key), None)


@dataclass(frozen=True)
class SetGateReport:
    """A coordinated set: each member's gate (installability judged for the set as a whole)."""

    builds: tuple[Build, ...]
    members: tuple[GateReport, ...]
    installability: PolicyResult
    status: str

    @property
    def promotable(self) -> bool:
        return self.status == PROMOTABLE

    @property
    def subject_key(self) -> str:
        return subject_key(list(self.builds))

    @property
    def summary(self) -> str:
        if self.status == PROMOTABLE and len(self.members) == 1:
            return self.members[0].summary
        if self.status == PROMOTABLE:
            return f"All {len(self.members)} members pass, and the set installs from the target"
        wanted = FAIL if self.status == BLOCKED else WAITING
        if self.installability.status == wanted:
            return self.installability.one_line
        member = next(m for m in self.members if m.status == self.status)
        if len(self.members) == 1:
            return member.summary
        return f"{member.build.name} {member.build.version}: {member.summary}"


def _apply_policy_waiver(result: PolicyResult, build: Build, inputs: GateInputs) -> PolicyResult:
    """A valid waiver on a policy turns its failure (or its wait) into `waived`."""
    if not result.waivable:
        return result
    waiver = policy_waiver(build, result.policy, inputs)
    if waiver is None or result.status not in (FAIL, WAITING):
        return result
    return PolicyResult(
        result.policy,
        WAIVED,
        f"{waiver_note(waiver)} (was: {result.reason})",
        result.lines,
        result.evidence,
        waiver_id=waiver.pk,
    )


def _excuses_url(build: Build) -> str:
    return fast_reverse("testing:build-excuses", "pk", build.pk)


def _evaluate(build: Build, inputs: GateInputs, *, with_installability: bool) -> GateReport:
    results = [
        package_policy(build, inputs),
        cells_policy(build, inputs),
        reverse_dependencies_policy(build, inputs),
    ]
    if with_installability:
        results.append(
            installability_policy(
                [build], subject_key([build]), inputs, anchor_url=_excuses_url(build)
            )
        )
    results += [
        tests_policy(build, inputs),
        lint_policy(build, inputs),
        license_policy(build, inputs),
        not_promoted_policy(build, inputs),
    ]
    if build.pk in inputs.waivers:  # most builds have none: nothing to turn into `waived`
        results = [_apply_policy_waiver(r, build, inputs) for r in results]
    return GateReport(build, overall_status(results), tuple(results))


def evaluate_gates(
    builds: list[Build], *, inputs: GateInputs | None = None, now: datetime | None = None
) -> dict[int, GateReport]:
    """The gate of each build (loaded with package and channel), keyed by build id."""
    inputs = inputs or load_gate_inputs(builds, now=now)
    return {b.pk: _evaluate(b, inputs, with_installability=True) for b in builds}


def get_build_gate(build_id: int) -> GateReport:
    """One build's excuses."""
    builds = candidate_builds([build_id])
    if not builds:
        raise Build.DoesNotExist(f"Build {build_id} does not exist.")
    return evaluate_gates(builds)[build_id]


def evaluate_set(
    builds: list[Build],
    *,
    inputs: GateInputs | None = None,
    ignore_promotion_id: int | None = None,
    skip_installability: bool = False,
    check_url: str = "",
) -> SetGateReport:
    """A coordinated set (or a single build): gated as a whole. Members are judged without their
    own installability; the set's installability check replaces it. `skip_installability`
    leaves that policy out (the promotion job runs a fresh check right after)."""
    key = subject_key(builds)
    inputs = inputs or load_gate_inputs(
        builds, subjects=(key,), ignore_promotion_id=ignore_promotion_id
    )
    members = tuple(_evaluate(b, inputs, with_installability=False) for b in builds)
    if skip_installability:
        installability = PolicyResult(
            POLICY_INSTALLABILITY, WAIVED, "checked again by the promotion before copying"
        )
    else:
        installability = installability_policy(builds, key, inputs, anchor_url=check_url)
        if len(builds) == 1:
            installability = _apply_policy_waiver(installability, builds[0], inputs)
        elif installability.status in (FAIL, WAITING) and all(
            policy_waiver(b, POLICY_INSTALLABILITY, inputs) for b in builds
        ):
            installability = PolicyResult(
                POLICY_INSTALLABILITY,
                WAIVED,
                f"waived on every member (was: {installability.reason})",
                installability.lines,
                installability.evidence,
            )
    statuses = {m.status for m in members} | {installability.status}
    if BLOCKED in statuses or FAIL in statuses:
        status = BLOCKED
    elif WAITING in statuses:
        status = WAITING
    else:
        status = PROMOTABLE
    return SetGateReport(tuple(builds), members, installability, status)


def get_set_gate(build_ids: Iterable[int], *, check_url: str = "") -> SetGateReport:
    builds = sorted(candidate_builds(set(build_ids)), key=lambda b: (b.name, b.subdir, b.pk))
    if not builds:
        raise Build.DoesNotExist("None of these builds exists.")
    return evaluate_set(builds, check_url=check_url)


def evidence_links(report: GateReport) -> list[Evidence]:
    return [e for p in report.policies for e in p.evidence]
