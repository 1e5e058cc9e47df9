"""Notifications: one per maintainer per root cause, sent at once or in a daily digest.

`notify` records a Notification per (maintainer, root_cause_key) with get_or_create, so a
cause that stays unchanged is never told twice however many cells, runs or kinds report it; a
row still waiting to go out gains the new details instead, and an immediate maintainer already
told gets one follow-up with what was found since. Opted-out kinds are recorded as `suppressed`.
Maintainers on `immediate` get an email from an RQ job right after commit; the others get one
digest a day (`send_daily_digests`). Emails go through Django's mail API (EMAIL_URL) with an
unsubscribe link; a package with a notice issue also gets a GitHub comment per cause.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta
from functools import partial

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from packages_app.models import Build
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import new_status_token
from testing_app.adapters.github import GitHubError
from testing_app.adapters.github import post_issue_comment
from testing_app.models import Notification
from testing_app.models import PackageNoticeIssue
from testing_app.services.notice_threads import add_details
from testing_app.services.notice_threads import notice_body
from testing_app.services.notice_threads import told_of_cause

logger = logging.getLogger(__name__)

Kind = Notification.Kind
State = Notification.State
NOTIFICATION_QUEUE = "default"
# RQ entry points are enqueued by dotted name: jobs.py imports the services, never the reverse.
SEND_FUNCTION = "testing_app.jobs.rq_send_notification"
COMMENT_FUNCTION = "testing_app.jobs.rq_comment_notification"
# Details kept on one row; a cause that touches more cells says "and N more" instead.
MAX_DETAILS = 30
# An immediate notice still queued this long after creation lost its job (e.g. Redis was
# flushed): the sweeper sends it.
OVERDUE_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Notice:
    """What to tell about one root cause, whoever is told."""

    kind: str
    root_cause_key: str
    subject: str
    body: str
    # One line per affected cell/package/build; merged into a row still waiting to go out.
    details: tuple[str, ...] = ()
    link: str = ""  # a site path or an absolute URL
    package: Package | None = None
    build: Build | None = None
    metadata: dict = field(default_factory=dict)


def absolute_url(path: str) -> str:
    return path if "://" in path or not path else settings.SITE_URL + path


@transaction.atomic
def notify(*, maintainers: Iterable[Maintainer], notice: Notice) -> list[Notification]:
    """Record `notice` for each maintainer, once per root cause; returns the rows it created.

    A maintainer who already has this (kind, root cause) is not told again; while that row is
    still queued (digest not sent yet) it gains the notice's new details.
    """
    if notice.kind not in Kind.values:
        raise ValidationError(f"Unknown notification kind {notice.kind!r}.")
    # Only the optional GitHub comment needs to know whether anyone was told of this cause.
    cause_seen = (
        bool(settings.GITHUB_TOKEN)
        and Notification.objects.filter(
            kind=notice.kind, root_cause_key=notice.root_cause_key
        ).exists()
    )
    created = []
    for maintainer in {m.pk: m for m in maintainers}.values():
        told = told_of_cause(maintainer, notice)
        if told is not None:
            follow_up = add_details(told, maintainer, notice, send=enqueue_send)
            if follow_up is not None:
                created.append(follow_up)
            continue
        row, is_new = Notification.objects.get_or_create(
            maintainer=maintainer,
            kind=notice.kind,
            root_cause_key=notice.root_cause_key[:200],
            defaults={
                "subject": notice.subject[:300],
                "body": notice_body(notice),
                "link": absolute_url(notice.link)[:500],
                "package": notice.package,
                "build": notice.build,
                "state": State.SUPPRESSED
                if notice.kind in maintainer.muted_kinds
                else State.QUEUED,
            },
        )
        if is_new:
            created.append(row)
            if (
                row.state == State.QUEUED
                and maintainer.notify_mode == maintainer.NotifyMode.IMMEDIATE
            ):
                transaction.on_commit(partial(enqueue_send, row.pk))
        else:
            follow_up = add_details(row, maintainer, notice, send=enqueue_send)
            if follow_up is not None:
                created.append(follow_up)
    if created and not cause_seen and _wants_github_comment(notice, created):
        transaction.on_commit(partial(enqueue_github_comment, created[0].pk))
    return created


def _wants_github_comment(notice: Notice, created: list[Notification]) -> bool:
    if not settings.GITHUB_TOKEN or notice.package is None:
        return False
    if not any(row.state == State.QUEUED for row in created):
        return False  # everybody concerned opted out of this kind
    return PackageNoticeIssue.objects.filter(package=notice.package).exists()


def enqueue_send(notification_id: int) -> None:
    django_rq.get_queue(NOTIFICATION_QUEUE).enqueue(
        SEND_FUNCTION, notification_id, result_ttl=3600, failure_ttl=7 * 24 * 3600
    )


def enqueue_github_comment(notification_id: int) -> None:
    django_rq.get_queue(NOTIFICATION_QUEUE).enqueue(
        COMMENT_FUNCTION, notification_id, result_ttl=3600, failure_ttl=7 * 24 * 3600
    )


def preferences_path(maintainer: Maintainer) -> str:
    return reverse(
        "testing:notification-preferences", kwargs={"token": maintainer.unsubscribe_token}
    )


def unsubscribe_path(maintainer: Maintainer, *, kind: str = "") -> str:
    path = reverse(
        "testing:notification-unsubscribe", kwargs={"token": maintainer.unsubscribe_token}
    )
    return f"{path}?kind={kind}" if kind else path


def _email(maintainer: Maintainer, *, subject: str, template: str, context: dict, kind: str = ""):
    unsubscribe = absolute_url(unsubscribe_path(maintainer, kind=kind))
    context = {
        **context,
        "maintainer": maintainer,
        "preferences_url": absolute_url(preferences_path(maintainer)),
        "unsubscribe_url": unsubscribe,
        "unsubscribe_all_url": absolute_url(unsubscribe_path(maintainer)),
        # Every notice links the maintainers' guide: what the verdicts mean, how to fix, retry.
        "guide_url": absolute_url(reverse("guide-page", kwargs={"slug": "maintainers"})),
    }
    return EmailMessage(
        subject=subject,
        body=render_to_string(template, context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[maintainer.email],
        # RFC 8058 one-click unsubscribe: mail clients show their own button for it.
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def send_notification(*, notification_id: int) -> Notification | None:
    """Email one queued notification now (immediate mode). A failure is recorded on the row
    (state `failed`, with the reason) and raised, so the job shows it too; a row that is not
    queued any more (sent, digested, suppressed) is left alone.

    Not one atomic block: the failure must be stored after the sending transaction rolled back.
    """
    try:
        with transaction.atomic():
            row = (
                Notification.objects.select_for_update(of=("self",))
                .select_related("maintainer")
                .filter(pk=notification_id)
                .first()
            )
            if row is None or row.state != State.QUEUED:
                return row
            if row.kind in row.maintainer.muted_kinds:
                row.state = State.SUPPRESSED
                row.save(update_fields=["state"])
                return row
            _email(
                row.maintainer,
                subject=f"[conda-distro] {row.subject}",
                template="testing_app/email/notification.txt",
                context={"notification": row},
                kind=row.kind,
            ).send()
            row.state, row.sent_at, row.error_message = State.SENT, timezone.now(), ""
            row.save(update_fields=["state", "sent_at", "error_message"])
            return row
    except (OSError, ValueError) as exc:  # smtplib errors are OSErrors
        logger.exception("notification %s not sent", notification_id)
        Notification.objects.filter(pk=notification_id, state=State.QUEUED).update(
            state=State.FAILED, error_message=str(exc)[:2000]
        )
        raise


@dataclass
class DigestReport:
    digests: int = 0
    notifications: int = 0
    failed: list[str] = field(default_factory=list)


def send_daily_digests() -> DigestReport:
    """One email per daily-digest maintainer with everything queued for them, grouped by kind.

    Each maintainer's digest is its own transaction: a failed send keeps that maintainer's rows
    queued (with the error) for the next run and does not stop the others. Raises at the end
    when any digest failed, so the periodic job shows the failure.
    """
    report = DigestReport()
    maintainer_ids = (
        Notification.objects.filter(
            state=State.QUEUED, maintainer__notify_mode=Maintainer.NotifyMode.DAILY
        )
        .order_by()
        .values_list("maintainer_id", flat=True)
        .distinct()
    )
    for maintainer_id in sorted(set(maintainer_ids)):
        try:
            report.notifications += send_digest(maintainer_id=maintainer_id)
            report.digests += 1
        except (OSError, ValueError) as exc:
            logger.exception("digest for maintainer %s not sent", maintainer_id)
            Notification.objects.filter(maintainer_id=maintainer_id, state=State.QUEUED).update(
                error_message=f"digest not sent: {exc}"[:2000]
            )
            report.failed.append(f"maintainer {maintainer_id}: {exc}")
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} digest(s) not sent: {'; '.join(report.failed)}")
    return report


def group_digest(rows: list[Notification]) -> list[tuple[str, list[Notification]]]:
    """Rows grouped by kind, in the order of Notification.Kind, oldest first inside a group."""
    by_kind: dict[str, list[Notification]] = {}
    for row in sorted(rows, key=lambda r: (r.created_at, r.pk)):
        by_kind.setdefault(row.kind, []).append(row)
    return [(Kind(k).label, by_kind[k]) for k in Kind.values if k in by_kind]


@transaction.atomic
def send_digest(*, maintainer_id: int) -> int:
    """Send one maintainer's digest now; returns how many notifications it carried."""
    maintainer = Maintainer.objects.get(pk=maintainer_id)
    rows = list(
        Notification.objects.select_for_update()
        .filter(maintainer=maintainer, state=State.QUEUED)
        .order_by("created_at", "pk")
    )
    muted = [r.pk for r in rows if r.kind in maintainer.muted_kinds]
    Notification.objects.filter(pk__in=muted).update(state=State.SUPPRESSED)
    rows = [r for r in rows if r.pk not in muted]
    if not rows:
        return 0
    count = len(rows)
    _email(
        maintainer,
        subject=f"[conda-distro] Daily digest: {count} notice{'s' if count != 1 else ''}",
        template="testing_app/email/digest.txt",
        context={"groups": group_digest(rows), "count": count},
    ).send()
    Notification.objects.filter(pk__in=[r.pk for r in rows]).update(
        state=State.DIGESTED, sent_at=timezone.now(), error_message=""
    )
    return count


