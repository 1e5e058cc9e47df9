"""The whole gate queue is judged from compact rows read in bulk; one build's excuses read the
same inputs a different way (containment tests for dependents). On a generated world of varied
candidates both must give every build the same report, and the rows the queue reads of each
installability check must say what the stored check says."""

import random

import pytest
from django.utils import timezone

from testing_app.models import InstallabilityCheck
from testing_app.models import Waiver
from testing_app.selectors.gate import get_build_gate
from testing_app.selectors.gate_inputs import load_gate_inputs
from testing_app.selectors.promotions import get_promotion_queue
from testing_app.selectors.promotions import list_candidate_builds
from tests import factories
from tests.testing_app.test_gate import _dependent
from tests.testing_app.test_gate import _retest
from tests.testing_app.test_gate import axes  # noqa: F401 (a fixture)
from tests.testing_app.test_gate import candidate
from tests.testing_app.test_gate import cell
from tests.testing_app.test_gate import checks_ok
from tests.testing_app.test_gate import pass_all_cells

pytestmark = pytest.mark.django_db

CELL_VERDICTS = ("passed", "passed", "failed", "queued", "error", "no_tests", "not_applicable")
CHECK_STATES = ("done", "done", "done", "queued", "running", "error")
# Candidates share or differ in what the gate works out once per distinct value.
DEPENDS = (
    ("pytorch >=2.5,<2.6",),
    ("pytorch >=2.4,<2.6", "python >=3.10"),
    ("pytorch >=2.4",),
    ("pytorch",),
)
LICENSES = ("BSD-3-Clause", "MIT", "Proprietary", "")


def _check(build, target, label, rng):
    state = rng.choice(CHECK_STATES)
    ok = rng.choice((True, False)) if state == "done" else None
    return InstallabilityCheck.objects.create(
        kind="gate",
        subject_key=f"build:{build.pk}",
        build_ids=[build.pk],
        build=build,
        target_channel=target,
        subdir=build.subdir,
        label=label,
        state=state,
        ok=ok,
        baseline_ok=rng.choice((None, True, False)) if ok is False else None,
        explanation="nothing provides pytorch\nunsolvable" if ok is False else "",
        error_message="solver crashed" if state == "error" else "",
        packages=[f"p{i}" for i in range(rng.randrange(0, 5))],
        finished_at=timezone.now() if state in ("done", "error") else None,
    )


@pytest.fixture
def generated_world(axes, settings):  # noqa: F811 (the fixture imported above)
    """Twelve candidates with random cells, checks, re-tests and waivers (a fixed seed), two
    that pass everything and one waiting for its solver checks."""
    rng = random.Random(16)
    user = factories.UserFactory()
    builds = []
    for index in range(12):
        build = candidate(
            f"cand{index:02d}",
            version="1.0",
            depends=rng.choice(DEPENDS),
            license=rng.choice(LICENSES),
        )
        for release, variant, platform in (
            (axes["new"], axes["cpu"], axes["linux"]),
            (axes["new"], axes["cuda"], axes["linux"]),
            (axes["old"], axes["cpu"], axes["linux"]),
        ):
            if rng.random() < 0.9:
                cell(build, release, variant, platform, rng.choice(CELL_VERDICTS))
        for label in ("alone", "pytorch"):
            for _ in range(rng.randrange(0, 3)):
                _check(build, axes["target"], label, rng)
        if index % 3 == 0:
            dependent = _dependent(axes, name=f"dep{index:02d}", depends=(f"cand{index:02d}",))
            _retest(dependent, build, axes, "passed", pinned=False)
            _retest(dependent, build, axes, rng.choice(("passed", "failed")))
        if index % 4 == 1:
            Waiver.objects.create(build=build, policy="cells", reason="known", created_by=user)
        builds.append(build)
    for index in range(2):  # and two that pass everything
        build = candidate(f"clean{index}", version="1.0")
        pass_all_cells(build, axes)
        checks_ok(build, axes, packages=["pytorch", "python"])
        builds.append(build)
    waiting = candidate("unchecked", version="1.0")  # and one whose solver checks are to come
    pass_all_cells(waiting, axes)
    builds.append(waiting)
    return builds


def test_queue_reports_equal_each_builds_own_excuses(generated_world):
    queue = get_promotion_queue()
    reports = {r.build.pk: r for group in queue.groups for r in group.reports}
    assert sorted(reports) == sorted(b.pk for b in generated_world)
    statuses = set()
    for build in generated_world:
        alone = get_build_gate(build.pk)
        assert reports[build.pk].status == alone.status
        assert reports[build.pk].policies == alone.policies
        statuses.add(alone.status)
    assert statuses == {"promotable", "waiting", "blocked"}


def test_check_rows_say_what_the_stored_checks_say(generated_world):
    builds = list(list_candidate_builds())
    inputs = load_gate_inputs(builds)
    rows = {row.pk: row for rows in inputs.checks.values() for row in rows}
    stored = list(InstallabilityCheck.objects.all())
    assert sorted(rows) == sorted(check.pk for check in stored)
    for check in stored:
        row = rows[check.pk]
        assert row.package_count == len(check.packages)
        assert row.get_state_display() == check.get_state_display()
        for name in ("subject_key", "subdir", "label", "state", "ok", "baseline_ok"):
            assert getattr(row, name) == getattr(check, name), name
        for name in ("explanation", "error_message", "finished_at"):
            assert getattr(row, name) == getattr(check, name), name
    for subject, checks in inputs.checks.items():
        assert [c.pk for c in checks] == sorted((c.pk for c in checks), reverse=True), subject
