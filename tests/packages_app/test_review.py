"""The review queue: permissions, ordering, notes, decisions, the approval transaction, emails."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from packages_app.models import Build
from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.services.reviews import approve_proposal
from packages_app.services.reviews import decide_proposal
from tests.factories import BuildFactory
from tests.factories import MaintainerFactory
from tests.factories import PackageFactory
from tests.factories import ProposalFactory
from tests.factories import UserFactory
from tests.packages_app.proposal_helpers import drain_default_queue
from tests.packages_app.proposal_helpers import queued_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer():
    user = UserFactory(username="rita", first_name="Rita", last_name="Reviewer")
    user.groups.add(Group.objects.get(name="reviewers"))
    return user


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


@pytest.fixture
def proposal():
    return ProposalFactory(
        package_name="kornia",
        contact_email="ada@example.org",
        state=Proposal.State.IN_REVIEW,
        maintainers_data=[
            {"name": "Ada Lovelace", "email": "Ada@Example.org", "github_handle": "ada"},
            {"name": "Grace Hopper", "email": "grace@example.org", "github_handle": "ghopper"},
            {"name": "Edsger", "email": "edsger@example.org", "github_handle": ""},
        ],
    )


def _review_urls(pk: int) -> list[tuple[str, str]]:
    return [
        ("get", "/review/"),
        ("get", f"/review/{pk}/"),
        ("post", f"/review/{pk}/note/"),
        ("post", f"/review/{pk}/decide/"),
        ("post", f"/review/{pk}/rerun/"),
    ]


def test_data_migration_created_the_groups_with_their_permissions():
    reviewers = Group.objects.get(name="reviewers")
    assert reviewers.permissions.filter(codename="review_proposal").exists()
    managers = Group.objects.get(name="release managers")
    assert {"add_waiver", "add_promotion", "add_torchrelease"} <= set(
        managers.permissions.values_list("codename", flat=True)
    )
    assert not managers.permissions.filter(codename="review_proposal").exists()


def test_anonymous_visitors_are_sent_to_sign_in_and_change_nothing(client, proposal):
    for method, url in _review_urls(proposal.pk):
        data = {"decision": "approve", "note": "ok", "body": "x"}
        response = getattr(client, method)(url, data if method == "post" else None)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.IN_REVIEW
    assert proposal.notes.count() == 0


@pytest.mark.parametrize("role", ["maintainer", "release manager"])
def test_signed_in_users_without_the_permission_get_403(client, proposal, role):
    user = UserFactory()
    if role == "maintainer":
        MaintainerFactory(user=user, email=user.email)
    else:
        user.groups.add(Group.objects.get(name="release managers"))
    client.force_login(user)
    for method, url in _review_urls(proposal.pk):
        data = {"decision": "approve", "note": "ok", "body": "x"}
        response = getattr(client, method)(url, data if method == "post" else None)
        assert response.status_code == 403, url
    assert Package.objects.count() == 0
    assert "/review/" not in client.get("/").content.decode()


def test_queue_lists_open_proposals_oldest_first_with_their_age(reviewer_client):
    now = timezone.now()
    for name, days, state in [
        ("newer", 1, Proposal.State.IN_REVIEW),
        ("oldest", 9, Proposal.State.SUBMITTED),
        ("middle", 4, Proposal.State.CHANGES_REQUESTED),
        ("done", 20, Proposal.State.APPROVED),
    ]:
        proposal = ProposalFactory(package_name=name, state=state)
        Proposal.objects.filter(pk=proposal.pk).update(created_at=now - timedelta(days=days))
    response = reviewer_client.get("/review/")
    assert response.status_code == 200
    names = [p.package_name for p in response.context["page"].object_list]
    assert names == ["oldest", "middle", "newer"]
    content = response.content.decode()
    assert "1\xa0week, 2\xa0days" in content
    approved = reviewer_client.get("/review/", {"state": "approved"})
    assert [p.package_name for p in approved.context["page"].object_list] == ["done"]
    everything = reviewer_client.get("/review/", {"state": "all"})
    assert len(everything.context["page"].object_list) == 4


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", ["/review/", "/review/?state=all"])
def test_queue_query_count_does_not_grow_with_proposals(reviewer_client, url):
    for index in range(3):
        ProposalFactory(package_name=f"p{index}", reviewed_by=UserFactory())
    few = _queries(reviewer_client, url)
    for index in range(3, 40):
        proposal = ProposalFactory(package_name=f"p{index}", reviewed_by=UserFactory())
        ProposalNote.objects.create(proposal=proposal, author_name="x", body="note")
    assert _queries(reviewer_client, url) == few
    assert few <= 10


def test_approval_creates_active_package_and_deduplicated_maintainers(
    reviewer_client, reviewer, proposal, django_capture_on_commit_callbacks
):
    ada = MaintainerFactory(name="Ada L.", email="ada@example.org", github_handle="")
    grace = MaintainerFactory(
        name="G. Hopper", email="hopper@navy.example", github_handle="GHopper"
    )
    build = BuildFactory(name="kornia", version="0.7.3")
    with django_capture_on_commit_callbacks(execute=True):
        response = reviewer_client.post(
            f"/review/{proposal.pk}/decide/",
            {"decision": "approve", "note": "Welcome aboard."},
        )
    assert response.status_code == 302
    proposal.refresh_from_db()
    package = Package.objects.get(name="kornia")
    assert proposal.state == Proposal.State.APPROVED
    assert proposal.package == package
    assert (proposal.reviewed_by, proposal.review_note) == (reviewer, "Welcome aboard.")
    assert package.status == Package.Status.ACTIVE
    assert (package.summary, package.recipe_url) == (proposal.summary, proposal.recipe_url)
    # Ada matched by email (case-insensitive) and got her handle; Grace matched by handle.
    ada.refresh_from_db()
    assert ada.github_handle == "ada"
    assert set(package.maintainers.all()) == {
        ada,
        grace,
        Maintainer.objects.get(email="edsger@example.org"),
    }
    assert Maintainer.objects.count() == 3
    build.refresh_from_db()
    assert build.package == package
    decision = proposal.notes.get(kind=ProposalNote.Kind.DECISION)
    assert (decision.decision, decision.author, decision.author_name) == (
        "approve",
        reviewer,
        "Rita Reviewer",
    )
    # The proposer is emailed by a job.
    assert mail.outbox == []
    assert drain_default_queue() == 1
    (message,) = mail.outbox
    assert message.to == ["ada@example.org"]
    assert "approved" in message.subject
    assert "Welcome aboard." in message.body
    assert "/packages/kornia/" in message.body
    decision.refresh_from_db()
    assert decision.emailed_at is not None
    # Who decided what and when is shown on the review page and on the package page.
    page = reviewer_client.get(f"/review/{proposal.pk}/").content.decode()
    assert "Rita Reviewer" in page
    assert "Approved" in page
    assert "emailed" in page
    assert reviewer_client.get("/packages/kornia/").status_code == 200


def test_approval_is_one_transaction_nothing_stays_when_a_maintainer_is_invalid(
    reviewer, proposal, django_capture_on_commit_callbacks
):
    proposal.maintainers_data = [
        {"name": "Ada", "email": "ada@example.org", "github_handle": "ada"},
        {"name": "", "email": "not-an-email", "github_handle": ""},
    ]
    proposal.save()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError):
        approve_proposal(proposal=proposal, reviewer=reviewer, note="ok")
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.IN_REVIEW
    assert Package.objects.count() == 0
    assert Maintainer.objects.count() == 0
    assert proposal.notes.count() == 0
    assert queued_jobs() == []


def test_approval_of_a_name_that_became_an_active_package_is_refused(reviewer_client, proposal):
    PackageFactory(name="kornia", status=Package.Status.ACTIVE)
    response = reviewer_client.post(
        f"/review/{proposal.pk}/decide/", {"decision": "approve", "note": "ok"}
    )
    assert response.status_code == 400
    assert "already an active package" in response.content.decode()
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.IN_REVIEW


def test_approval_reactivates_a_removed_package(reviewer, proposal):
    PackageFactory(name="kornia", status=Package.Status.REMOVED)
    package = approve_proposal(proposal=proposal, reviewer=reviewer, note="Back again.")
    assert package.status == Package.Status.ACTIVE
    assert Package.objects.count() == 1


@pytest.mark.parametrize(
    ("decision", "state", "subject"),
    [
        ("reject", Proposal.State.REJECTED, "rejected"),
        ("request_changes", Proposal.State.CHANGES_REQUESTED, "changes requested"),
    ],
)
def test_reject_and_request_changes_record_note_and_email(
    reviewer_client, proposal, django_capture_on_commit_callbacks, decision, state, subject
):
    with django_capture_on_commit_callbacks(execute=True):
        response = reviewer_client.post(
            f"/review/{proposal.pk}/decide/", {"decision": decision, "note": "Needs tests."}
        )
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.state == state
    assert Package.objects.count() == 0
    drain_default_queue()
    (message,) = mail.outbox
    assert subject in message.subject
    assert "Needs tests." in message.body


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"decision": "approve", "note": ""}, "This field is required."),
        ({"decision": "approve", "note": "   "}, "This field is required."),
        ({"decision": "merge", "note": "x"}, "Select a valid choice."),
    ],
)
def test_decision_without_note_or_with_unknown_choice_is_refused(
    reviewer_client, proposal, data, error
):
    response = reviewer_client.post(f"/review/{proposal.pk}/decide/", data)
    assert response.status_code == 400
    assert error in response.content.decode()
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.IN_REVIEW


def test_decision_on_a_closed_proposal_is_refused(reviewer, proposal):
    decide_proposal(proposal=proposal, reviewer=reviewer, decision="reject", note="No.")
    with pytest.raises(ValidationError, match="already rejected"):
        decide_proposal(proposal=proposal, reviewer=reviewer, decision="approve", note="Yes?")
    assert Package.objects.count() == 0


def test_decision_email_failure_is_recorded_on_the_note(
    reviewer, proposal, django_capture_on_commit_callbacks
):
    Proposal.objects.filter(pk=proposal.pk).update(contact_email="")
    with django_capture_on_commit_callbacks(execute=True):
        decide_proposal(proposal=proposal, reviewer=reviewer, decision="reject", note="No.")
    drain_default_queue()
    note = proposal.notes.get(kind=ProposalNote.Kind.DECISION)
    assert note.emailed_at is None
    assert note.email_error == "the proposal has no contact email"


def test_reviewer_notes_and_rerun(reviewer_client, proposal, django_capture_on_commit_callbacks):
    assert (
        reviewer_client.post(f"/review/{proposal.pk}/note/", {"body": "Looking."}).status_code
        == 302
    )
    assert reviewer_client.post(f"/review/{proposal.pk}/note/", {"body": ""}).status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        response = reviewer_client.post(f"/review/{proposal.pk}/rerun/")
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.precheck_outcome == "pending"
    assert [n.body for n in proposal.notes.all()] == ["Looking.", "Re-ran the pre-checks."]
    (job,) = queued_jobs()
    assert job.args == (proposal.pk,)


def test_review_page_shows_prechecks_thread_and_forms(reviewer_client, proposal):
    content = reviewer_client.get(f"/review/{proposal.pk}/").content.decode()
    for text in ("Automatic pre-checks", "Notes and decisions", "Record the decision", "Re-run"):
        assert text in content
    assert reverse("proposals:review-decide", kwargs={"pk": proposal.pk}) in content


def test_admin_action_reruns_prechecks_through_the_service(
    admin_client, proposal, django_capture_on_commit_callbacks
):
    closed = ProposalFactory(state=Proposal.State.REJECTED)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:packages_app_proposal_changelist"),
            {"action": "rerun_prechecks", "_selected_action": [proposal.pk, closed.pk]},
        )
    assert response.status_code == 302
    assert len(queued_jobs()) == 1
    assert proposal.notes.filter(body="Re-ran the pre-checks.").exists()
    assert not closed.notes.exists()


def test_build_rows_are_untouched_by_rejection(reviewer, proposal):
    build = BuildFactory(name="kornia")
    decide_proposal(proposal=proposal, reviewer=reviewer, decision="reject", note="No.")
    assert Build.objects.get(pk=build.pk).package is None
