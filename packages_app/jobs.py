"""RQ entry points of packages_app: thin, ints in, one service call each."""


def rq_run_proposal_prechecks(proposal_id: int) -> None:
    from packages_app.services.prechecks import run_proposal_prechecks

    run_proposal_prechecks(proposal_id=proposal_id)


def rq_record_precheck_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback of the pre-check job (exception, timeout, or a lost work-horse)."""
    from packages_app.services.prechecks import record_precheck_failure

    name = getattr(exc_type, "__name__", str(exc_type))
    message = str(exc_value) if exc_value is not None and str(exc_value) else "no message"
    record_precheck_failure(proposal_id=int(job.args[0]), reason=f"{name}: {message}")


def rq_email_proposal_decision(note_id: int) -> None:
    from packages_app.services.proposal_emails import email_proposal_decision

    email_proposal_decision(note_id=note_id)


def rq_sync_channels() -> None:
    """Periodic (testing_app/management/cron.py): read every channel's repodata, import, plan
    new builds. Each channel's failure is recorded on the channel (services/sync.py), so nothing
    raises."""
    from packages_app.services.sync import sync_channels

    sync_channels()
