"""Proposal reads: the review queue, a proposal with its thread, a maintainer's own page, and the
catalog lookups the pre-checks need. Every selector runs a fixed number of queries."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from allauth.socialaccount.models import SocialAccount
from django.db.models import Count
from django.db.models import Q
from django.db.models import QuerySet
from django.utils import timezone

from packages_app.lint.recipe_checks import CatalogRecord
from packages_app.models import OPEN_PROPOSAL_STATES
from packages_app.models import Build
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.models import hash_token

# The review queue's filter values besides the states themselves.
QUEUE_FILTER_OPEN = "open"
QUEUE_FILTER_ALL = "all"


def list_review_queue(*, state_filter: str = QUEUE_FILTER_OPEN) -> QuerySet[Proposal]:
    """Proposals for reviewers, oldest first, with their note count (one query per page)."""
    proposals = Proposal.objects.all()
    if state_filter == QUEUE_FILTER_OPEN:
        proposals = proposals.filter(state__in=OPEN_PROPOSAL_STATES)
    elif state_filter in Proposal.State.values:
        proposals = proposals.filter(state=state_filter)
    return (
        proposals.select_related("reviewed_by", "package")
        .annotate(note_count=Count("notes", filter=~Q(notes__kind=ProposalNote.Kind.EVENT)))
        .order_by("created_at", "pk")
    )


def get_queue_counts() -> dict[str, int]:
    """Proposals per state (one aggregate query), for the queue's filter labels."""
    counts = dict(Proposal.objects.values_list("state").annotate(n=Count("pk")).order_by())
    return {state: counts.get(state, 0) for state in Proposal.State.values}


def get_proposal_by_token(token: str) -> Proposal | None:
    """The proposal whose status token this is (only the token's hash is stored)."""
    if not token or len(token) > 100:
        return None
    return (
        Proposal.objects.select_related("package", "reviewed_by")
        .filter(status_token_hash=hash_token(token))
        .first()
    )


def list_proposal_notes(*, proposal: Proposal) -> list[ProposalNote]:
    return list(proposal.notes.select_related("author").order_by("created_at", "pk"))


@dataclass(frozen=True)
class NameConflict:
    """Why a name cannot be proposed now, with where to look instead."""

    message: str
    url: str
    link_text: str


def find_name_conflict(
    package_name: str, *, exclude_proposal_id: int | None = None
) -> NameConflict | None:
    """An existing package (not removed) or an open proposal of the same name, if any."""
    package = (
        Package.objects.filter(name=package_name).exclude(status=Package.Status.REMOVED).first()
    )
    if package is not None:
        return NameConflict(
            message=f"{package_name} is already a package of the distribution "
            f"({package.get_status_display().lower()}).",
            url=package.get_absolute_url(),
            link_text=f"See the {package_name} package page",
        )
    proposals = Proposal.objects.filter(package_name=package_name, state__in=OPEN_PROPOSAL_STATES)
    if exclude_proposal_id is not None:
        proposals = proposals.exclude(pk=exclude_proposal_id)
    proposal = proposals.first()
    if proposal is not None:
        return NameConflict(
            message=f"{package_name} has already been proposed and the proposal is open "
            f"({proposal.get_state_display().lower()}).",
            url=proposal.get_absolute_url(),
            link_text="See that proposal",
        )
    return None


def count_recent_proposals(*, client_fingerprint: str, hours: int = 1) -> int:
    """Proposals submitted by one client in the last `hours` (the rate limit's count)."""
    since = timezone.now() - timedelta(hours=hours)
    return Proposal.objects.filter(
        client_fingerprint=client_fingerprint, created_at__gte=since
    ).count()


def get_catalog_records(
    *, names: set[str], subdirs: tuple[str, ...]
) -> dict[str, list[CatalogRecord]]:
    """Live builds of the named packages in the given subdirs, by name (one query)."""
    if not names:
        return {}
    rows = (
        Build.objects.filter(name__in=names, subdir__in=subdirs)
        .exclude(state=Build.State.WITHDRAWN)
        .values_list("name", "version", "build_string", "build_number", "subdir", "channel__name")
        .distinct()
    )
    records: dict[str, list[CatalogRecord]] = defaultdict(list)
    for name, version, build, number, subdir, channel in rows:
        records[name].append(
            CatalogRecord(
                name=name,
                version=version,
                build=build,
                build_number=number,
                subdir=subdir,
                channel=channel,
            )
        )
    return dict(records)


def catalog_has_builds() -> bool:
    return Build.objects.exists()


@dataclass(frozen=True)
class MaintainerHome:
    """What a signed-in maintainer sees: their Maintainer rows, packages and proposals."""

    maintainers: list[Maintainer]
    packages: list[Package]
    proposals: list[Proposal]


def account_maintainers(user) -> QuerySet[Maintainer]:
    """The Maintainer rows that are this account: the one linked to it, and any row not linked
    to an account that has the account's email. Approval creates Maintainer rows from a
    proposal, without accounts; accounts are made by staff, so their email is trusted. Every
    maintainer permission (retry, CI tokens, installability checks) and the account page use
    this one rule."""
    if not user.is_authenticated:
        return Maintainer.objects.none()
    email = (user.email or "").strip()
    match = Q(user=user)
    if email:
        match |= Q(user__isnull=True, email__iexact=email)
    return Maintainer.objects.filter(match)


def github_login_of(user) -> str:
    """The GitHub login connected to this account ("" when none), as GitHub last reported it."""
    if not user.is_authenticated:
        return ""
    account = SocialAccount.objects.filter(user=user, provider="github").first()
    return str((account.extra_data or {}).get("login", "")) if account else ""


def maintains_every_build(user, builds) -> bool:
    """Whether this account maintains the package of every one of `builds` (one query)."""
    package_ids = {build.package_id for build in builds}
    if not package_ids or None in package_ids:
        return False
    maintained = Package.objects.filter(
        pk__in=package_ids, maintainers__in=account_maintainers(user)
    ).values_list("pk", flat=True)
    return set(maintained) == package_ids


def get_maintainer_home(*, user) -> MaintainerHome:
    """Packages of the account's Maintainer rows (account_maintainers), and proposals naming
    the account's or those rows' email as contact or maintainer (three queries)."""
    email = (user.email or "").strip()
    maintainers = list(account_maintainers(user).order_by("pk"))
    packages = (
        list(Package.objects.filter(maintainers__in=maintainers).distinct().order_by("name"))
        if maintainers
        else []
    )
    proposals: list[Proposal] = []
    emails = {email.lower()} if email else set()
    emails |= {m.email.lower() for m in maintainers}
    if emails:
        query = Q()
        for address in sorted(emails):
            query |= Q(contact_email__iexact=address)
            # The quoted address inside the JSON text: works on PostgreSQL and SQLite alike.
            query |= Q(maintainers_data__icontains=f'"{address}"')
        proposals = list(
            Proposal.objects.filter(query).select_related("package").order_by("-created_at")
        )
    return MaintainerHome(maintainers=maintainers, packages=packages, proposals=proposals)
