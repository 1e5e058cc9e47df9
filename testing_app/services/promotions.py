"""Promotions: copy one build or a coordinated set from staging into the target channel.

Life of a promotion: `create_promotion` (after the confirmation page; the set must pass the gate)
writes the Promotion and its items and enqueues the `promote` job after commit. The job
(`run_promotion`) claims it, re-checks the gate and the set's installability against the target
with the solver, then copies item by item, each copy retried with backoff on 5xx and network
errors. An item that cannot be copied stops the run: the promotion is `partial` (some items
landed) or `failed` (none did), and `resume_promotion` continues where it stopped. When every
item has landed, the follow-ups run (promotion_followups.py).

Safe to click twice: the confirmation form carries an idempotency key (a second submit returns
the first promotion), builds are locked while a promotion is created, a build in an open
promotion cannot join another, and the job's claim is a guarded update with a lease, so two
deliveries never copy at once. A worker killed mid-copy leaves the promotion `running` with an
expiring lease; once it has expired, `resume_promotion` hands it to a new job, and items already
copied are never copied again (and a copy that landed just before the crash is recognised by
its sha256).
"""

import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import django_rq
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from packages_app.models import Build
from testing_app.adapters.solver import solve_environment
from testing_app.gate.types import WAIVED
from testing_app.models import InstallabilityCheck
from testing_app.models import Promotion
from testing_app.models import PromotionItem
from testing_app.selectors.gate import evaluate_set
from testing_app.selectors.promotions import plan_promotion
from testing_app.services.installability import planned_checks
from testing_app.services.installability import solve_check
from testing_app.services.promotion_backends import Backend
from testing_app.services.promotion_backends import CopyFailed
from testing_app.services.promotion_backends import make_backend
from testing_app.services.promotion_followups import run_followups
from testing_app.services.queues import PROMOTE_QUEUE

logger = logging.getLogger(__name__)

PROMOTE_PERMISSION = "testing_app.add_promotion"
PROMOTE_FUNCTION = "testing_app.jobs.rq_promote"
State = Promotion.State
ItemState = PromotionItem.State


def new_idempotency_key() -> str:
    """Rendered into the confirmation form: the same form submitted twice is one promotion."""
    return uuid.uuid4().hex


def _require_permission(user) -> None:
    if user is None or not user.has_perm(PROMOTE_PERMISSION):
        raise PermissionDenied("Only release managers may promote.")


