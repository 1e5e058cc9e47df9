"""What each trigger tells whom: the notices of finished jobs, releases, promotions, decisions.

Each function names the root cause (the key that makes a notice once-only) and the people
concerned, then hands over to notifications.notify. The callers are other services, which call
them inside their own transaction, so a notice exists exactly when its cause was committed.
"""

from collections import defaultdict

from packages_app.models import Maintainer
from packages_app.models import Package
from testing_app.models import CellResult
from testing_app.models import Job
from testing_app.models import Notification
from testing_app.models.verdicts import Verdict
from testing_app.services.notifications import Notice
from testing_app.services.notifications import absolute_url
from testing_app.services.notifications import notify

Kind = Notification.Kind
# The package's own problem: a maintainer can act on it (infrastructure errors are ours).
NOTIFIED_VERDICTS = frozenset(
    {Verdict.FAILED, Verdict.UNINSTALLABLE, Verdict.NO_TESTS, Verdict.TIMEOUT}
)
EXCERPT_LINES = 25


def _cell(job: Job) -> str:
    python = f", Python {job.python}" if job.python else ""
    return (
        f"PyTorch {job.torch_release.version} x {job.variant.name} x {job.platform.subdir}"
        f"{python}: {Verdict(job.verdict).label.lower()}"
    )


def _excerpt(job: Job) -> str:
    text = job.failure_excerpt or job.error_message or job.log_tail
    lines = text.strip().splitlines()[-EXCERPT_LINES:]
    return "\n".join(f"    {line}" for line in lines)


def notify_job_finished(*, job: Job) -> list[Notification]:
    """A finished job's notices: the package's own failure, or, for a re-test with an upstream
    build pinned that turned a passing cell into a failing one, the breakage on both sides."""
    if job.verdict not in NOTIFIED_VERDICTS:
        return []
    if job.verdict == Verdict.TIMEOUT and job.retries.exists():
        return []  # retried once automatically: the retry decides
    job = (
        Job.objects.select_related(
            "build__package",
            "build__channel",
            "pinned_build__package",
            "torch_release",
            "variant",
            "platform",
        )
        .prefetch_related("build__package__maintainers", "pinned_build__package__maintainers")
        .get(pk=job.pk)
    )
    package = job.build.package
    if package is None:
        return []  # a build of no registered package has nobody to tell
    if job.pinned_build_id:
        # A re-test with an upstream build pinned is about the upstream build: it tells people
        # only when it broke a cell that passes on its own (the dependent's own cell, which the
        # re-test never changes). A failure the dependent already had was told of by its own
        # cell, and is not a new cause.
        own = CellResult.objects.filter(
            build_id=job.build_id,
            torch_release_id=job.torch_release_id,
            variant_id=job.variant_id,
            platform_id=job.platform_id,
            python=job.python,
        ).first()
        if own is not None and own.verdict == Verdict.PASSED:
            return _notify_breakage(job, package)
        return []
    return _notify_own_failure(job, package)


def _notify_own_failure(job: Job, package: Package) -> list[Notification]:
    build = job.build
    excerpt = _excerpt(job)
    body = (
        f"{build.filename} ({build.channel.name if build.channel_id else ''}) no longer passes "
        f"on every cell. First failing job: {absolute_url(job.get_absolute_url())}\n"
        + (f"\nExcerpt:\n{excerpt}\n" if excerpt else "")
        + "\nCells:"
    )
    notice = Notice(
        kind=Kind.OWN_FAILURE,
        root_cause_key=_failing_episode_key(job),
        subject=f"{build.name} {build.version} fails its tests",
        body=body,
        details=(_cell(job),),
        link=job.get_absolute_url(),
        package=package,
        build=build,
    )
    return notify(maintainers=package.maintainers.all(), notice=notice)


def _failing_episode_key(job: Job) -> str:
    """The root cause of an own-failure notice: the build's current failing episode.

    An episode opens when a build that had no failing cell gets one, and is named by the job
    that opened it; every later failure while some cell still fails belongs to it (no repeat
    while the state is unchanged). Once every cell has passed again, the next failure opens a
    new episode and tells the maintainers again. Infrastructure errors neither open nor close an
    episode: only a passing or a failing verdict says what the package does.
    """
    prefix = f"build:{job.build_id}:failing"
    if not _build_was_failing_before(job):
        return f"{prefix}:job:{job.pk}"
    told = (
        Notification.objects.filter(
            kind=Kind.OWN_FAILURE, build_id=job.build_id, root_cause_key__startswith=prefix
        )
        .order_by("-pk")
        .values_list("root_cause_key", flat=True)
        .first()
    )
    # A failing episode nobody was told of yet (all verdicts were recorded before notices
    # existed, say) is opened by this job.
    return told or f"{prefix}:job:{job.pk}"


def _build_was_failing_before(job: Job) -> bool:
    """Whether the build had a failing cell before this job finished: another cell fails now,
    or this cell's last passing-or-failing job before this one failed."""
    same_cell = {
        "torch_release_id": job.torch_release_id,
        "variant_id": job.variant_id,
        "platform_id": job.platform_id,
        "python": job.python,
    }
    other_failing = (
        CellResult.objects.filter(build_id=job.build_id, verdict__in=NOTIFIED_VERDICTS)
        .exclude(**same_cell)
        .exists()
    )
    if other_failing:
        return True
    # Test jobs only: a passing install check says the cell installs, not that its tests pass,
    # so it never ends a test failure's episode (each re-run starts with one).
    last_decisive = (
        Job.objects.filter(
            kind=Job.Kind.TEST,
            build_id=job.build_id,
            pinned_build__isnull=True,
            verdict__in=[Verdict.PASSED, *NOTIFIED_VERDICTS],
            finished_at__isnull=False,
            **same_cell,
        )
        .exclude(pk=job.pk)
        .order_by("-finished_at", "-pk")
        .values_list("verdict", flat=True)
        .first()
    )
    return last_decisive in NOTIFIED_VERDICTS


