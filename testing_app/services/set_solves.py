"""Set-partner solves: which other staged builds each staged build needs to be installable.

For each staged candidate and platform: solve its installation from the target and upstream
channels (the one channel stack without staging) with only the build itself put in front. If
that fails, solve again with every other staged candidate of the platform put in front; if that
succeeds, the staged builds the solution uses are its partners, pared down to the ones the
solver cannot go without (each is dropped in turn and the rest solved again). The partners tie
builds into the suggested coordinated sets (selectors/promotion_sets.py).

Solves are slow, so each build is one `install` job (rq_solve_set_partners), queued by the
periodic sweep for every candidate without a row for the current candidates and channel stack.
When the last of a round finishes, the sets it found get their installability checks as sets.

Strict channel priority (selectors/channel_stack_types.py) is part of the answer: with every
staged build in front, a staged build of a name hides the upstream builds of that name, so a
build that needs one staged build but cannot take another is recorded as not installable with
the staged builds (with the solver's explanation), which is what users would meet if all of
them were promoted.
"""

import hashlib
import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from packages_app.models import Build
from packages_app.models import Channel
from packages_app.selectors.channel_stack import distribution_stack
from testing_app.adapters.local_channel import LocalChannelError
from testing_app.adapters.solver import SolverInputError
from testing_app.adapters.solver import SolverUnavailable
from testing_app.adapters.solver import exact_spec
from testing_app.adapters.solver import solve_environment
from testing_app.adapters.solver import write_candidate_channel
from testing_app.models import SetPartnerSolve
from testing_app.selectors.gate_inputs import load_release_axes
from testing_app.selectors.installability_plan import candidate_record
from testing_app.selectors.installability_plan import required_subdirs
from testing_app.services.installability import Solver
from testing_app.services.installability import prepare_target
from testing_app.services.installability import request_missing_checks
from testing_app.services.installability import request_missing_set_checks
from testing_app.services.installability import solver_channels
from testing_app.services.installability import target_channel
from testing_app.services.queues import INSTALL_QUEUE

logger = logging.getLogger(__name__)

SOLVE_FUNCTION = "testing_app.jobs.rq_solve_set_partners"
State = SetPartnerSolve.State
ACTIVE = (State.QUEUED, State.RUNNING)
# A solve still queued this long after the sweep asked for it has lost its RQ job.
REPUSH_AFTER = timedelta(minutes=30)