@transaction.atomic
def create_promotion(
    *, build_ids, requested_by, idempotency_key: str, name: str = ""
) -> tuple[Promotion, bool]:
    """Create the promotion of these builds (one, or a coordinated set gated as a whole) and
    enqueue its job after commit. Returns (promotion, created); a key already used returns
    that promotion with created False. Raises ValidationError when the set is not promotable."""
    _require_permission(requested_by)
    key = (idempotency_key or "").strip()
    if not key or len(key) > 64:
        raise ValidationError("The confirmation form is incomplete; open it again.")
    ids = sorted({int(pk) for pk in build_ids})
    # Lock the builds first: a concurrent request for any of them waits here, then finds the
    # key (same form) or the builds taken (another form).
    list(Build.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    existing = Promotion.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing, False
    plan = plan_promotion(build_ids=ids)
    if not plan.gate.promotable:
        raise ValidationError(f"Not promotable: {plan.gate.summary}")
    promotion = Promotion(
        name=name.strip()[:200] or (plan.items[0].build.name if len(ids) == 1 else ""),
        backend=plan.backend,
        source_channel=plan.source,
        target_channel=plan.target,
        idempotency_key=key,
        requested_by=requested_by,
    )
    promotion.full_clean()
    promotion.save()
    PromotionItem.objects.bulk_create(
        PromotionItem(
            promotion=promotion, build=item.build, source=item.source, destination=item.destination
        )
        for item in plan.items
    )
    _enqueue_after_commit(promotion.pk)
    logger.info("promotion %s of builds %s requested by %s", promotion.pk, ids, requested_by)
    return promotion, True


def _enqueue_after_commit(promotion_id: int) -> None:
    job_id = f"distro-promotion-{promotion_id}-{uuid.uuid4().hex[:8]}"

    def push() -> None:
        try:
            django_rq.get_queue(PROMOTE_QUEUE).enqueue(
                PROMOTE_FUNCTION,
                promotion_id,
                job_id=job_id,
                job_timeout=6 * 3600,
                result_ttl=600,
                failure_ttl=7 * 24 * 3600,
            )
        except RedisError:
            # The row is committed and stays `pending`: the promotion page offers to resume.
            logger.exception("could not enqueue promotion %s", promotion_id)

    transaction.on_commit(push)


@transaction.atomic
def resume_promotion(*, promotion: Promotion, requested_by) -> Promotion:
    """Continue a promotion that stopped (partial, failed), whose job was lost (pending for a
    while), or whose worker died (running with an expired lease). Items already copied stay."""
    _require_permission(requested_by)
    now = timezone.now()
    grace = now - timedelta(seconds=60)
    resumable = (
        Q(state__in=[State.PARTIAL, State.FAILED])
        | Q(state=State.PENDING, created_at__lt=grace)
        | Q(state=State.RUNNING, lease_expires_at__lt=now)
    )
    updated = Promotion.objects.filter(resumable, pk=promotion.pk).update(
        state=State.PENDING, lease_expires_at=None, error_message=""
    )
    promotion.refresh_from_db()
    if not updated:
        still = " (its job is still running)" if promotion.state == State.RUNNING else ""
        raise ValidationError(
            f"Promotion #{promotion.pk} is {promotion.get_state_display().lower()}: "
            f"nothing to resume{still}"
        )
    PromotionItem.objects.filter(promotion=promotion).exclude(state=ItemState.DONE).update(
        state=ItemState.PENDING
    )
    _enqueue_after_commit(promotion.pk)
    logger.info("promotion %s resumed by %s", promotion.pk, requested_by)
    return promotion


@transaction.atomic
def cancel_promotion(*, promotion: Promotion, requested_by) -> Promotion:
    """Give up on what has not been copied yet; copied items stay in the target."""
    _require_permission(requested_by)
    now = timezone.now()
    cancellable = Q(state__in=[State.PENDING, State.PARTIAL, State.FAILED]) | Q(
        state=State.RUNNING, lease_expires_at__lt=now
    )
    updated = Promotion.objects.filter(cancellable, pk=promotion.pk).update(
        state=State.CANCELLED, finished_at=now, lease_expires_at=None
    )
    promotion.refresh_from_db()
    if not updated:
        raise ValidationError(
            f"Promotion #{promotion.pk} is {promotion.get_state_display().lower()}; "
            "it cannot be cancelled now."
        )
    return promotion


def run_promotion(
    *,
    promotion_id: int,
    backend: Backend | None = None,
    solver: Callable = solve_environment,
    sleep: Callable[[float], None] = time.sleep,
) -> Promotion | None:
    """The `promote` job. None when the promotion is not waiting for a job (a second delivery,
    a cancelled one). Never raises for a copy that failed: the item and the promotion say why."""
    promotion = _claim(promotion_id)
    if promotion is None:
        return None
    items = list(promotion.items.select_related("build__package", "build__channel").order_by("pk"))
    todo = [item for item in items if item.state != ItemState.DONE]
    try:
        if todo:
            backend = backend or make_backend(
                name=promotion.backend,
                source=promotion.source_channel,
                target=promotion.target_channel,
            )
            refusal = _gate_refusal(promotion, todo) or _precopy_refusal(
                promotion, [i.build for i in items], solver, backend
            )
            if refusal:
                return _conclude(promotion, error=refusal, solver=solver)
            _publish_items(promotion, todo, backend, sleep)
    except Exception as exc:  # noqa: BLE001 - recorded on the promotion; resumable
        logger.exception("promotion %s crashed", promotion_id)
        return _conclude(promotion, error=f"crashed: {exc!r}", solver=solver)
    return _conclude(promotion, solver=solver, sleep=sleep)


def _claim(promotion_id: int) -> Promotion | None:
    now = timezone.now()
    claimed = Promotion.objects.filter(pk=promotion_id, state=State.PENDING).update(
        state=State.RUNNING,
        lease_expires_at=now + timedelta(seconds=settings.PROMOTION_LEASE_S),
        error_message="",
    )
    if not claimed:
        logger.info("promotion %s is not pending; delivery ignored", promotion_id)
        return None
    Promotion.objects.filter(pk=promotion_id, started_at__isnull=True).update(started_at=now)
    return Promotion.objects.select_related("source_channel", "target_channel").get(pk=promotion_id)


def _renew_lease(promotion: Promotion) -> None:
    Promotion.objects.filter(pk=promotion.pk, state=State.RUNNING).update(
        lease_expires_at=timezone.now() + timedelta(seconds=settings.PROMOTION_LEASE_S)
    )


def _gate_refusal(promotion: Promotion, todo: list[PromotionItem]) -> str:
    """The gate again, now: a waiver revoked or a new failure since the confirmation stops it.
    Installability is left to the fresh solver check that follows."""
    gate = evaluate_set(
        [item.build for item in todo], ignore_promotion_id=promotion.pk, skip_installability=True
    )
    return "" if gate.promotable else f"no longer promotable: {gate.summary}"


def _precopy_refusal(promotion: Promotion, builds: list[Build], solver, backend: Backend) -> str:
    """Solve the whole set against the target as it is now, before copying anything, from the
    files about to be published where the backend can read them (the local backend: a channel
    indexed from the very files, sha256 verified), else from their catalog records."""
    with tempfile.TemporaryDirectory(prefix="precopy-") as scratch:
        try:
            candidates = backend.candidate_channel(builds, Path(scratch))
        except CopyFailed as exc:
            return f"the files to publish cannot be read: {exc}"
        return _precopy_solves(promotion, builds, solver, candidates)


def _precopy_solves(promotion: Promotion, builds: list[Build], solver, candidates: str) -> str:
    checks = planned_checks(
        builds=builds,
        kind=InstallabilityCheck.Kind.PRECOPY,
        key=f"promotion:{promotion.pk}",
        promotion=promotion,
        state=InstallabilityCheck.State.RUNNING,
        started_at=timezone.now(),
    )
    installability = evaluate_set(builds, ignore_promotion_id=promotion.pk).installability
    waived = installability.status == WAIVED
    for check in checks:
        check.save()
        solve_check(check, builds, solver=solver, candidates_url=candidates)
        _renew_lease(promotion)
        if check.state == InstallabilityCheck.State.ERROR:
            return (
                f"the installability check on {check.subdir} could not run: {check.error_message}"
            )
        if not check.ok and check.baseline_ok is not False and not waived:
            last = check.explanation.strip().splitlines()[-1] if check.explanation else ""
            return f"not installable from the target on {check.subdir} [{check.label}]: {last}"
    return ""


def _publish_items(
    promotion: Promotion, todo: list[PromotionItem], backend: Backend, sleep
) -> bool:
    """Publish every remaining item at once (all or nothing: promotion_backends.publish),
    retrying transient failures with backoff; True when all landed. On failure no item is
    done: the one whose file failed says why, the others wait for the resume."""
    backoff = list(settings.PROMOTION_RETRY_BACKOFF_S)
    ids = [item.pk for item in todo]
    for attempt in range(len(backoff) + 1):
        _renew_lease(promotion)
        PromotionItem.objects.filter(pk__in=ids).update(
            state=ItemState.COPYING, attempts=F("attempts") + 1
        )
        try:
            done = backend.publish([item.build for item in todo])
        except CopyFailed as exc:
            if exc.retryable and attempt < len(backoff):
                pause = _pause_before_retry(backoff[attempt], getattr(exc, "retry_after_s", None))
                message = f"attempt {attempt + 1} failed, retrying in {pause:g} s: {exc}"
                PromotionItem.objects.filter(pk__in=ids).update(error_message=message[:4000])
                sleep(pause)
                continue
            _items_failed(todo, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the items "copying"
            logger.exception("publication of promotion %s crashed", promotion.pk)
            _items_failed(todo, CopyFailed(f"crashed: {exc!r}", retryable=True))
            return False
        _items_done(todo, done)
        return True
    return False


def _pause_before_retry(backoff_s: float, retry_after_s: float | None) -> float:
    """The configured backoff, or longer when the server's Retry-After asks for it (a 429 or
    503 from anaconda.org), capped so that a running promotion keeps its lease."""
    if retry_after_s is None:
        return backoff_s
    return max(backoff_s, min(retry_after_s, settings.PROMOTION_RETRY_AFTER_MAX_S))


def _items_failed(todo: list[PromotionItem], exc: CopyFailed) -> None:
    """Nothing was published: the item whose file failed (or every item, when the failure is
    the set's) says why; the others are pending again."""
    culprit = getattr(exc, "build_id", None)
    failed = [item.pk for item in todo if culprit is None or item.build_id == culprit]
    message = f"{exc} (nothing of the set was published; resume to try again)"
    PromotionItem.objects.filter(pk__in=failed).update(
        state=ItemState.FAILED, error_message=message[:4000]
    )
    PromotionItem.objects.filter(pk__in=[i.pk for i in todo if i.pk not in failed]).update(
        state=ItemState.PENDING
    )


@transaction.atomic
def _items_done(todo: list[PromotionItem], done: list) -> None:
    """Every file is in the target: the items are done and the staged builds promoted."""
    now = timezone.now()
    for item, outcome in zip(todo, done, strict=True):
        PromotionItem.objects.filter(pk=item.pk).update(
            state=ItemState.DONE, copied_at=now, detail=outcome.detail[:300], error_message=""
        )
    Build.objects.filter(pk__in=[item.build_id for item in todo]).update(
        state=Build.State.PROMOTED, updated_at=now
    )


def _conclude(promotion: Promotion, *, solver, error: str = "", sleep=time.sleep) -> Promotion:
    """Done when every item landed (then the follow-ups), else partial or failed."""
    items = list(promotion.items.values_list("state", "error_message"))
    landed = sum(1 for state, _ in items if state == ItemState.DONE)
    if not error and landed == len(items):
        state = State.DONE
    else:
        state = State.PARTIAL if landed else State.FAILED
        error = error or next((message for s, message in items if s == ItemState.FAILED), "")
    now = timezone.now()
    Promotion.objects.filter(pk=promotion.pk).update(
        state=state, finished_at=now, lease_expires_at=None, error_message=error[:4000]
    )
    promotion.refresh_from_db()
    if state == State.DONE:
        run_followups(promotion=promotion, solver=solver, sleep=sleep)
        promotion.refresh_from_db()
    logger.info("promotion %s: %s %s", promotion.pk, state, error)
    return promotion
