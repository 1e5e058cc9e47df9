"""Emails to a proposal's contact: the confirmation with the status link, and every decision.

The confirmation carries the only copy of the status token, so it is sent from the web process
right after commit (the token never goes through Redis). Decisions are sent by an RQ job; both
record a failure on the proposal's thread instead of losing it.
"""

import logging

import django_rq
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from packages_app.models import Proposal
from packages_app.models import ProposalNote

logger = logging.getLogger(__name__)

EMAIL_QUEUE = "default"
# RQ entry points are enqueued by dotted name: jobs.py imports the services, never the reverse.
EMAIL_FUNCTION = "packages_app.jobs.rq_email_proposal_decision"


def status_path(token: str) -> str:
    return reverse("proposals:proposal-status", kwargs={"token": token})


def send_proposal_confirmation(*, proposal_id: int, token: str, site_url: str) -> bool:
    """Email the status link; on failure, log it and note it on the thread for the reviewers.

    Returns whether the email went out. The proposer has the link from the redirect either way.
    """
    proposal = Proposal.objects.get(pk=proposal_id)
    context = {
        "proposal": proposal,
        "status_url": site_url.rstrip("/") + status_path(token),
        "guide_url": site_url.rstrip("/") + reverse("guide-page", kwargs={"slug": "maintainers"}),
    }
    try:
        send_mail(
            subject=f"Your proposal of {proposal.package_name} was received",
            message=render_to_string("packages_app/email/proposal_confirmation.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[proposal.contact_email],
        )
    except (OSError, ValueError) as exc:  # smtplib errors are OSErrors
        logger.exception("confirmation email of proposal %s not sent", proposal_id)
        ProposalNote.objects.create(
            proposal=proposal,
            author_name="system",
            kind=ProposalNote.Kind.EVENT,
            body=f"The confirmation email to {proposal.contact_email} could not be sent: {exc}",
        )
        return False
    return True


def enqueue_decision_email_on_commit(note_id: int) -> None:
    """Queue the email of a decision once it is committed; robust like the pre-checks' enqueue
    (if Redis is down the decision stands, the note shows no delivery, the error is logged)."""
    transaction.on_commit(lambda: enqueue_decision_email(note_id), robust=True)


def enqueue_decision_email(note_id: int) -> None:
    """Queue the email of one decision."""
    django_rq.get_queue(EMAIL_QUEUE).enqueue(
        EMAIL_FUNCTION, note_id, result_ttl=3600, failure_ttl=7 * 24 * 3600
    )


def email_proposal_decision(*, note_id: int) -> ProposalNote:
    """Send one decision to the proposal's contact and record the delivery on the note.

    A failure is recorded on the note and raised again, so the job shows as failed too.
    """
    note = ProposalNote.objects.select_related("proposal", "proposal__package").get(pk=note_id)
    proposal = note.proposal
    if note.emailed_at is not None:
        return note  # a duplicate delivery of the job: the proposer already has it
    context = {
        "proposal": proposal,
        "note": note,
        "site_url": settings.SITE_URL,
        "package_url": settings.SITE_URL + proposal.package.get_absolute_url()
        if proposal.package
        else "",
    }
    try:
        if not proposal.contact_email:
            raise ValueError("the proposal has no contact email")
        send_mail(
            subject=f"Proposal of {proposal.package_name}: {note.get_decision_display().lower()}",
            message=render_to_string("packages_app/email/proposal_decision.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[proposal.contact_email],
        )
    except (OSError, ValueError) as exc:
        ProposalNote.objects.filter(pk=note.pk).update(email_error=str(exc)[:2000])
        raise
    with transaction.atomic():
        ProposalNote.objects.filter(pk=note.pk).update(emailed_at=timezone.now(), email_error="")
    note.refresh_from_db()
    return note
