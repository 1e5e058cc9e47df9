"""Periodic work of the testing side, for RQ's cron scheduler:
`manage.py rqcron testing_app.management.cron`.

Run exactly one scheduler (DESIGN.md section 9); a CPU worker on the `default` queue runs the
jobs it enqueues.
"""

from django.conf import settings
from rq import cron

from packages_app.jobs import rq_sync_channels
from testing_app.jobs import rq_apply_maintenance_policy
from testing_app.jobs import rq_expire_waivers
from testing_app.jobs import rq_reconcile_jobs
from testing_app.jobs import rq_request_installability_checks
from testing_app.jobs import rq_send_daily_digests
from testing_app.jobs import rq_send_overdue_notifications

# Often enough that a lost worker's job is retried about WORKER_LOST_AFTER_S after it died.
RECONCILE_EVERY_S = max(15, settings.WORKER_LOST_AFTER_S // 3)

cron.register(
    rq_reconcile_jobs, "default", interval=RECONCILE_EVERY_S, job_timeout=600, name="reconcile"
)

# Notifications and the maintenance policy (issue 8): the daily digest at a fixed time, a sweep
# for immediate notices whose job was lost, and the policy hourly (a passing build reinstates a
# package at once anyway; the hourly pass moves the others along their timeline).
cron.register(
    rq_send_daily_digests,
    "default",
    cron=settings.NOTIFICATION_DIGEST_CRON,
    job_timeout=1800,
    name="daily-digests",
)
cron.register(
    rq_send_overdue_notifications, "default", interval=900, job_timeout=600, name="overdue-notices"
)
cron.register(
    rq_apply_maintenance_policy, "default", interval=3600, job_timeout=600, name="maintenance"
)

# Promotion (issue 7): expired cell waivers stop showing as waived; never-checked candidates
# get their installability checks (the gate waits for them).
cron.register(rq_expire_waivers, "default", interval=900, job_timeout=600, name="expire-waivers")
cron.register(
    rq_request_installability_checks,
    "default",
    interval=900,
    job_timeout=600,
    name="installability-checks",
)

# Channel sync (issue 5): staged builds are discovered and planned, upstream metadata stays
# current for planning and install checks.
cron.register(
    rq_sync_channels,
    "default",
    interval=settings.SYNC_INTERVAL_S,
    job_timeout=1800,
    name="sync-channels",
)
