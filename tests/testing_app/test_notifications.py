"""Notifications: one per maintainer per root cause, immediate or in a daily digest, opt-out,
unsubscribe, the GitHub comment, and the triggers (finished jobs, decisions, promotions)."""

from datetime import timedelta

import pytest
import responses
from django.core import mail
from django.utils import timezone

from packages_app.models import Maintainer
from packages_app.services.reviews import decide_proposal
from testing_app.models import Job
from testing_app.models import Notification
from testing_app.models import PackageNoticeIssue
from testing_app.models import Variant
from testing_app.models import Verdict
from testing_app.services.notifications import Notice
from testing_app.services.notifications import group_digest
from testing_app.services.notifications import notify
from testing_app.services.notifications import send_daily_digests
from testing_app.services.notifications import send_overdue_notifications
from testing_app.services.promotion_followups import notify_maintainers
from testing_app.services.reconcile import reconcile
from tests import factories
from tests.testing_app.notice_helpers import drain_default_queue
from tests.testing_app.notice_helpers import failed_jobs
from tests.testing_app.notice_helpers import finish
from tests.testing_app.notice_helpers import refusing_smtp

Kind = Notification.Kind
State = Notification.State
IMMEDIATE = Maintainer.NotifyMode.IMMEDIATE
DAILY = Maintainer.NotifyMode.DAILY
EXCERPT = "E   AssertionError: kornia.filters.gaussian differs\nTESTS FAILED: kornia-0.7.3"


@pytest.fixture
def kornia(db):
    """kornia with two maintainers (one immediate, one daily) and one build."""
    package = factories.PackageFactory(name="kornia")
    ada = factories.MaintainerFactory(name="Ada", notify_mode=IMMEDIATE, github_handle="ada")
    grace = factories.MaintainerFactory(name="Grace", notify_mode=DAILY, github_handle="ghopper")
    package.maintainers.add(ada, grace)
    build = factories.BuildFactory(
        name="kornia", package=package, version="0.7.3", filename="kornia-0.7.3-pyhd8ed1ab_0.conda"
    )
    return {"package": package, "ada": ada, "grace": grace, "build": build}


@pytest.fixture
def cells(db):
    """Four cells of one release: 2 variants x 2 platforms."""
    release = factories.TorchReleaseFactory(version="2.5.1")
    cpu = factories.VariantFactory(name="cpu")
    cuda = factories.VariantFactory(name="cuda12.4", kind=Variant.Kind.CUDA, needs_gpu=True)
    linux = factories.PlatformFactory(subdir="linux-64")
    arm = factories.PlatformFactory(subdir="linux-aarch64")
    return [
        {"torch_release": release, "variant": v, "platform": p}
        for v in (cpu, cuda)
        for p in (linux, arm)
    ]


def _notice(key: str = "cause-1", *details: str, kind: str = Kind.OWN_FAILURE) -> Notice:
    return Notice(
        kind=kind, root_cause_key=key, subject="kornia fails", body="Cells:", details=details
    )


def test_notify_records_one_row_per_maintainer_per_cause(
    kornia, django_capture_on_commit_callbacks
):
    people = [kornia["ada"], kornia["grace"], kornia["ada"]]  # a duplicate is one person
    with django_capture_on_commit_callbacks(execute=True):
        first = notify(maintainers=people, notice=_notice("cause-1", "cell A"))
        again = notify(maintainers=people, notice=_notice("cause-1", "cell B"))
    assert len(first) == 2
    assert again == []
    assert Notification.objects.count() == 2
    grace_row = Notification.objects.get(maintainer=kornia["grace"])
    # Not sent yet (daily digest): the second cell joins the same notice.
    assert grace_row.body == "Cells:\n\n- cell A\n- cell B"
    # Ada (immediate) got exactly one email, with the first cell.
    assert drain_default_queue() == 1
    (email,) = mail.outbox
    assert email.to == [kornia["ada"].email]
    ada_row = Notification.objects.get(maintainer=kornia["ada"])
    assert ada_row.state == State.SENT
    # A new root cause is a new notice.
    assert len(notify(maintainers=people, notice=_notice("cause-2"))) == 2


