"""Planning: turn a trigger into a Run: cells excluded by constraints, install checks queued.

Triggers: new builds (channel sync, "test this build"), a PyTorch release wave, a full
distribution run, a manual request. Each loads the catalog (selectors/planning.py), runs the
pure planner (testing_app/planner/engine.py) and writes the result in one transaction: the
`not_applicable` cells in one upsert, then one `install_check` job per cell to run through
enqueue_jobs (the one enqueue path: rows first, Redis after the commit). A passing install
check enqueues the cell's test job (install_checks.enqueue_test_after_check).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace

from django.conf import settings
from django.db import connection
from django.db import transaction
from django.utils import timezone

from packages_app.models import Build
from packages_app.models import TorchRelease
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import Platform
from testing_app.models import Run
from testing_app.models.verdicts import IN_FLIGHT_VERDICTS
from testing_app.models.verdicts import Verdict
from testing_app.planner.engine import Planner
from testing_app.planner.evidence import PYTORCH_NAMES
from testing_app.planner.types import FullRun
from testing_app.planner.types import Manual
from testing_app.planner.types import NewBuilds
from testing_app.planner.types import Plan
from testing_app.planner.types import PlannedCell
from testing_app.planner.types import PlanOptions
from testing_app.planner.types import ReleaseWave
from testing_app.planner.types import Trigger
from testing_app.selectors.planning import existing_cells
from testing_app.selectors.planning import load_catalog
from testing_app.selectors.planning import records_of
from testing_app.services.dispatch import enqueue_jobs
from testing_app.services.install_checks import platform_virtual_packages

logger = logging.getLogger(__name__)

NOT_APPLICABLE_BATCH = 5000
DETAIL_LENGTH = CellResult._meta.get_field("detail").max_length


@dataclass(frozen=True)
class PlanningReport:
    """What one planning call did."""

    run: Run
    jobs: int
    not_applicable: int
    already_decided: int
    candidates: int
    unknown: int = 0
    unplannable: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"run {self.run.pk}: {self.candidates} candidate cells, {self.jobs} install checks "
            f"queued, {self.not_applicable} not applicable, {self.already_decided} already "
            "decided"
        )
        if self.unknown:
            text += f", {self.unknown} of them undecided by the catalog (the install check decides)"
        if self.unplannable:
            text += f", {len(self.unplannable)} builds not planned (unreadable specs)"
        return text


def plan_options() -> PlanOptions:
    """The planner's knobs, from settings."""
    return PlanOptions(
        default_flavour=settings.VARIANT_SPECS_FLAVOUR,
        noarch_python=settings.PLAN_NOARCH_PYTHON,
        revdep_depth=settings.PLAN_REVDEP_DEPTH,
        abi_revdep_depth=settings.PLAN_ABI_REVDEP_DEPTH or None,
        variant_subdirs={k: tuple(v) for k, v in settings.PLAN_VARIANT_SUBDIRS.items()},
        platform_virtual={
            subdir: tuple(_probe_text(v) for v in platform_virtual_packages(subdir))
            for subdir in Platform.objects.values_list("subdir", flat=True)
        },
    )


def _probe_text(virtual: str) -> str:
    """`__glibc=2.28` (as the install check passes it) as a probe record `__glibc 2.28 0`."""
    name, _, rest = virtual.partition("=")
    version, _, build = rest.partition("=")
    return f"{name} {version or '0'} {build or '0'}"


@transaction.atomic
def plan_new_builds(
    *,
    builds: Sequence[Build],
    detail: str,
    requested_by=None,
    force: bool = False,
    reverse_dependencies: bool = True,
    revdep_depth: int | None = None,
    trigger: str = Run.Trigger.NEW_BUILD,
) -> PlanningReport:
    """New builds of registered packages: their cells, and each direct dependent's latest
    builds re-tested with the new build pinned (transitively for ABI-coupled packages; for a
    PyTorch build, in the cells of its own release), all in one run.
    `revdep_depth` overrides PLAN_REVDEP_DEPTH and PLAN_ABI_REVDEP_DEPTH for this call."""
    catalog = load_catalog(
        with_dependents=reverse_dependencies,
        latest_of=None if reverse_dependencies else [],
        include_releases=releases_of_pytorch_builds(builds) if reverse_dependencies else (),
    )
    plan_trigger = NewBuilds(
        builds=tuple(records_of(builds)), force=force, reverse_dependencies=reverse_dependencies
    )
    run = Run.objects.create(
        trigger=trigger,
        triggered_by=requested_by,
        trigger_detail=detail[:300],
        trigger_build=builds[0] if len(builds) == 1 else None,
    )
    options = None
    if revdep_depth is not None:
        options = replace(plan_options(), revdep_depth=revdep_depth, abi_revdep_depth=revdep_depth)
    return _execute(catalog, plan_trigger, run, options=options)