def _notify_breakage(job: Job, package: Package) -> list[Notification]:
    upstream, build = job.pinned_build, job.build
    job_url = absolute_url(job.get_absolute_url())
    culprit = f"{upstream.name} {upstream.version} ({upstream.subdir}/{upstream.filename})"
    told = notify(
        maintainers=package.maintainers.all(),
        notice=Notice(
            kind=Kind.UPSTREAM_BREAKAGE,
            root_cause_key=f"build:{upstream.pk}:breaks-dependents",
            subject=f"{culprit.split(' (')[0]} broke {package.name}",
            body=(
                f"{package.name} passed before; re-tested with the new upstream build {culprit} "
                f"pinned, it fails. The upstream maintainers are told too.\n"
                f"Job: {job_url}\n\nExcerpt:\n{_excerpt(job)}\n\nAffected:"
            ),
            details=(f"{build.name} {build.version}: {_cell(job)}",),
            link=job.get_absolute_url(),
            package=package,
            build=build,
        ),
    )
    if upstream.package is not None:
        told += notify(
            maintainers=upstream.package.maintainers.all(),
            notice=Notice(
                kind=Kind.DOWNSTREAM_BREAKAGE,
                root_cause_key=f"build:{upstream.pk}:breaks-dependents",
                subject=f"Your build {upstream.name} {upstream.version} broke dependent packages",
                body=(
                    f"Packages that passed before fail when re-tested with {culprit} pinned. "
                    "Their maintainers are told too.\n\nBroken dependents:"
                ),
                # No job link in the line: a later run of the same cause must find it known.
                details=(f"{build.name} {build.version}: {_cell(job)}",),
                link=job.get_absolute_url(),
                package=upstream.package,
                build=upstream,
            ),
        )
    return told


def notify_bump_needed(*, release, impacts) -> list[Notification]:
    """One notice per maintainer for a new PyTorch release that their packages' bounds exclude.

    The root cause is the release series (an rc and its final share it), so an rc and then the
    final do not tell anyone twice.
    """
    from testing_app.selectors.releases import final_version

    packages_of: dict[int, list] = defaultdict(list)
    people: dict[int, Maintainer] = {}
    for impact in impacts:  # PackageImpact rows with their maintainers attached
        for maintainer in impact.maintainers:
            people[maintainer.pk] = maintainer
            packages_of[maintainer.pk].append(impact)
    created = []
    final = final_version(release)
    for maintainer_id, rows in packages_of.items():
        notice = Notice(
            kind=Kind.BUMP_NEEDED,
            root_cause_key=f"pytorch:{final}:bump-needed",
            subject=f"PyTorch {final} is outside your packages' bounds: a bump is needed",
            body=(
                f"PyTorch {release.version} was registered. The latest builds of these packages "
                f"exclude it, so they will not be tested or installed with PyTorch {final} "
                "until a build with a wider bound is published:"
            ),
            details=tuple(
                f"{r.package.name} {r.version}: {r.specs}" for r in sorted(rows, key=_by_name)
            ),
            link=f"/releases/{release.version}/",
            package=rows[0].package if len(rows) == 1 else None,
        )
        created += notify(maintainers=[people[maintainer_id]], notice=notice)
    return created


def _by_name(impact) -> str:
    return impact.package.name


def notify_lifecycle(*, event, package: Package, kind: str, detail: str) -> list[Notification]:
    """At-risk, deprecation, removal and reinstatement notices: one per lifecycle step."""
    verbs = {
        Kind.AT_RISK: "is at risk",
        Kind.DEPRECATED: "is deprecated",
        Kind.REMOVAL: "was removed from the channel",
        Kind.REINSTATED: "is active again",
    }
    notice = Notice(
        kind=kind,
        root_cause_key=f"package:{package.pk}:status-event:{event.pk}",
        subject=f"{package.name} {verbs[kind]}",
        body=f"{package.name}: {event.from_status} -> {event.to_status}. {event.reason}"
        f"\n\n{detail}",
        link=package.get_absolute_url(),
        package=package,
    )
    return notify(maintainers=package.maintainers.all(), notice=notice)


def notify_proposal_decision(*, proposal, note) -> list[Notification]:
    """An approved proposal tells the maintainers it registered (the proposal's contact already
    gets the decision email, so they are not told twice)."""
    if note.decision != note.Decision.APPROVE or proposal.package is None:
        return []
    contact = (proposal.contact_email or "").lower()
    maintainers = [m for m in proposal.package.maintainers.all() if m.email.lower() != contact]
    notice = Notice(
        kind=Kind.PROPOSAL_DECISION,
        root_cause_key=f"proposal:{proposal.pk}:approve",
        subject=f"{proposal.package_name} was accepted: you are a maintainer",
        body=(
            f"The proposal of {proposal.package_name} was approved by {note.author_name}; you are "
            f"listed as a maintainer.\n\n{note.body}"
        ),
        link=proposal.package.get_absolute_url(),
        package=proposal.package,
    )
    return notify(maintainers=maintainers, notice=notice)