def send_overdue_notifications() -> int:
    """Re-enqueue immediate notices whose send job never ran (Redis lost, worker down)."""
    overdue = list(
        Notification.objects.filter(
            state=State.QUEUED,
            maintainer__notify_mode=Maintainer.NotifyMode.IMMEDIATE,
            created_at__lt=timezone.now() - OVERDUE_AFTER,
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in overdue:
        enqueue_send(pk)
    return len(overdue)


def comment_notification(*, notification_id: int) -> Notification:
    """Post one cause on the package's notice issue, mentioning the maintainers who did not opt
    out of its kind; the comment URL is kept on every row of that cause. A GitHub error is
    recorded on the row and raised."""
    row = Notification.objects.select_related("package__notice_issue").get(pk=notification_id)
    issue = getattr(row.package, "notice_issue", None) if row.package else None
    if issue is None or not settings.GITHUB_TOKEN:
        return row
    siblings = Notification.objects.filter(kind=row.kind, root_cause_key=row.root_cause_key)
    if siblings.exclude(github_comment_url="").exists():
        return row  # a duplicate delivery: the comment is there
    handles = sorted(
        {
            f"@{s.maintainer.github_handle}"
            for s in siblings.select_related("maintainer")
            if s.maintainer.github_handle and s.state != State.SUPPRESSED
        }
    )
    body = render_to_string(
        "testing_app/email/github_comment.md",
        {
            "notification": row,
            "handles": handles,
            "guide_url": absolute_url(reverse("guide-page", kwargs={"slug": "maintainers"})),
        },
    )
    try:
        url = post_issue_comment(issue_url=issue.issue_url, body=body, token=settings.GITHUB_TOKEN)
    except GitHubError as exc:
        Notification.objects.filter(pk=row.pk).update(error_message=f"GitHub: {exc}"[:2000])
        raise
    siblings.update(github_comment_url=url[:500])
    row.github_comment_url = url
    return row


# --- preferences (the maintainer's own page, reached by the token in every email) ----------


def get_maintainer_by_token(token: str) -> Maintainer | None:
    """The maintainer whose preferences link carries `token` ("<pk>.<hmac>"), else None."""
    pk, _, digest = (token or "").partition(".")
    if not pk.isdigit() or len(pk) > 18 or len(digest) != 64:
        return None
    maintainer = Maintainer.objects.filter(pk=int(pk)).first()
    if maintainer is None or not maintainer.unsubscribe_token_matches(token):
        return None
    return maintainer


@transaction.atomic
def update_preferences(*, maintainer: Maintainer, notify_mode: str, muted_kinds: list[str]):
    """Change how a maintainer is told (immediate or daily) and which kinds they skip."""
    unknown = sorted(set(muted_kinds) - set(Kind.values))
    if unknown:
        raise ValidationError({"muted_kinds": f"Unknown kinds: {', '.join(unknown)}."})
    maintainer.notify_mode = notify_mode
    maintainer.muted_kinds = sorted(set(muted_kinds))
    maintainer.full_clean()
    maintainer.save(update_fields=["notify_mode", "muted_kinds"])
    # Queued notices of a kind now muted are not sent later either.
    Notification.objects.filter(
        maintainer=maintainer, state=State.QUEUED, kind__in=maintainer.muted_kinds
    ).update(state=State.SUPPRESSED)
    return maintainer


@transaction.atomic
def unsubscribe(*, maintainer: Maintainer, kind: str = "") -> Maintainer:
    """Stop one kind of notice, or every kind when `kind` is empty."""
    if kind and kind not in Kind.values:
        raise ValidationError({"kind": f"Unknown kind {kind!r}."})
    kinds = set(maintainer.muted_kinds) | ({kind} if kind else set(Kind.values))
    return update_preferences(
        maintainer=maintainer, notify_mode=maintainer.notify_mode, muted_kinds=sorted(kinds)
    )


@transaction.atomic
def reset_preferences_link(*, maintainer: Maintainer) -> Maintainer:
    """A new token: links in earlier emails stop working (e.g. one was forwarded)."""
    maintainer.unsubscribe_salt = new_status_token()
    maintainer.save(update_fields=["unsubscribe_salt"])
    return maintainer


@transaction.atomic
def set_notice_issue(*, maintainer: Maintainer, package: Package, issue_url: str):
    """A maintainer names (or, with an empty URL, clears) the GitHub issue of one of their
    packages where notices are also posted as comments."""
    if not package.maintainers.filter(pk=maintainer.pk).exists():
        raise ValidationError(f"You do not maintain {package.name}.")
    if not issue_url:
        PackageNoticeIssue.objects.filter(package=package).delete()
        return None
    issue, _ = PackageNoticeIssue.objects.update_or_create(
        package=package, defaults={"issue_url": issue_url}
    )
    issue.full_clean()
    return issue