def test_failed_build_on_many_cells_tells_each_maintainer_once(
    kornia, cells, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for cell in cells:
            finish(kornia["build"], cell, Verdict.FAILED, excerpt=EXCERPT)
    rows = Notification.objects.order_by("maintainer__name")
    assert [(r.maintainer.name, r.kind) for r in rows] == [
        ("Ada", Kind.OWN_FAILURE),
        ("Grace", Kind.OWN_FAILURE),
    ]
    assert drain_default_queue() == 1  # Ada's immediate email; Grace waits for her digest
    (email,) = mail.outbox
    assert email.subject == "[conda-distro] kornia 0.7.3 fails its tests"
    assert "TESTS FAILED: kornia-0.7.3" in email.body  # the excerpt
    assert "/jobs/" in email.body  # the link to the first failing job
    unsubscribe = email.extra_headers["List-Unsubscribe"]
    assert unsubscribe.startswith("<http://")
    assert "?kind=own_failure>" in unsubscribe
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    digest_row = rows.get(maintainer=kornia["grace"])
    assert digest_row.state == State.QUEUED
    assert digest_row.body.count("\n- PyTorch 2.5.1 x ") == 4  # every cell, in one notice


def test_a_host_with_the_limited_role_leaves_the_notices_to_the_reconciler(
    kornia, cells, settings, django_capture_on_commit_callbacks
):
    """HOST_LIMITED_ROLE: the host records the verdicts and marks the follow-ups due; the web
    side's reconciler writes the same notices the host would have, and the immediate email
    goes out from the trusted queue."""
    settings.HOST_LIMITED_ROLE = True
    with django_capture_on_commit_callbacks(execute=True):
        jobs = [finish(kornia["build"], cell, Verdict.FAILED, excerpt=EXCERPT) for cell in cells]
    assert all(job.verdict == Verdict.FAILED and job.follow_ups_due for job in jobs)
    assert not Notification.objects.exists()

    settings.HOST_LIMITED_ROLE = False  # the web side
    with django_capture_on_commit_callbacks(execute=True):
        reconcile(grace_s=0)
    rows = Notification.objects.order_by("maintainer__name")
    assert [(r.maintainer.name, r.kind) for r in rows] == [
        ("Ada", Kind.OWN_FAILURE),
        ("Grace", Kind.OWN_FAILURE),
    ]
    assert rows.get(maintainer=kornia["grace"]).body.count("\n- PyTorch 2.5.1 x ") == 4
    assert drain_default_queue() == 1  # Ada's immediate email
    assert [m.to for m in mail.outbox] == [[kornia["ada"].email]]
    assert not Job.objects.filter(follow_ups_due=True).exists()


def _own_failure_emails(maintainer) -> list:
    drain_default_queue()
    return [m for m in mail.outbox if m.to == [maintainer.email] and "fails its tests" in m.subject]


def test_failing_again_in_the_same_episode_tells_nobody_again(
    kornia, cells, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        finish(kornia["build"], cells[0], Verdict.FAILED, excerpt=EXCERPT)
        finish(kornia["build"], cells[0], Verdict.FAILED, excerpt=EXCERPT)  # still failing
        finish(kornia["build"], cells[1], Verdict.PASSED)  # another cell passing ends nothing
        finish(kornia["build"], cells[0], Verdict.ERROR)  # infrastructure trouble ends nothing
        finish(kornia["build"], cells[0], Verdict.FAILED, excerpt=EXCERPT)
    assert Notification.objects.filter(maintainer=kornia["ada"]).count() == 1
    assert len(_own_failure_emails(kornia["ada"])) == 1


def test_fail_pass_fail_tells_the_maintainers_twice(
    kornia, cells, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = finish(kornia["build"], cells[0], Verdict.FAILED, excerpt=EXCERPT)
        finish(kornia["build"], cells[0], Verdict.PASSED)
        second = finish(kornia["build"], cells[0], Verdict.FAILED, excerpt=EXCERPT)
    rows = Notification.objects.filter(maintainer=kornia["ada"]).order_by("pk")
    build = kornia["build"].pk
    assert [r.root_cause_key for r in rows] == [
        f"build:{build}:failing:job:{first.pk}",
        f"build:{build}:failing:job:{second.pk}",
    ]
    emails = _own_failure_emails(kornia["ada"])
    assert len(emails) == 2
    assert f"/jobs/{second.pk}/" in emails[1].body  # the job that opened the new episode


def test_a_failure_while_another_cell_still_fails_joins_the_open_episode(kornia, cells):
    finish(kornia["build"], cells[0], Verdict.FAILED, excerpt=EXCERPT)
    finish(kornia["build"], cells[1], Verdict.FAILED, excerpt=EXCERPT)
    finish(kornia["build"], cells[1], Verdict.PASSED)
    finish(kornia["build"], cells[1], Verdict.FAILED, excerpt=EXCERPT)  # cells[0] never passed
    assert Notification.objects.filter(maintainer=kornia["ada"]).count() == 1
    grace_row = Notification.objects.get(maintainer=kornia["grace"])
    assert grace_row.body.count("\n- PyTorch 2.5.1 x ") == 2


def test_passing_and_infrastructure_errors_tell_nobody(kornia, cells):
    finish(kornia["build"], cells[0], Verdict.PASSED)
    finish(kornia["build"], cells[1], Verdict.ERROR)
    finish(factories.BuildFactory(name="unregistered"), cells[2], Verdict.FAILED)
    assert Notification.objects.count() == 0


def test_upstream_build_breaking_a_dependent_tells_both_sides(kornia, cells):
    torch_ext = factories.PackageFactory(name="torch-ext")
    upstream_maintainer = factories.MaintainerFactory(name="Upstream")
    torch_ext.maintainers.add(upstream_maintainer)
    culprit = factories.BuildFactory(
        name="torch-ext", package=torch_ext, version="2.0.0", filename="torch-ext-2.0.0-0.conda"
    )
    for cell in cells[:2]:
        finish(kornia["build"], cell, Verdict.PASSED)
    for cell in cells[:2]:  # re-tested with the new upstream build pinned: both cells break
        finish(kornia["build"], cell, Verdict.FAILED, pinned_build=culprit, excerpt=EXCERPT)
    rows = {(r.maintainer.name, r.kind): r for r in Notification.objects.all()}
    assert set(rows) == {
        ("Ada", Kind.UPSTREAM_BREAKAGE),
        ("Grace", Kind.UPSTREAM_BREAKAGE),
        ("Upstream", Kind.DOWNSTREAM_BREAKAGE),
    }
    told_downstream = rows[("Grace", Kind.UPSTREAM_BREAKAGE)]
    assert told_downstream.subject == "torch-ext 2.0.0 broke kornia"
    assert "torch-ext-2.0.0-0.conda" in told_downstream.body  # the culprit build, by name
    told_upstream = rows[("Upstream", Kind.DOWNSTREAM_BREAKAGE)]
    assert told_upstream.build == culprit
    assert told_upstream.body.count("- kornia 0.7.3: PyTorch 2.5.1") == 2


def test_failure_that_already_existed_is_not_blamed_on_the_upstream_build(kornia, cells):
    culprit = factories.BuildFactory(name="torch-ext", package=factories.PackageFactory())
    finish(kornia["build"], cells[0], Verdict.FAILED)
    finish(kornia["build"], cells[0], Verdict.FAILED, pinned_build=culprit)
    assert set(Notification.objects.values_list("kind", flat=True)) == {Kind.OWN_FAILURE}
    assert Notification.objects.count() == 2


def test_opted_out_kind_is_recorded_suppressed_and_never_sent(
    kornia, cells, django_capture_on_commit_callbacks
):
    ada = kornia["ada"]
    ada.muted_kinds = [Kind.OWN_FAILURE]
    ada.save()
    with django_capture_on_commit_callbacks(execute=True):
        finish(kornia["build"], cells[0], Verdict.FAILED)
    assert Notification.objects.get(maintainer=ada).state == State.SUPPRESSED
    assert drain_default_queue() == 0
    assert mail.outbox == []


def test_daily_digest_assembles_one_email_grouped_by_kind(kornia, settings):
    grace = kornia["grace"]
    notify(maintainers=[grace], notice=_notice("b", "x", kind=Kind.BUMP_NEEDED))
    notify(maintainers=[grace], notice=_notice("a", "y", kind=Kind.OWN_FAILURE))
    notify(maintainers=[grace], notice=_notice("c", kind=Kind.PROMOTION_DONE))
    notify(maintainers=[kornia["ada"]], notice=_notice("d"))  # immediate: not in a digest
    rows = list(Notification.objects.filter(maintainer=grace))
    assert [label for label, _ in group_digest(rows)] == [
        "Your package failed",
        "A new PyTorch release needs a bump",
        "Promotion done",
    ]
    report = send_daily_digests()
    assert (report.digests, report.notifications) == (1, 3)
    (email,) = mail.outbox
    assert email.to == [grace.email]
    assert email.subject == "[conda-distro] Daily digest: 3 notices"
    body = email.body
    assert body.index("== Your package failed (1) ==") < body.index("== Promotion done (1) ==")
    assert f"{settings.SITE_URL}/notifications/{grace.unsubscribe_token}/" in body
    assert set(Notification.objects.filter(maintainer=grace).values_list("state", flat=True)) == {
        State.DIGESTED
    }
    assert send_daily_digests().digests == 0  # nothing new: nothing sent again
    assert len(mail.outbox) == 1


def test_digest_that_cannot_be_sent_stays_queued_with_the_reason(kornia, settings):
    notify(maintainers=[kornia["grace"]], notice=_notice())
    refusing_smtp(settings)
    with pytest.raises(RuntimeError, match="1 digest"):
        send_daily_digests()
    row = Notification.objects.get()
    assert row.state == State.QUEUED
    assert row.error_message.startswith("digest not sent: ")


def test_immediate_send_failure_is_recorded_on_the_row_and_the_job(
    kornia, settings, django_capture_on_commit_callbacks
):
    refusing_smtp(settings)
    with django_capture_on_commit_callbacks(execute=True):
        notify(maintainers=[kornia["ada"]], notice=_notice())
    assert drain_default_queue() == 1
    row = Notification.objects.get()
    assert row.state == State.FAILED
    assert "refused" in row.error_message.lower()
    (job,) = failed_jobs()
    assert "ConnectionRefusedError" in job.latest_result().exc_string


def test_overdue_immediate_notice_is_sent_by_the_sweeper(kornia):
    notify(maintainers=[kornia["ada"]], notice=_notice())  # its on-commit job never ran
    assert send_overdue_notifications() == 0  # too young to call lost
    Notification.objects.update(created_at=timezone.now() - timedelta(hours=1))
    assert send_overdue_notifications() == 1
    assert drain_default_queue() == 1
    assert Notification.objects.get().state == State.SENT


def test_unsubscribe_link_stops_one_kind_with_one_click(kornia, client):
    ada = kornia["ada"]
    url = f"/notifications/{ada.unsubscribe_token}/unsubscribe/?kind=own_failure"
    page = client.get(url)
    assert page.status_code == 200
    assert "Your package failed" in page.content.decode()
    ada.refresh_from_db()
    assert ada.muted_kinds == []  # a GET (link preview, scanner) changes nothing
    response = client.post(url)  # RFC 8058 one-click: no CSRF token, no session
    assert response.status_code == 302
    ada.refresh_from_db()
    assert ada.muted_kinds == [Kind.OWN_FAILURE]
    notify(maintainers=[ada], notice=_notice())
    assert Notification.objects.get().state == State.SUPPRESSED
    assert client.get("/notifications/not-a-token/unsubscribe/").status_code == 404


def test_preferences_page_sets_mode_and_kinds_and_works_signed_out(kornia, client, settings):
    settings.PUBLIC_READ = False  # the link in an email must work without signing in
    grace = kornia["grace"]
    notify(maintainers=[grace], notice=_notice(kind=Kind.PROMOTION_DONE))
    url = f"/notifications/{grace.unsubscribe_token}/"
    page = client.get(url)
    assert page.status_code == 200
    assert page["Cache-Control"] == "private, no-store"
    wanted = [k for k in Kind.values if k != Kind.PROMOTION_DONE]
    response = client.post(url, {"notify_mode": IMMEDIATE, "wanted_kinds": wanted})
    assert response.status_code == 302
    grace.refresh_from_db()
    assert (grace.notify_mode, grace.muted_kinds) == (IMMEDIATE, [Kind.PROMOTION_DONE])
    # The queued notice of the kind now muted is not sent later either.
    assert Notification.objects.get().state == State.SUPPRESSED
    bad = client.post(url, {"notify_mode": "hourly"})
    assert bad.status_code == 400


def test_reset_link_invalidates_the_old_one(kornia, client):
    old = kornia["ada"].unsubscribe_token
    response = client.post(f"/notifications/{old}/reset/")
    kornia["ada"].refresh_from_db()
    assert response["Location"] == f"/notifications/{kornia['ada'].unsubscribe_token}/"
    assert client.get(f"/notifications/{old}/").status_code == 404


@responses.activate
def test_github_comment_posted_once_per_cause_mentioning_maintainers(
    kornia, settings, django_capture_on_commit_callbacks
):
    settings.GITHUB_TOKEN = "ghp_test"  # noqa: S105
    settings.GITHUB_API_URL = "https://api.github.example"
    PackageNoticeIssue.objects.create(
        package=kornia["package"], issue_url="https://github.com/kornia/kornia/issues/42"
    )
    endpoint = "https://api.github.example/repos/kornia/kornia/issues/42/comments"
    responses.post(
        endpoint, json={"html_url": "https://github.com/kornia/kornia/issues/42#c1"}, status=201
    )
    notice = Notice(
        kind=Kind.BUMP_NEEDED,
        root_cause_key="pytorch:2.6.0:bump-needed",
        subject="PyTorch 2.6.0 is outside kornia's bound",
        body="kornia 0.7.3: pytorch >=1.9.1,<2.6",
        package=kornia["package"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        notify(maintainers=[kornia["ada"], kornia["grace"]], notice=notice)
        notify(maintainers=[kornia["ada"], kornia["grace"]], notice=notice)
    drain_default_queue()
    (call,) = responses.calls
    assert call.request.headers["Authorization"] == "Bearer ghp_test"
    body = call.request.body.decode()
    assert "cc @ada @ghopper" in body
    assert "PyTorch 2.6.0 is outside kornia" in body
    urls = set(Notification.objects.values_list("github_comment_url", flat=True))
    assert urls == {"https://github.com/kornia/kornia/issues/42#c1"}


@responses.activate
def test_github_error_is_recorded_and_the_job_fails(
    kornia, settings, django_capture_on_commit_callbacks
):
    settings.GITHUB_TOKEN = "ghp_test"  # noqa: S105
    PackageNoticeIssue.objects.create(
        package=kornia["package"], issue_url="https://github.com/kornia/kornia/issues/42"
    )
    responses.post(
        "https://api.github.com/repos/kornia/kornia/issues/42/comments",
        json={"message": "Resource not accessible by integration"},
        status=403,
    )
    notice = Notice(
        kind=Kind.AT_RISK, root_cause_key="k", subject="s", body="b", package=kornia["package"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        notify(maintainers=[kornia["grace"]], notice=notice)
    drain_default_queue()
    row = Notification.objects.get()
    assert row.error_message == "GitHub: 403 from GitHub: Resource not accessible by integration"
    assert row.github_comment_url == ""
    assert len(failed_jobs()) == 1


def test_notice_issue_is_set_by_a_maintainer_from_the_preferences_page(kornia, client):
    token = kornia["ada"].unsubscribe_token
    url = f"/notifications/{token}/issue/kornia/"
    prefix = f"issue-{kornia['package'].pk}-issue_url"
    client.post(url, {prefix: "https://example.org/not-github"})
    assert not PackageNoticeIssue.objects.exists()
    client.post(url, {prefix: "https://github.com/kornia/kornia/issues/7"})
    assert PackageNoticeIssue.objects.get().issue_url == "https://github.com/kornia/kornia/issues/7"
    other = factories.PackageFactory(name="other")
    assert client.post(f"/notifications/{token}/issue/other/", {}).status_code == 404
    assert not PackageNoticeIssue.objects.filter(package=other).exists()


def test_approved_proposal_tells_its_maintainers_but_not_the_contact_twice(db):
    proposal = factories.ProposalFactory(
        package_name="torch-fancy",
        contact_email="ada@example.org",
        state="in_review",
        maintainers_data=[
            {"name": "Ada", "email": "ada@example.org", "github_handle": "ada"},
            {"name": "Grace", "email": "grace@example.org", "github_handle": "ghopper"},
        ],
    )
    decide_proposal(
        proposal=proposal, reviewer=factories.UserFactory(), decision="approve", note="Welcome."
    )
    (row,) = Notification.objects.all()
    assert (row.maintainer.email, row.kind) == ("grace@example.org", Kind.PROPOSAL_DECISION)
    assert "Welcome." in row.body


def test_promotion_done_lists_each_maintainers_builds_in_one_notice(kornia):
    promotion = factories.PromotionFactory()
    extra = factories.PackageFactory(name="kornia-rs")
    extra.maintainers.add(kornia["grace"])
    factories.PromotionItemFactory(promotion=promotion, build=kornia["build"])
    factories.PromotionItemFactory(
        promotion=promotion,
        build=factories.BuildFactory(name="kornia-rs", package=extra, filename="kornia-rs.conda"),
    )
    # The promotion service's follow-up step (testing_app/services/promotion_followups.py).
    builds = [item.build for item in promotion.items.select_related("build__package")]
    notify_maintainers(promotion, builds)
    notify_maintainers(promotion, builds)  # a re-run of the same promotion
    rows = {r.maintainer.name: r for r in Notification.objects.all()}
    assert set(rows) == {"Ada", "Grace"}
    assert rows["Grace"].body.count("\n- linux-64/") == 2
    assert rows["Ada"].body.count("\n- linux-64/") == 1


def test_cron_config_schedules_digest_sweep_and_maintenance_policy(db):
    import django_rq
    from rq.cron import CronScheduler

    from testing_app.jobs import rq_apply_maintenance_policy
    from testing_app.jobs import rq_send_daily_digests
    from testing_app.jobs import rq_send_overdue_notifications

    scheduler = CronScheduler(connection=django_rq.get_connection("default"))
    scheduler.load_config_from_file("testing_app.management.cron")
    registered = {job.func: job for job in scheduler.get_jobs()}
    digest = registered[rq_send_daily_digests]
    assert (digest.queue_name, digest.cron) == ("default", "0 7 * * *")
    assert registered[rq_send_overdue_notifications].interval == 900
    assert registered[rq_apply_maintenance_policy].interval == 3600


def test_rerun_whose_install_check_passes_stays_in_the_same_failing_episode(kornia, cells):
    from testing_app.models import Job
    from testing_app.models import Run
    from testing_app.services.dispatch import enqueue_jobs
    from testing_app.services.execution import JobOutcome
    from testing_app.services.execution import execute_job

    def outcome(verdict):
        def runner(*, job, worker, on_progress):
            return JobOutcome(verdict=verdict, retryable=False)

        return runner

    finish(kornia["build"], cells[0], Verdict.FAILED)
    assert Notification.objects.count() == 2  # Ada and Grace
    for _ in range(2):  # two re-runs: the install check passes, the test fails again
        run = factories.RunFactory(state=Run.State.PLANNING)
        (check,) = enqueue_jobs(
            run=run, jobs=[Job(kind="install_check", build=kornia["build"], **cells[0])]
        )
        execute_job(job_id=check.pk, runner=outcome(Verdict.PASSED))
        test = Job.objects.get(run=run, kind="test")
        execute_job(job_id=test.pk, runner=outcome(Verdict.FAILED))
    assert Notification.objects.count() == 2
    assert set(Notification.objects.values_list("root_cause_key", flat=True)) == {
        Notification.objects.first().root_cause_key
    }
