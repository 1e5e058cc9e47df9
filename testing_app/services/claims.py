"""Claims: someone offers to maintain a package that has none (`maintainer-needed`).

Reviewed like a proposal: a reviewer approves or rejects it with a note; approval makes the
claimant a maintainer (de-duplicated like the proposal flow's maintainers). The claimant gets
the decision by email from an RQ job, whose delivery or failure is recorded on the claim.
"""

import logging
from datetime import timedelta
from functools import partial

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from packages_app.models import Package
from packages_app.services.proposals import _lock_client
from packages_app.services.reviews import reviewer_name
from packages_app.services.reviews import upsert_maintainers
from testing_app.models import MaintainerClaim

logger = logging.getLogger(__name__)

# RQ entry points are enqueued by dotted name: jobs.py imports the services, never the reverse.
EMAIL_FUNCTION = "testing_app.jobs.rq_email_claim_decision"
CLAIMABLE = (
    Package.Status.ACTIVE,
    Package.Status.AT_RISK,
    Package.Status.DEPRECATED,
    Package.Status.REMOVED,
)


class ClaimRateLimited(Exception):
    def __init__(self, limit: int):
        super().__init__(f"At most {limit} claims per hour from one address; try again later.")


@transaction.atomic
def submit_claim(
    *,
    package: Package,
    name: str,
    email: str,
    github_handle: str,
    rationale: str,
    client_fingerprint: str,
) -> MaintainerClaim:
    """Record a claim on a package without maintainers; reviewers see it in their queue."""
    _lock_client(client_fingerprint)
    package = Package.objects.select_for_update().get(pk=package.pk)
    if package.maintainers.exists():
        raise ValidationError(f"{package.name} has maintainers; ask them to add you instead.")
    if package.status not in CLAIMABLE:
        raise ValidationError(f"{package.name} is {package.get_status_display().lower()}.")
    limit = settings.CLAIM_RATE_LIMIT_PER_HOUR
    recent = MaintainerClaim.objects.filter(
        client_fingerprint=client_fingerprint,
        created_at__gte=timezone.now() - timedelta(hours=1),
    ).count()
    if recent >= limit:
        raise ClaimRateLimited(limit)
    claim = MaintainerClaim(
        package=package,
        name=name.strip(),
        email=email.strip().lower(),
        github_handle=github_handle.strip().lstrip("@"),
        rationale=rationale.strip(),
        client_fingerprint=client_fingerprint,
    )
    claim.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            claim.save()
    except IntegrityError:
        raise ValidationError(
            f"You already have a claim on {package.name} waiting for review."
        ) from None
    logger.info("maintainer claim %s on %s submitted", claim.pk, package.name)
    return claim


@transaction.atomic
def decide_claim(*, claim: MaintainerClaim, reviewer, approve: bool, note: str) -> MaintainerClaim:
    """Approve (the claimant becomes a maintainer) or reject a waiting claim, with a note."""
    if not note.strip():
        raise ValidationError({"note": "Every decision needs a note for the claimant."})
    claim = MaintainerClaim.objects.select_for_update().select_related("package").get(pk=claim.pk)
    if claim.state != MaintainerClaim.State.SUBMITTED:
        raise ValidationError(f"This claim is already {claim.get_state_display().lower()}.")
    if approve:
        (maintainer,) = upsert_maintainers(
            entries=[
                {"name": claim.name, "email": claim.email, "github_handle": claim.github_handle}
            ]
        )
        claim.package.maintainers.add(maintainer)
    claim.state = MaintainerClaim.State.APPROVED if approve else MaintainerClaim.State.REJECTED
    claim.reviewed_by, claim.reviewed_at = reviewer, timezone.now()
    claim.review_note = note.strip()
    claim.save()
    transaction.on_commit(partial(enqueue_claim_decision_email, claim.pk))
    logger.info("claim %s: %s by %s", claim.pk, claim.state, reviewer_name(reviewer))
    return claim


def enqueue_claim_decision_email(claim_id: int) -> None:
    django_rq.get_queue("default").enqueue(
        EMAIL_FUNCTION, claim_id, result_ttl=3600, failure_ttl=7 * 24 * 3600
    )


def email_claim_decision(*, claim_id: int) -> MaintainerClaim:
    """Send the decision to the claimant; a failure is recorded on the claim and raised."""
    claim = MaintainerClaim.objects.select_related("package").get(pk=claim_id)
    if claim.emailed_at is not None:
        return claim  # a duplicate delivery of the job
    context = {
        "claim": claim,
        "package_url": settings.SITE_URL + claim.package.get_absolute_url(),
    }
    try:
        send_mail(
            subject=f"Your offer to maintain {claim.package.name}: "
            f"{claim.get_state_display().lower()}",
            message=render_to_string("testing_app/email/claim_decision.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[claim.email],
        )
    except (OSError, ValueError) as exc:
        MaintainerClaim.objects.filter(pk=claim.pk).update(email_error=str(exc)[:2000])
        raise
    MaintainerClaim.objects.filter(pk=claim.pk).update(emailed_at=timezone.now(), email_error="")
    claim.refresh_from_db()
    return claim
