"""RQ entry points: ints and strings in, one service call each, exceptions let out."""

from rq import Retry
from rq import get_current_job

from testing_app.services.execution import Declined
from testing_app.services.execution import execute_job
from testing_app.services.reconcile import reconcile

# A declined delivery is handed back to RQ, which requeues or schedules the same job.
MAX_DECLINES = 1000


def rq_execute_job(job_id: int) -> Retry | None:
    """Every Job row's RQ job: run it through its lifecycle (services/execution.py)."""
    current = get_current_job()
    result = execute_job(job_id=job_id, worker_name=(current.worker_name or "") if current else "")
    return (
        Retry(max=MAX_DECLINES, interval=result.delay_s) if isinstance(result, Declined) else None
    )


def rq_reconcile_jobs() -> None:
    """The periodic reconciler (testing_app/management/cron.py)."""
    reconcile()


# --- notifications, maintenance and claims (testing_app/services/notifications.py etc.) -------


def rq_send_notification(notification_id: int) -> None:
    """One immediate notification, right after the commit that created it."""
    from testing_app.services.notifications import send_notification

    send_notification(notification_id=notification_id)


def rq_comment_notification(notification_id: int) -> None:
    """The GitHub comment of one root cause on its package's notice issue."""
    from testing_app.services.notifications import comment_notification

    comment_notification(notification_id=notification_id)


def rq_send_daily_digests() -> None:
    """Periodic (testing_app/management/cron.py): every daily-digest maintainer's queued notices."""
    from testing_app.services.notifications import send_daily_digests

    send_daily_digests()


def rq_send_overdue_notifications() -> None:
    """Periodic: immediate notices whose send job was lost are sent after all."""
    from testing_app.services.notifications import send_overdue_notifications

    send_overdue_notifications()


def rq_apply_maintenance_policy() -> None:
    """Periodic: at_risk / deprecated / back to active (testing_app/services/maintenance.py)."""
    from testing_app.services.maintenance import apply_maintenance_policy

    apply_maintenance_policy()


def rq_email_claim_decision(claim_id: int) -> None:
    from testing_app.services.claims import email_claim_decision

    email_claim_decision(claim_id=claim_id)


# --- promotion: copies, installability checks, waivers (testing_app/services/promotions.py) ---


def rq_promote(promotion_id: int) -> None:
    """The `promote` queue's job: claim the promotion and copy its items into the target."""
    from testing_app.services.promotions import run_promotion

    run_promotion(promotion_id=promotion_id)


def rq_check_installability(check_id: int) -> None:
    """The `install` queue: one solver run of candidates against the target channel."""
    from testing_app.services.installability import run_installability_check

    run_installability_check(check_id=check_id)


def rq_solve_set_partners(solve_id: int) -> None:
    """The `install` queue: which other staged builds one staged build needs (solver runs)."""
    from testing_app.services.set_solves import run_set_partner_solve

    run_set_partner_solve(solve_id=solve_id)


def rq_request_installability_checks() -> None:
    """Periodic: queue gate checks for staged candidates that were never checked, their
    set-partner solves, and the checks of the suggested sets as sets."""
    from testing_app.services.set_solves import sweep_installability

    sweep_installability()


def rq_expire_waivers() -> None:
    """Periodic: cells whose waiver expired show their failure again."""
    from testing_app.services.waivers import expire_waivers

    expire_waivers()


def rq_remove_from_target(event_id: int) -> None:
    """A removed package's files leave the target channel (testing_app/services/maintenance)."""
    from testing_app.services.maintenance import remove_from_target

    remove_from_target(event_id=event_id)
