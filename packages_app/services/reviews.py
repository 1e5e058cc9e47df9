"""Reviewers' actions on proposals: notes, re-running pre-checks, and decisions.

Every decision carries a note, is kept as a ProposalNote (who, what, when), and is emailed to
the proposer after commit. Approval creates the active Package and its Maintainers
(de-duplicated by email and GitHub handle) in the same transaction as the decision.
"""

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from packages_app.models import OPEN_PROPOSAL_STATES
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.services.packages import register_package
from packages_app.services.prechecks import enqueue_prechecks_on_commit
from packages_app.services.proposal_emails import enqueue_decision_email_on_commit
from testing_app.services.notices import notify_proposal_decision

logger = logging.getLogger(__name__)

Decision = ProposalNote.Decision
DECISION_STATES = {
    Decision.APPROVE: Proposal.State.APPROVED,
    Decision.REJECT: Proposal.State.REJECTED,
    Decision.REQUEST_CHANGES: Proposal.State.CHANGES_REQUESTED,
}


def reviewer_name(user) -> str:
    return user.get_full_name() or user.get_username()


def _lock_open(proposal: Proposal) -> Proposal:
    locked = Proposal.objects.select_for_update().get(pk=proposal.pk)
    if locked.state not in OPEN_PROPOSAL_STATES:
        raise ValidationError(
            f"This proposal is already {locked.get_state_display().lower()}; nothing to decide."
        )
    return locked


@transaction.atomic
def add_review_note(*, proposal: Proposal, author, body: str) -> ProposalNote:
    """A reviewer's note on the thread (the proposer sees it on the status page)."""
    if not body.strip():
        raise ValidationError({"body": "Write something."})
    note = ProposalNote(
        proposal=proposal,
        author=author,
        author_name=reviewer_name(author),
        kind=ProposalNote.Kind.NOTE,
        body=body.strip(),
    )
    note.full_clean()
    note.save()
    return note


@transaction.atomic
def rerun_proposal_prechecks(*, proposal: Proposal, requested_by) -> Proposal:
    """Run the pre-checks again (the recipe changed upstream, or the last run could not finish)."""
    proposal = _lock_open(proposal)
    proposal.precheck_outcome = Proposal.PrecheckOutcome.PENDING
    proposal.precheck_error = ""
    proposal.save(update_fields=["precheck_outcome", "precheck_error", "updated_at"])
    ProposalNote.objects.create(
        proposal=proposal,
        author=requested_by,
        author_name=reviewer_name(requested_by),
        kind=ProposalNote.Kind.EVENT,
        body="Re-ran the pre-checks.",
    )
    enqueue_prechecks_on_commit(proposal.pk)
    return proposal


@transaction.atomic
def decide_proposal(*, proposal: Proposal, reviewer, decision: str, note: str) -> Proposal:
    """Approve, reject or request changes, with a note; approval registers the package."""
    if decision not in DECISION_STATES:
        raise ValidationError({"decision": f"Unknown decision {decision!r}."})
    if not note.strip():
        raise ValidationError({"note": "Every decision needs a note for the proposer."})
    proposal = _lock_open(proposal)
    if decision == Decision.APPROVE:
        proposal.package = _register_proposed_package(proposal)
    now = timezone.now()
    proposal.state = DECISION_STATES[decision]
    proposal.reviewed_by = reviewer
    proposal.reviewed_at = now
    proposal.review_note = note.strip()
    proposal.save()
    decision_note = ProposalNote.objects.create(
        proposal=proposal,
        author=reviewer,
        author_name=reviewer_name(reviewer),
        kind=ProposalNote.Kind.DECISION,
        decision=decision,
        body=note.strip(),
    )
    enqueue_decision_email_on_commit(decision_note.pk)
    notify_proposal_decision(proposal=proposal, note=decision_note)  # the new maintainers
    logger.info("proposal %s: %s by %s", proposal.pk, decision, reviewer_name(reviewer))
    return proposal


def approve_proposal(*, proposal: Proposal, reviewer, note: str) -> Package:
    """Approve: the package becomes active with the proposal's maintainers (one transaction)."""
    proposal = decide_proposal(
        proposal=proposal, reviewer=reviewer, decision=Decision.APPROVE, note=note
    )
    return proposal.package


def _register_proposed_package(proposal: Proposal) -> Package:
    existing = Package.objects.select_for_update().filter(name=proposal.package_name).first()
    keep = (Package.Status.PROPOSED, Package.Status.REMOVED)
    if existing is not None and existing.status not in keep:
        raise ValidationError(
            f"{proposal.package_name} is already an {existing.get_status_display().lower()} "
            "package; reject this proposal or withdraw it instead."
        )
    maintainers = upsert_maintainers(entries=proposal.maintainers_data)
    package = register_package(
        name=proposal.package_name,
        summary=proposal.summary,
        maintainers=maintainers,
        home_url=proposal.home_url,
        repo_url=proposal.repo_url,
        recipe_url=proposal.recipe_url,
        license=proposal.license,
    )
    if package.status != Package.Status.ACTIVE:
        package.status = Package.Status.ACTIVE
        package.status_changed_at = timezone.now()
        package.save(update_fields=["status", "status_changed_at", "updated_at"])
    return package


def upsert_maintainers(*, entries: list[dict]) -> list[Maintainer]:
    """Maintainer rows for the given people, reusing a row with the same email or GitHub
    handle (case-insensitive) and creating the rest. Two entries for one person give one row."""
    emails = {str(e.get("email", "")).strip().lower() for e in entries} - {""}
    handles = {str(e.get("github_handle", "")).strip().lower() for e in entries} - {""}
    known = list(
        Maintainer.objects.annotate(email_l=Lower("email"), handle_l=Lower("github_handle"))
        .filter(Q(email_l__in=emails) | Q(handle_l__in=handles))
        .select_for_update(of=("self",))
    )
    by_email = {m.email_l: m for m in known}
    by_handle = {m.handle_l: m for m in known if m.handle_l}
    result: dict[int, Maintainer] = {}
    for entry in entries:
        email = str(entry.get("email", "")).strip().lower()
        handle = str(entry.get("github_handle", "")).strip()
        maintainer = by_email.get(email) or by_handle.get(handle.lower())
        if maintainer is None:
            maintainer = Maintainer(
                name=str(entry.get("name", "")).strip(), email=email, github_handle=handle
            )
            maintainer.full_clean()
            maintainer.save()
            maintainer.email_l, maintainer.handle_l = email, handle.lower()
            by_email[email] = maintainer
            if handle:
                by_handle[handle.lower()] = maintainer
        elif handle and not maintainer.github_handle:
            maintainer.github_handle = handle
            maintainer.full_clean()
            maintainer.save(update_fields=["github_handle"])
            by_handle[handle.lower()] = maintainer
        result[maintainer.pk] = maintainer
    return list(result.values())
