"""Suggested coordinated sets, read from the stored set-partner solves.

A staged build that the solver cannot install from the target and upstream channels alone,
but can once other staged builds are added, needs those builds (services/set_solves.py finds
the fewest it cannot go without). Builds joined by that need, in either direction and through
other members (mv-vision and mv-audio meet through pytorch), are one set: promoting one without
the others leaves users with something they cannot install. Ranges, exact pins and needs that
arise only deeper in the environment are all found, because the solver decides, not a reading
of the metadata.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count
from django.db.models import Q

from distro_site.sql_arrays import in_array
from packages_app.models import Build
from testing_app.models import SetPartnerSolve

State = SetPartnerSolve.State


@dataclass(frozen=True)
class PartnerFinding:
    """The newest finished solve of one build on one platform."""

    build_id: int
    subdir: str
    alone_ok: bool
    with_staged_ok: bool | None
    partner_ids: tuple[int, ...]
    explanation: str
    finished_at: datetime | None


def latest_findings(build_ids) -> dict[tuple[int, str], PartnerFinding]:
    """(build id, subdir) -> its newest finished solve, for these builds (one query)."""
    findings: dict[tuple[int, str], PartnerFinding] = {}
    rows = (
        SetPartnerSolve.objects.filter(build_id__in=in_array(build_ids), state=State.DONE)
        .order_by("-id")
        .values_list(
            "build_id",
            "subdir",
            "alone_ok",
            "with_staged_ok",
            "partner_ids",
            "alone_explanation",
            "finished_at",
        )
    )
    for build_id, subdir, alone, with_staged, partners, explanation, finished in rows:
        key = (build_id, subdir)
        if key not in findings:
            findings[key] = PartnerFinding(
                build_id, subdir, alone, with_staged, tuple(partners or ()), explanation, finished
            )
    return findings


def partner_groups(build_ids, findings) -> list[list[int]]:
    """The connected groups (two or more) of `build_ids` joined by their partner findings;
    partners outside `build_ids` (promoted or withdrawn since) are left out."""
    members = set(build_ids)
    parent = {pk: pk for pk in members}

    def find(pk: int) -> int:
        while parent[pk] != pk:
            parent[pk] = parent[parent[pk]]
            pk = parent[pk]
        return pk

    for finding in findings.values():
        if finding.build_id not in members:
            continue
        for partner in finding.partner_ids:
            if partner in members:
                parent[find(finding.build_id)] = find(partner)
    groups: dict[int, list[int]] = {}
    for pk in members:
        groups.setdefault(find(pk), []).append(pk)
    return [sorted(group) for group in groups.values() if len(group) > 1]


def suggest_sets(builds: list[Build]) -> list[list[int]]:
    """Groups of these candidates that need each other, from their stored solves. Returns lists
    of build ids sorted by (name, subdir), for groups of two or more."""
    by_pk = {b.pk: b for b in builds}
    groups = partner_groups(by_pk, latest_findings(by_pk))
    ordered = [
        sorted(group, key=lambda pk: (by_pk[pk].name, by_pk[pk].subdir, pk)) for group in groups
    ]
    return sorted(ordered, key=lambda ids: ids[0])


def suggest_set_for(build: Build, candidate_ids) -> list[int]:
    """The suggested set `build` belongs to among `candidate_ids` ([] if none), sorted by id."""
    ids = set(candidate_ids) | {build.pk}
    for group in partner_groups(ids, latest_findings(ids)):
        if build.pk in group:
            return group
    return []


@dataclass(frozen=True)
class SetSolveProgress:
    """How far the solves behind the suggested sets are: shown next to them."""

    pending: int
    failed: int


def get_set_solve_progress(build_ids) -> SetSolveProgress:
    """Solves of these builds still queued or running, and those that could not run."""
    counts = SetPartnerSolve.objects.filter(build_id__in=in_array(build_ids)).aggregate(
        pending=Count("pk", filter=Q(state__in=[State.QUEUED, State.RUNNING])),
        failed=Count("pk", filter=Q(state=State.ERROR)),
    )
    return SetSolveProgress(pending=counts["pending"], failed=counts["failed"])


@dataclass(frozen=True)
class BuildPartnerSolve:
    """One platform's newest set-partner solve of a build, with its partners' builds."""

    solve: SetPartnerSolve
    partners: list[Build]


def get_build_partner_solves(build: Build) -> list[BuildPartnerSolve]:
    """The newest solve per platform of `build` (queued ones included), two queries."""
    newest: dict[str, SetPartnerSolve] = {}
    for row in SetPartnerSolve.objects.filter(build=build).order_by("-id"):
        newest.setdefault(row.subdir, row)
    wanted = {pk for row in newest.values() for pk in row.partner_ids}
    builds = {b.pk: b for b in Build.objects.filter(pk__in=wanted)} if wanted else {}
    return [
        BuildPartnerSolve(row, [builds[pk] for pk in row.partner_ids if pk in builds])
        for _, row in sorted(newest.items())
    ]
