"""One notice per root cause: the body of a notice, and what happens when more of a cause told
already is found (merged while the notice waits; one follow-up once it went out).

Split from notifications.py, which calls these for every maintainer it tells."""

from collections.abc import Callable
from collections.abc import Iterable
from functools import partial

from django.db import transaction

from packages_app.models import Maintainer
from testing_app.models import Notification

State = Notification.State
# Details kept on one row; a cause that touches more cells says "and N more" instead.
MAX_DETAILS = 30
MORE_MARKER = "… and more"
# The root cause key of the one follow-up a maintainer gets for a cause.
FOLLOW_UP_SUFFIX = ":update"


def notice_body(notice) -> str:
    lines = [notice.body.rstrip()]
    if notice.details:
        lines.append("")
        lines.extend(f"- {detail}" for detail in notice.details[:MAX_DETAILS])
    return "\n".join(lines)


def merge_details(body: str, details: Iterable[str]) -> str:
    present = set(body.splitlines())
    new = [f"- {d}" for d in details if f"- {d}" not in present]
    if not new:
        return body
    bullets = sum(1 for line in body.splitlines() if line.startswith("- "))
    room = max(0, MAX_DETAILS - bullets)
    extra = new[:room] + ([MORE_MARKER] if len(new) > room and MORE_MARKER not in present else [])
    return body.rstrip() + ("\n" if bullets else "\n\n") + "\n".join(extra)


def told_of_cause(maintainer: Maintainer, notice) -> Notification | None:
    """The maintainer's notice of this root cause under another kind (a maintainer of both the
    culprit and a victim): one cause is one notice, whatever side of it they are on."""
    return (
        Notification.objects.filter(
            maintainer=maintainer, root_cause_key=notice.root_cause_key[:200]
        )
        .exclude(kind=notice.kind)
        .exclude(root_cause_key__endswith=FOLLOW_UP_SUFFIX)
        .order_by("pk")
        .first()
    )


def add_details(row: Notification, maintainer: Maintainer, notice, *, send: Callable[[int], None]):
    """New details of a cause already told: merged into the row while it waits (a digest not
    sent yet); once it has gone out (by email or in a digest), one follow-up carries them (and
    later ones, while it waits); after the follow-up went out, nothing more. Returns the
    follow-up when it was created."""
    if not notice.details:
        return None
    if row.state == State.QUEUED:
        merged = merge_details(row.body, notice.details)
        if merged != row.body:
            Notification.objects.filter(pk=row.pk).update(body=merged)
        return None
    told = row.state in (State.SENT, State.DIGESTED)
    if not told or row.root_cause_key.endswith(FOLLOW_UP_SUFFIX):
        return None
    new = [d for d in notice.details if f"- {d}" not in row.body.splitlines()]
    if not new:
        return None
    key = row.root_cause_key[: 200 - len(FOLLOW_UP_SUFFIX)] + FOLLOW_UP_SUFFIX
    follow_up, is_new = Notification.objects.get_or_create(
        maintainer=maintainer,
        kind=row.kind,
        root_cause_key=key,
        defaults={
            "subject": f"Update: {row.subject}"[:300],
            "body": merge_details(f"{notice.body.rstrip()}\n\nFound since the first notice:", new),
            "link": row.link,
            "package": row.package,
            "build": row.build,
            "state": State.QUEUED,
        },
    )
    if not is_new:
        return add_details(follow_up, maintainer, notice, send=send)
    if maintainer.notify_mode == maintainer.NotifyMode.IMMEDIATE:
        transaction.on_commit(partial(send, follow_up.pk))
    return follow_up  # a daily maintainer's goes out with the next digest
