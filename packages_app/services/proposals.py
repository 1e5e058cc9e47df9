"""Proposals from the public form: submission (rate-limited, de-duplicated) and what the
proposer can do afterwards from the status page: update after a change request, add a note,
withdraw. Reviewers' actions live in services/reviews.py."""

import logging
from dataclasses import asdict
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db import connection
from django.db import transaction
from django.utils.crypto import salted_hmac

from packages_app.models import OPEN_PROPOSAL_STATES
from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.models import hash_token
from packages_app.models import new_status_token
from packages_app.selectors.proposals import NameConflict
from packages_app.selectors.proposals import count_recent_proposals
from packages_app.selectors.proposals import find_name_conflict
from packages_app.services.prechecks import enqueue_prechecks_on_commit
from packages_app.services.proposal_emails import send_proposal_confirmation

logger = logging.getLogger(__name__)

PROPOSER = "proposer"


class ProposalRateLimited(Exception):
    """Too many proposals from one client in the last hour."""

    def __init__(self, limit: int):
        super().__init__(f"At most {limit} proposals per hour may be sent from one address.")
        self.limit = limit


class ProposalConflict(ValidationError):
    """The name is already a package or has an open proposal; `conflict` says where."""

    def __init__(self, conflict: NameConflict):
        super().__init__(conflict.message, code="conflict")
        self.conflict = conflict


@dataclass(frozen=True)
class MaintainerEntry:
    name: str
    email: str
    github_handle: str = ""


@dataclass(frozen=True)
class ProposalInput:
    """What the form collects, already shape-checked by forms.ProposalForm."""

    package_name: str
    summary: str
    home_url: str
    repo_url: str
    recipe_url: str
    license: str
    rationale: str
    contact_email: str
    maintainers: tuple[MaintainerEntry, ...]
    confirms_pytorch_key_dependency: bool
    confirms_dependencies_available: bool
    confirms_recipe_exists: bool
    commits_to_maintain: bool

    def model_fields(self) -> dict:
        fields = asdict(self)
        fields["maintainers_data"] = [asdict(m) for m in self.maintainers]
        del fields["maintainers"]
        return fields


def client_fingerprint(address: str) -> str:
    """A keyed hash of the client address: enough to count, useless to recover the address."""
    return salted_hmac("proposal-client", address, algorithm="sha256").hexdigest()


def _lock_client(fingerprint: str) -> None:
    # Serialises one client's submissions so that two parallel posts cannot both pass the count.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [fingerprint])


@transaction.atomic
def submit_proposal(
    *, data: ProposalInput, client_fingerprint: str, site_url: str
) -> tuple[Proposal, str]:
    """Store a proposal, queue its pre-checks and email the status link, all after commit.

    Returns the proposal and the plain status token (never stored). Raises ProposalRateLimited,
    ProposalConflict (with a link to the existing package or proposal) or ValidationError.
    """
    _lock_client(client_fingerprint)
    limit = settings.PROPOSAL_RATE_LIMIT_PER_HOUR
    if count_recent_proposals(client_fingerprint=client_fingerprint) >= limit:
        raise ProposalRateLimited(limit)
    conflict = find_name_conflict(data.package_name)
    if conflict is not None:
        raise ProposalConflict(conflict)
    token = new_status_token()
    while token.isdigit():  # digits-only paths are proposal ids (the public summary's URL)
        token = new_status_token()
    proposal = Proposal(
        **data.model_fields(),
        status_token_hash=hash_token(token),
        client_fingerprint=client_fingerprint,
    )
    proposal.full_clean()
    try:
        with transaction.atomic():
            proposal.save()
    except IntegrityError:
        # Someone proposed the same name between the check and the insert.
        conflict = find_name_conflict(data.package_name)
        if conflict is None:
            raise
        raise ProposalConflict(conflict) from None
    enqueue_prechecks_on_commit(proposal.pk)
    transaction.on_commit(
        partial(send_proposal_confirmation, proposal_id=proposal.pk, token=token, site_url=site_url)
    )
    logger.info("proposal %s of %s submitted", proposal.pk, proposal.package_name)
    return proposal, token


@transaction.atomic
def resubmit_proposal(*, proposal: Proposal, data: ProposalInput, note: str = "") -> Proposal:
    """The proposer's update after a change request: new data, fresh pre-checks, back in review."""
    proposal = Proposal.objects.select_for_update().get(pk=proposal.pk)
    if proposal.state != Proposal.State.CHANGES_REQUESTED:
        raise ValidationError("Only a proposal with requested changes can be updated.")
    if data.package_name != proposal.package_name:
        raise ValidationError({"package_name": "The package name of a proposal cannot change."})
    for field, value in data.model_fields().items():
        setattr(proposal, field, value)
    proposal.state = Proposal.State.SUBMITTED
    proposal.precheck_outcome = Proposal.PrecheckOutcome.PENDING
    proposal.precheck_results = []
    proposal.precheck_error = ""
    proposal.full_clean()
    proposal.save()
    body = "The proposer updated the proposal; the pre-checks run again."
    if note.strip():
        body += "\n\n" + note.strip()
    ProposalNote.objects.create(
        proposal=proposal, author_name=PROPOSER, kind=ProposalNote.Kind.EVENT, body=body
    )
    enqueue_prechecks_on_commit(proposal.pk)
    return proposal


@transaction.atomic
def add_proposer_note(*, proposal: Proposal, body: str) -> ProposalNote:
    """A note from the proposer (who holds the status link) to the reviewers."""
    if not body.strip():
        raise ValidationError({"body": "Write something."})
    if proposal.state not in OPEN_PROPOSAL_STATES:
        raise ValidationError("This proposal is closed; notes can no longer be added.")
    note = ProposalNote(
        proposal=proposal, author_name=PROPOSER, kind=ProposalNote.Kind.NOTE, body=body.strip()
    )
    note.full_clean()
    note.save()
    return note


@transaction.atomic
def withdraw_proposal(*, proposal: Proposal, reason: str = "") -> Proposal:
    """The proposer takes an open proposal back; the name is free to propose again."""
    proposal = Proposal.objects.select_for_update().get(pk=proposal.pk)
    if proposal.state not in OPEN_PROPOSAL_STATES:
        raise ValidationError(f"The proposal is already {proposal.get_state_display().lower()}.")
    proposal.state = Proposal.State.WITHDRAWN
    proposal.save(update_fields=["state", "updated_at"])
    body = "The proposer withdrew the proposal." + (
        f"\n\n{reason.strip()}" if reason.strip() else ""
    )
    ProposalNote.objects.create(
        proposal=proposal, author_name=PROPOSER, kind=ProposalNote.Kind.EVENT, body=body
    )
    return proposal
