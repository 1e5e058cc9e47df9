"""Installability checks: candidates (or nothing) in front of the target channel, solved.

Requests write `queued` rows and enqueue one `install` job per row after commit; the job
(rq_check_installability) runs the solver in the work-horse, never in a request. Promotions
run their checks inline, since the promote job already runs in a work-horse.
"""

import logging
import tempfile
from collections.abc import Callable
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
from testing_app.adapters.local_channel import channel_root
from testing_app.adapters.local_channel import ensure_channel
from testing_app.adapters.solver import SolverInputError
from testing_app.adapters.solver import SolverUnavailable
from testing_app.adapters.solver import solve_environment
from testing_app.adapters.solver import write_candidate_channel
from testing_app.models import InstallabilityCheck
from testing_app.selectors.gate_inputs import load_release_axes
from testing_app.selectors.installability_plan import ALONE
from testing_app.selectors.installability_plan import candidate_record
from testing_app.selectors.installability_plan import candidate_specs
from testing_app.selectors.installability_plan import check_labels
from testing_app.selectors.installability_plan import required_subdirs
from testing_app.selectors.installability_plan import subject_key
from testing_app.services.queues import INSTALL_QUEUE

logger = logging.getLogger(__name__)

CHECK_FUNCTION = "testing_app.jobs.rq_check_installability"
State = InstallabilityCheck.State
# What the solved environment shows as the channel of the candidate builds themselves.
CANDIDATES = "candidates (staged)"
Solver = Callable[..., object]


def target_channel() -> Channel:
    target = Channel.objects.filter(role=Channel.Role.TARGET).first()
    if target is None:
        raise ValidationError(
            "No target channel is configured: register one (DISTRO_CHANNELS with role "
            "'target', or `manage.py init_target_channel`)."
        )
    return target


def solver_channels(target: Channel) -> list[str]:
    """The one channel stack without its staging channels (what users see once candidates are
    promoted): the target, then the upstream channels, in stack order. The candidates' own
    channel goes on top of it at solve time (solve_check)."""
    stack = distribution_stack().without_staging()
    return stack.urls(first=[target.base_url])


def new_check(
    *,
    kind: str,
    key: str,
    builds: list[Build],
    target: Channel,
    subdir: str,
    label: str,
    specs: list[str],
    channels: list[str],
    **extra,
) -> InstallabilityCheck:
    """An unsaved check row with everything the solver needs."""
    return InstallabilityCheck(
        kind=kind,
        subject_key=key,
        build_ids=sorted(b.pk for b in builds),
        build=builds[0] if len(builds) == 1 else None,
        target_channel=target,
        subdir=subdir,
        label=label,
        specs=specs,
        channels=channels,
        virtual_packages=list(settings.INSTALL_CHECK_VIRTUAL_PACKAGES.get(subdir, [])),
        **extra,
    )


def planned_checks(
    *, builds: list[Build], kind: str, key: str, **extra
) -> list[InstallabilityCheck]:
    """One unsaved check per platform the candidates need x (alone + each install set)."""
    target = target_channel()
    channels = solver_channels(target)
    axes = load_release_axes()
    return [
        new_check(
            kind=kind,
            key=key,
            builds=builds,
            target=target,
            subdir=subdir,
            label=label,
            specs=candidate_specs(builds, label),
            channels=channels,
            **extra,
        )
        for subdir in required_subdirs(builds, axes)
        for label in check_labels()
    ]


@transaction.atomic
def request_installability_checks(
    *, builds: list[Build], requested_by=None
) -> list[InstallabilityCheck]:
    """Queue the gate's checks of one build or a coordinated set; checks of the same subject
    already queued or running are not queued twice. Returns the new rows."""
    if not builds:
        raise ValidationError("Nothing to check.")
    key = subject_key(builds)
    busy = set(
        InstallabilityCheck.objects.filter(
            subject_key=key, state__in=[State.QUEUED, State.RUNNING]
        ).values_list("subdir", "label")
    )
    checks = [
        check
        for check in planned_checks(
            builds=builds, kind=InstallabilityCheck.Kind.GATE, key=key, requested_by=requested_by
        )
        if (check.subdir, check.label) not in busy
    ]
    created = InstallabilityCheck.objects.bulk_create(checks)
    ids = [c.pk for c in created]
    transaction.on_commit(lambda: push_checks(ids))
    return created


def push_checks(check_ids: list[int]) -> None:
    """Enqueue after commit; a Redis failure leaves the rows `queued` (asked again later)."""
    queue = django_rq.get_queue(INSTALL_QUEUE)
    try:
        for pk in check_ids:
            queue.enqueue(
                CHECK_FUNCTION,
                pk,
                job_id=f"distro-installcheck-{pk}",
                job_timeout=2 * settings.SOLVER_TIMEOUT_S + 300,
                result_ttl=600,
                failure_ttl=7 * 24 * 3600,
            )
    except RedisError:
        logger.exception("could not enqueue installability checks %s", check_ids)