def releases_of_pytorch_builds(builds: Sequence[Build]) -> list[TorchRelease]:
    """The registered releases of new PyTorch builds (supported or not yet, like an rc): their
    dependents are re-tested with them in those releases' cells (planner_pinned.py)."""
    versions = {b.version for b in builds if b.name in PYTORCH_NAMES}
    return list(TorchRelease.objects.filter(version__in=versions)) if versions else []


@transaction.atomic
def plan_release_wave(
    *, release: TorchRelease, requested_by=None, force: bool = False
) -> PlanningReport:
    """A new PyTorch release (rc or final): every active package's latest builds against it."""
    catalog = load_catalog(include_releases=[release])
    run = Run.objects.create(
        trigger=Run.Trigger.TORCH_RELEASE,
        triggered_by=requested_by,
        trigger_detail=f"PyTorch {release.version} registered",
        torch_release=release,
    )
    return _execute(catalog, ReleaseWave(release_id=release.pk, force=force), run)


@transaction.atomic
def plan_full_run(*, requested_by=None, force: bool = False, detail: str = "") -> PlanningReport:
    """Every active package's latest builds against every supported release; cells decided for
    the same inputs are skipped unless `force`."""
    catalog = load_catalog()
    run = Run.objects.create(
        trigger=Run.Trigger.FULL,
        triggered_by=requested_by,
        trigger_detail=(detail or "full distribution run")[:300],
    )
    return _execute(catalog, FullRun(force=force), run)


@transaction.atomic
def plan_manual(
    *,
    builds: Sequence[Build],
    releases: Sequence[TorchRelease] = (),
    requested_by=None,
    force: bool = False,
    detail: str = "",
) -> PlanningReport:
    """Chosen builds, against chosen releases (default: every supported one)."""
    catalog = load_catalog(include_releases=releases, latest_of=[])
    run = Run.objects.create(
        trigger=Run.Trigger.MANUAL,
        triggered_by=requested_by,
        trigger_detail=(detail or "manual request")[:300],
        trigger_build=builds[0] if len(builds) == 1 else None,
        torch_release=releases[0] if len(releases) == 1 else None,
    )
    manual = Manual(
        builds=tuple(records_of(builds)),
        release_ids=tuple(r.pk for r in releases),
        force=force,
    )
    return _execute(catalog, manual, run)


def _execute(catalog, trigger: Trigger, run: Run, options: PlanOptions | None = None):
    planner = Planner(catalog, options or plan_options())
    targets, releases = planner.expand(trigger)
    ids = {t.build.id for t in targets}
    catalog.existing = existing_cells(build_ids=ids)
    plan = planner.plan_targets(targets, releases, force=trigger.force)
    for build_id, reason in plan.unplannable:
        logger.warning("build %s not planned: %s (see its lint)", build_id, reason)
    write_not_applicable(plan.not_applicable)
    priority = settings.PLAN_PRIORITIES.get(run.trigger, 0)
    checks = [_install_check(cell, priority=priority) for cell in plan.to_run]
    jobs = enqueue_jobs(run=run, jobs=checks)
    if not jobs:
        now = timezone.now()
        Run.objects.filter(pk=run.pk).update(
            state=Run.State.FINISHED, started_at=now, finished_at=now
        )
        run.refresh_from_db()
    report = _report(run, plan, jobs=len(jobs))
    logger.info("planned %s", report.summary())
    return report


def _report(run: Run, plan: Plan, *, jobs: int) -> PlanningReport:
    return PlanningReport(
        run=run,
        jobs=jobs,
        not_applicable=len(plan.not_applicable),
        already_decided=plan.already_decided,
        candidates=plan.candidates,
        unknown=plan.unknown,
        unplannable=plan.unplannable,
    )


def _install_check(cell: PlannedCell, *, priority: int = 0) -> Job:
    """The cell's install check; its test (enqueued once it passes) keeps its priority."""
    return Job(
        priority=priority,
        kind=Job.Kind.INSTALL_CHECK,
        build_id=cell.build_id,
        torch_release_id=cell.torch_release_id,
        variant_id=cell.variant_id,
        platform_id=cell.platform_id,
        python=cell.python,
        pinned_build_id=cell.pinned_build_id,
        extra_specs=list(cell.extra_specs),
        planning_note=f"applicability unknown: {cell.unknown}"[:300] if cell.unknown else "",
        required_runner=settings.PLAN_TEST_RUNNER,
        timeout_s=settings.SOLVER_TIMEOUT_S,
        max_attempts=settings.INSTALL_CHECK_MAX_ATTEMPTS,
    )


