"""The proposer's private status page: lookup by token hash, notes, withdrawal, updates."""

import pytest
from django.urls import reverse

from packages_app.models import Proposal
from packages_app.models import ProposalNote
from packages_app.models import hash_token
from tests.factories import ProposalFactory
from tests.factories import ProposalNoteFactory
from tests.packages_app.proposal_helpers import form_data
from tests.packages_app.proposal_helpers import queued_jobs

pytestmark = pytest.mark.django_db
TOKEN = "s3cret-status-token-for-tests_0123456789abcdef"


@pytest.fixture
def proposal():
    return ProposalFactory(
        package_name="kornia",
        status_token_hash=hash_token(TOKEN),
        contact_email="ada@example.org",
        state=Proposal.State.IN_REVIEW,
        precheck_outcome="warn",
        precheck_results=[
            {
                "check": "pytorch_bugfix",
                "title": "Bounds admit PyTorch bugfix releases",
                "outcome": "warn",
                "detail": "excludes 2.5.1",
            }
        ],
    )


def _url(name: str, token: str = TOKEN) -> str:
    return reverse(f"proposals:{name}", kwargs={"token": token})


def test_status_page_shows_state_prechecks_and_notes_privately(client, proposal):
    ProposalNoteFactory(proposal=proposal, author_name="rita", body="Which CUDA variants?")
    response = client.get(_url("proposal-status"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Waiting for review" in content
    assert "Bounds admit PyTorch bugfix releases" in content
    assert "excludes 2.5.1" in content
    assert "Which CUDA variants?" in content
    assert "ada@example.org" in content
    assert response["Cache-Control"] == "private, no-store"
    assert "noindex" in response["X-Robots-Tag"]


@pytest.mark.parametrize("token", ["wrong-token", TOKEN[:-1], hash_token(TOKEN)])
def test_status_page_with_another_token_or_the_hash_itself_is_404(client, proposal, token):
    assert client.get(_url("proposal-status", token)).status_code == 404


def test_public_summary_hides_contact_and_notes(client, proposal):
    ProposalNoteFactory(proposal=proposal, body="private remark")
    content = client.get(f"/proposals/{proposal.pk}/").content.decode()
    assert "kornia" in content
    assert "excludes 2.5.1" in content
    assert "ada@example.org" not in content
    assert "private remark" not in content


def test_proposer_adds_a_note(client, proposal):
    response = client.post(_url("proposal-note"), {"body": "Added the CUDA 12.4 variant."})
    assert response.status_code == 302
    note = proposal.notes.get()
    assert (note.author_name, note.kind, note.author) == ("proposer", "note", None)


def test_proposer_note_must_not_be_empty(client, proposal):
    response = client.post(_url("proposal-note"), {"body": "   "})
    assert response.status_code == 400
    assert proposal.notes.count() == 0


def test_proposer_withdraws_and_the_name_is_free_again(client, proposal):
    response = client.post(_url("proposal-withdraw"), {"reason": "Moved to conda-forge only."})
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.WITHDRAWN
    event = proposal.notes.get()
    assert "Moved to conda-forge only." in event.body
    # A closed proposal takes no more notes, and cannot be withdrawn twice.
    assert client.post(_url("proposal-note"), {"body": "hello"}).status_code == 400
    assert client.post(_url("proposal-withdraw"), {}).status_code == 400
    assert client.post("/propose/", form_data(), REMOTE_ADDR="203.0.113.1").status_code == 302


def test_update_is_offered_only_after_changes_were_requested(client, proposal):
    response = client.get(_url("proposal-update"))
    assert response.status_code == 302
    assert client.post(_url("proposal-update"), form_data()).status_code == 302
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.IN_REVIEW


def test_update_after_change_request_reruns_prechecks_and_returns_to_review(
    client, proposal, django_capture_on_commit_callbacks
):
    Proposal.objects.filter(pk=proposal.pk).update(state=Proposal.State.CHANGES_REQUESTED)
    page = client.get(_url("proposal-update"))
    assert page.status_code == 200
    assert page.context["form"].initial["recipe_url"] == proposal.recipe_url
    new_recipe = "https://example.org/kornia-feedstock/recipe/meta.yaml"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            _url("proposal-update"),
            form_data(package_name="renamed", recipe_url=new_recipe, body="Added an upper bound."),
        )
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.package_name == "kornia"  # the name cannot change
    assert proposal.recipe_url == new_recipe
    assert proposal.state == Proposal.State.SUBMITTED
    assert (proposal.precheck_outcome, proposal.precheck_results) == ("pending", [])
    event = proposal.notes.get(kind=ProposalNote.Kind.EVENT)
    assert "Added an upper bound." in event.body
    assert len(queued_jobs()) == 1


def test_update_with_bad_input_shows_errors_and_changes_nothing(client, proposal):
    Proposal.objects.filter(pk=proposal.pk).update(state=Proposal.State.CHANGES_REQUESTED)
    response = client.post(_url("proposal-update"), form_data(recipe_url="nope"))
    assert response.status_code == 400
    assert "recipe_url" in response.context["form"].errors
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.CHANGES_REQUESTED