def candidates_digest(candidates: list[Build], channels: list[str], priority: str) -> str:
    """Names what a solve depends on: the staged candidates and the channel stack."""
    text = "|".join(
        [",".join(str(b.pk) for b in sorted(candidates, key=lambda b: b.pk)), *channels, priority]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def sweep_installability() -> int:
    """The periodic sweep: set-partner solves the current candidates lack, then the gate checks
    of never-checked candidates and of the suggested sets found so far (the last solve of a
    round requests the checks of the sets it completes). Returns the gate checks queued."""
    from testing_app.selectors.promotions import list_candidate_builds

    if Channel.objects.filter(role=Channel.Role.TARGET).exists():
        request_set_partner_solves(candidates=list(list_candidate_builds()))
    return request_missing_checks()


def current_digest(candidates: list[Build]) -> str:
    channels = solver_channels(target_channel())
    return candidates_digest(candidates, channels, distribution_stack().priority)


@transaction.atomic
def request_set_partner_solves(*, candidates: list[Build], limit: int = 500) -> int:
    """Queue one solve per candidate and platform that has none for the current candidates and
    channel stack (none queued twice). Returns how many were queued."""
    if not candidates:
        return 0
    digest = current_digest(candidates)
    have = set(
        SetPartnerSolve.objects.filter(
            build_id__in=[b.pk for b in candidates], candidates_digest=digest
        ).values_list("build_id", "subdir")
    )
    axes = load_release_axes()
    rows = [
        SetPartnerSolve(build=build, subdir=subdir, candidates_digest=digest)
        for build in candidates
        for subdir in required_subdirs([build], axes)
        if (build.pk, subdir) not in have
    ][:limit]
    created = SetPartnerSolve.objects.bulk_create(rows)
    ids = [row.pk for row in created]
    # Rows whose job was lost (Redis down at enqueue, flushed since) are pushed again, and rows
    # left running by a worker that died are queued again; a second delivery of a job that did
    # run does nothing (run_set_partner_solve is guarded).
    now = timezone.now()
    SetPartnerSolve.objects.filter(
        candidates_digest=digest,
        state=State.RUNNING,
        created_at__lt=now - REPUSH_AFTER - timedelta(seconds=job_timeout_s()),
    ).update(state=State.QUEUED)
    lost = SetPartnerSolve.objects.filter(
        candidates_digest=digest, state=State.QUEUED, created_at__lt=now - REPUSH_AFTER
    ).values_list("pk", flat=True)
    pushed = ids + list(lost)
    transaction.on_commit(lambda: push_set_partner_solves(pushed))
    return len(ids)


def job_timeout_s() -> int:
    """Room for the solves of one build: alone, with the staged builds, and the pare-down."""
    return 8 * settings.SOLVER_TIMEOUT_S + 300


def push_set_partner_solves(solve_ids: list[int]) -> None:
    """Enqueue after commit; a Redis failure leaves the rows `queued` (logged)."""
    queue = django_rq.get_queue(INSTALL_QUEUE)
    try:
        for pk in solve_ids:
            queue.enqueue(
                SOLVE_FUNCTION,
                pk,
                job_id=f"distro-setsolve-{pk}",
                job_timeout=job_timeout_s(),
                result_ttl=600,
                failure_ttl=7 * 24 * 3600,
            )
    except RedisError:
        logger.exception("could not enqueue set-partner solves %s", solve_ids)


def run_set_partner_solve(*, solve_id: int, solver: Solver = solve_environment):
    """The job: queued -> running -> done | error, guarded so a second delivery does nothing.
    The last solve of a round requests the installability checks of the sets it found."""
    claimed = SetPartnerSolve.objects.filter(pk=solve_id, state=State.QUEUED).update(
        state=State.RUNNING
    )
    if not claimed:
        logger.info("set-partner solve %s is not queued; delivery ignored", solve_id)
        return None
    row = SetPartnerSolve.objects.select_related("build").get(pk=solve_id)
    started = time.monotonic()
    try:
        _solve_partners(row, solver=solver)
        row.state = State.DONE
    except (SolverInputError, SolverUnavailable, LocalChannelError, ValidationError) as exc:
        row.state, row.alone_ok, row.error_message = State.ERROR, None, str(exc)[:4000]
    except Exception as exc:  # noqa: BLE001 - recorded on the row: the page shows why
        logger.exception("set-partner solve %s crashed", solve_id)
        row.state, row.alone_ok, row.error_message = State.ERROR, None, f"crashed: {exc!r}"
    row.finished_at = timezone.now()
    row.duration_s = time.monotonic() - started
    row.save()
    # Older finished rows of the same build and platform say nothing the new one does not.
    SetPartnerSolve.objects.filter(build_id=row.build_id, subdir=row.subdir, pk__lt=row.pk).exclude(
        state__in=ACTIVE
    ).delete()
    if not SetPartnerSolve.objects.filter(
        candidates_digest=row.candidates_digest, state__in=ACTIVE
    ).exists():
        _check_sets_found()
    return row


def _check_sets_found() -> None:
    from testing_app.selectors.promotions import list_candidate_builds

    request_missing_set_checks(list(list_candidate_builds()))


def _solve_partners(row: SetPartnerSolve, *, solver: Solver) -> None:
    """Fill `row` with the answer: alone, with the staged builds, and the partners needed."""
    from testing_app.selectors.promotions import list_candidate_builds

    build = row.build
    others = [
        b
        for b in list_candidate_builds().exclude(pk=build.pk)
        if b.subdir in (row.subdir, "noarch")
    ]
    attempt = _Attempt(row, build, solver=solver)
    alone = attempt.solve([])
    row.alone_ok, row.alone_explanation = alone.ok, alone.explanation
    row.partner_ids = []
    if alone.ok:
        row.with_staged_ok, row.solves = None, attempt.count
        return
    together = attempt.solve(others)
    row.with_staged_ok, row.with_staged_explanation = together.ok, together.explanation
    if together.ok:
        used = {p.filename for p in together.packages if _same_url(p.channel, attempt.front)}
        partners = [b for b in others if b.filename in used]
        for partner in list(partners):  # each dropped in turn: kept only if needed
            rest = [b for b in partners if b.pk != partner.pk]
            if attempt.solve(rest).ok:
                partners = rest
        row.partner_ids = sorted(b.pk for b in partners)
    row.solves = attempt.count


class _Attempt:
    """Solves of one build with a chosen group of staged builds in front of the channel stack."""

    def __init__(self, row: SetPartnerSolve, build: Build, *, solver: Solver):
        target = target_channel()
        prepare_target(target)
        self.stack = distribution_stack()
        self.channels = solver_channels(target)
        self.row, self.build, self.solver = row, build, solver
        self.spec = exact_spec(candidate_record(build))
        self.count = 0
        self.front = ""  # the URL of the last solve's channel of staged builds

    def solve(self, staged: list[Build]):
        self.count += 1
        records = [candidate_record(b) for b in [self.build, *staged]]
        with tempfile.TemporaryDirectory(prefix="set-partners-") as scratch:
            front = self.front = write_candidate_channel(Path(scratch), records)
            return self.solver(
                channel_priority=self.stack.priority,
                pip_as_python_dependency=self.stack.pip_as_python_dependency,
                channels=[front, *self.channels],
                platform=self.row.subdir,
                specs=[self.spec],
                virtual_packages=list(
                    settings.INSTALL_CHECK_VIRTUAL_PACKAGES.get(self.row.subdir, [])
                ),
                timeout_s=settings.SOLVER_TIMEOUT_S,
                cache_dir=settings.ARTIFACT_DIR / "repodata-cache",
            )


def _same_url(a: str, b: str) -> bool:
    return bool(a and b) and a.rstrip("/") == b.rstrip("/")