# A cell in flight keeps its job; any other verdict gives way, and moves to previous_verdict.
_UPSERT_NOT_APPLICABLE = """
INSERT INTO {cell} AS c (build_id, package_id, torch_release_id, variant_id, platform_id,
                         python, verdict, previous_verdict, latest_job_id, detail, updated_at)
SELECT u.build_id, b.package_id, u.torch_release_id, u.variant_id, u.platform_id, u.python,
       %(verdict)s, '', NULL, u.detail, %(now)s
FROM unnest(%(builds)s::bigint[], %(releases)s::bigint[], %(variants)s::bigint[],
            %(platforms)s::bigint[], %(pythons)s::varchar[], %(details)s::varchar[])
     AS u(build_id, torch_release_id, variant_id, platform_id, python, detail)
JOIN {build} b ON b.id = u.build_id
ON CONFLICT ON CONSTRAINT cellresult_unique_cell DO UPDATE SET
    previous_verdict = CASE WHEN c.verdict = %(verdict)s THEN c.previous_verdict
                            ELSE c.verdict END,
    verdict = EXCLUDED.verdict,
    latest_job_id = NULL,
    detail = EXCLUDED.detail,
    updated_at = EXCLUDED.updated_at
WHERE NOT (c.verdict = ANY(%(in_flight)s))
"""


def write_not_applicable(cells: Sequence[PlannedCell]) -> int:
    """Record `not_applicable` cells with their reason, in bulk; cells with a job in flight
    are left to it. Returns how many cells were given."""
    if not cells:
        return 0
    if connection.vendor != "postgresql":
        return _write_not_applicable_orm(cells)
    now = timezone.now()
    statement = _UPSERT_NOT_APPLICABLE.format(
        cell=connection.ops.quote_name(CellResult._meta.db_table),
        build=connection.ops.quote_name(Build._meta.db_table),
    )
    with connection.cursor() as cursor:
        for start in range(0, len(cells), NOT_APPLICABLE_BATCH):
            batch = cells[start : start + NOT_APPLICABLE_BATCH]
            cursor.execute(
                statement,
                {
                    "builds": [c.build_id for c in batch],
                    "releases": [c.torch_release_id for c in batch],
                    "variants": [c.variant_id for c in batch],
                    "platforms": [c.platform_id for c in batch],
                    "pythons": [c.python for c in batch],
                    "details": [c.reason[:DETAIL_LENGTH] for c in batch],
                    "verdict": Verdict.NOT_APPLICABLE.value,
                    "now": now,
                    "in_flight": sorted(str(v) for v in IN_FLIGHT_VERDICTS),
                },
            )
    return len(cells)


def _write_not_applicable_orm(cells: Sequence[PlannedCell]) -> int:
    """The same on other databases (the SQLite demo)."""
    now = timezone.now()
    packages = dict(
        Build.objects.filter(pk__in={c.build_id for c in cells}).values_list("pk", "package_id")
    )
    existing = {
        (c.build_id, c.torch_release_id, c.variant_id, c.platform_id, c.python): c
        for c in CellResult.objects.filter(build_id__in={c.build_id for c in cells})
    }
    inserts, updates = [], []
    for planned in cells:
        cell = existing.get(planned.key)
        if cell is None:
            inserts.append(
                CellResult(
                    build_id=planned.build_id,
                    package_id=packages.get(planned.build_id),
                    torch_release_id=planned.torch_release_id,
                    variant_id=planned.variant_id,
                    platform_id=planned.platform_id,
                    python=planned.python,
                    verdict=Verdict.NOT_APPLICABLE,
                    detail=planned.reason[:DETAIL_LENGTH],
                    updated_at=now,
                )
            )
        elif cell.verdict not in IN_FLIGHT_VERDICTS:
            if cell.verdict != Verdict.NOT_APPLICABLE:
                cell.previous_verdict = cell.verdict
            cell.verdict, cell.latest_job = Verdict.NOT_APPLICABLE, None
            cell.detail, cell.updated_at = planned.reason[:DETAIL_LENGTH], now
            updates.append(cell)
    CellResult.objects.bulk_create(inserts, batch_size=1000)
    CellResult.objects.bulk_update(
        updates,
        ["verdict", "previous_verdict", "latest_job", "detail", "updated_at"],
        batch_size=500,
    )
    return len(cells)