def run_installability_check(*, check_id: int, solver: Solver = solve_environment):
    """The job: queued -> running -> done | error, guarded so a second delivery does nothing."""
    now = timezone.now()
    claimed = InstallabilityCheck.objects.filter(pk=check_id, state=State.QUEUED).update(
        state=State.RUNNING, started_at=now
    )
    if not claimed:
        logger.info("installability check %s is not queued; delivery ignored", check_id)
        return None
    check = InstallabilityCheck.objects.select_related("target_channel").get(pk=check_id)
    builds = list(Build.objects.filter(pk__in=check.build_ids))
    solve_check(check, builds, solver=solver)
    return check


def solve_check(
    check: InstallabilityCheck, builds: list[Build], *, solver: Solver, candidates_url: str = ""
) -> None:
    """Solve one check (its row saved, running) and store the outcome: done with ok/not ok,
    or error with the reason. When the candidates make an install set unsolvable, the set is
    solved without them too: a set that fails anyway is not their regression.
    `candidates_url`: a channel indexed from the candidates' own files (the promotion's check
    before copying); without it, one is written from their catalog records."""
    started = timezone.now()
    try:
        prepare_target(check.target_channel)
        with tempfile.TemporaryDirectory(prefix="candidates-") as scratch:
            channels = list(check.channels)
            candidates = candidates_url
            if candidates:
                channels.insert(0, candidates)
            elif builds:
                records = [candidate_record(b) for b in builds]
                candidates = write_candidate_channel(Path(scratch), records)
                channels.insert(0, candidates)
            result = _solve(solver, check, channels=channels, specs=check.specs)
        check.ok, check.explanation = result.ok, result.explanation
        check.packages = [
            {
                **p.as_dict(),
                "channel": CANDIDATES if _same_url(p.channel, candidates) else p.channel,
            }
            for p in result.packages
        ]
        if not result.ok and builds and check.label != ALONE:
            baseline = _solve(solver, check, channels=check.channels, specs=check.label.split())
            check.baseline_ok, check.baseline_explanation = baseline.ok, baseline.explanation
        check.state = State.DONE
    except (SolverInputError, SolverUnavailable, LocalChannelError, ValidationError) as exc:
        check.state, check.ok, check.error_message = State.ERROR, None, str(exc)[:4000]
    except Exception as exc:  # noqa: BLE001 - recorded on the row: the page shows why
        logger.exception("installability check %s crashed", check.pk)
        check.state, check.ok, check.error_message = State.ERROR, None, f"crashed: {exc!r}"
    check.finished_at = timezone.now()
    check.duration_s = (check.finished_at - started).total_seconds()
    check.save()


def _same_url(a: str, b: str) -> bool:
    return bool(a and b) and a.rstrip("/") == b.rstrip("/")


def _solve(solver: Solver, check: InstallabilityCheck, *, channels: list[str], specs: list[str]):
    stack = distribution_stack()
    return solver(
        channel_priority=stack.priority,
        pip_as_python_dependency=stack.pip_as_python_dependency,
        channels=channels,
        platform=check.subdir,
        specs=specs,
        virtual_packages=check.virtual_packages,
        timeout_s=settings.SOLVER_TIMEOUT_S,
        cache_dir=settings.ARTIFACT_DIR / "repodata-cache",
    )


def prepare_target(target: Channel) -> None:
    """An empty local target is a valid channel: give it the noarch index conda requires."""
    if target.url.startswith("file:"):
        ensure_channel(channel_root(target.base_url))


def request_missing_checks(*, limit: int = 200) -> int:
    """Queue gate checks for staged candidates that have none yet, and the checks of each
    suggested set as a set. Returns how many it queued. The periodic sweep
    (services/set_solves.py sweep_installability) runs it after queuing set-partner solves."""
    from testing_app.selectors.promotions import list_candidate_builds

    if not Channel.objects.filter(role=Channel.Role.TARGET).exists():
        return 0
    candidates = list(list_candidate_builds())
    checked = set(
        InstallabilityCheck.objects.filter(
            subject_key__in=[f"build:{b.pk}" for b in candidates]
        ).values_list("subject_key", flat=True)
    )
    missing = [b for b in candidates if f"build:{b.pk}" not in checked][:limit]
    for build in missing:
        request_installability_checks(builds=[build])
    return len(missing) + request_missing_set_checks(candidates, limit=limit - len(missing))


def request_missing_set_checks(candidates: list[Build], *, limit: int = 200) -> int:
    """The suggested sets (from the stored set-partner solves) are checked as sets too: one
    solve of all members together per platform and install set, recorded under the set's
    subject key. A set whose membership changes is a new subject, checked anew."""
    from testing_app.selectors.promotion_sets import suggest_sets

    if limit <= 0:
        return 0
    by_pk = {b.pk: b for b in candidates}
    sets = [[by_pk[pk] for pk in ids] for ids in suggest_sets(candidates)]
    keys = {subject_key(members) for members in sets}
    checked = set(
        InstallabilityCheck.objects.filter(subject_key__in=keys).values_list(
            "subject_key", flat=True
        )
    )
    missing = [members for members in sets if subject_key(members) not in checked][:limit]
    for members in missing:
        request_installability_checks(builds=members)
    return len(missing)
