"""The public proposal form: every bad input, duplicates, honeypot, CSRF and the rate limit."""

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from packages_app.models import Package
from packages_app.models import Proposal
from packages_app.services.proposals import client_fingerprint
from tests.factories import PackageFactory
from tests.factories import ProposalFactory
from tests.packages_app.proposal_helpers import form_data
from tests.packages_app.proposal_helpers import queued_jobs

pytestmark = pytest.mark.django_db
URL = "/propose/"


def _post(client, capture=None, **overrides):
    if capture is None:
        return client.post(URL, form_data(**overrides), REMOTE_ADDR="203.0.113.7")
    with capture(execute=True):
        return client.post(URL, form_data(**overrides), REMOTE_ADDR="203.0.113.7")


def test_form_page_renders_every_field(client):
    response = client.get(URL)
    assert response.status_code == 200
    content = response.content.decode()
    for name in (
        "package_name",
        "summary",
        "home_url",
        "repo_url",
        "recipe_url",
        "license",
        "rationale",
        "contact_email",
        "maintainers-0-name",
        "maintainers-0-email",
        "maintainers-0-github_handle",
        "confirms_pytorch_key_dependency",
        "confirms_dependencies_available",
        "confirms_recipe_exists",
        "commits_to_maintain",
        "csrfmiddlewaretoken",
    ):
        assert f'name="{name}"' in content, name
    assert 'class="hp-field" aria-hidden="true"' in content


def test_valid_submission_redirects_to_the_private_status_page(
    client, django_capture_on_commit_callbacks
):
    response = _post(client, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    proposal = Proposal.objects.get()
    token = response["Location"].removeprefix("/proposals/").rstrip("/")
    assert response["Location"] == reverse("proposals:proposal-status", kwargs={"token": token})
    assert proposal.package_name == "kornia"
    assert proposal.maintainers_data == [
        {"name": "Ada Lovelace", "email": "ada@example.org", "github_handle": "ada"}
    ]
    assert proposal.client_fingerprint == client_fingerprint("203.0.113.7")
    assert "203.0.113.7" not in proposal.client_fingerprint
    assert len(queued_jobs()) == 1
    assert token in mail.outbox[0].body
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "was received" in page.content.decode()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"package_name": ""}, "package_name", "This field is required."),
        ({"package_name": "Kornia"}, "package_name", "Use lowercase letters"),
        ({"package_name": "my package"}, "package_name", "Use lowercase letters"),
        ({"package_name": "-kornia"}, "package_name", "Use lowercase letters"),
        ({"package_name": "k" * 129}, "package_name", "at most 128 characters"),
        ({"summary": ""}, "summary", "This field is required."),
        ({"summary": "s" * 301}, "summary", "at most 300 characters"),
        ({"home_url": "not a url"}, "home_url", "Enter a valid URL."),
        ({"repo_url": "ftp://example.org/repo"}, "repo_url", "Enter a valid URL."),
        ({"recipe_url": "javascript:alert(1)"}, "recipe_url", "Enter a valid URL."),
        ({"recipe_url": ""}, "recipe_url", "This field is required."),
        ({"license": ""}, "license", "This field is required."),
        ({"rationale": ""}, "rationale", "This field is required."),
        ({"rationale": "uses torch"}, "rationale", "at least 20 characters"),
        ({"contact_email": "ada-at-example"}, "contact_email", "Enter a valid email address."),
        ({"contact_email": ""}, "contact_email", "This field is required."),
        ({"confirms_pytorch_key_dependency": None}, "confirms_pytorch_key_dependency", "confirm"),
        ({"confirms_dependencies_available": None}, "confirms_dependencies_available", "confirm"),
        ({"confirms_recipe_exists": None}, "confirms_recipe_exists", "confirm"),
        ({"commits_to_maintain": None}, "commits_to_maintain", "confirm"),
    ],
)
def test_bad_field_is_refused_with_its_error_and_nothing_saved(client, overrides, field, message):
    response = _post(client, **overrides)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors
    assert any(message in e for e in errors[field]), errors[field]
    assert Proposal.objects.count() == 0
    assert queued_jobs() == []


@pytest.mark.parametrize(
    ("overrides", "where", "message"),
    [
        (
            {
                "maintainers-0-name": "",
                "maintainers-0-email": "",
                "maintainers-0-github_handle": "",
            },
            "form-0",
            "This field is required.",
        ),
        ({"maintainers-0-email": "nope"}, "form-0", "Enter a valid email address."),
        ({"maintainers-0-name": ""}, "form-0", "This field is required."),
        ({"maintainers-0-github_handle": "bad handle!"}, "form-0", "Not a valid GitHub user name."),
        ({"maintainers-0-github_handle": "-ada"}, "form-0", "Not a valid GitHub user name."),
        (
            {
                "maintainers-1-name": "Ada again",
                "maintainers-1-email": "ADA@example.org",
                "maintainers-1-github_handle": "",
            },
            "non-form",
            "listed twice",
        ),
        (
            {
                "maintainers-1-name": "Someone",
                "maintainers-1-email": "someone@example.org",
                "maintainers-1-github_handle": "ADA",
            },
            "non-form",
            "listed twice",
        ),
        ({"maintainers-TOTAL_FORMS": "11"}, "non-form", "Please submit at most 10 forms."),
    ],
)
def test_bad_maintainers_are_refused(client, overrides, where, message):
    data = dict(overrides)
    if data.get("maintainers-TOTAL_FORMS") == "11":
        for index in range(11):
            data[f"maintainers-{index}-name"] = f"Person {index}"
            data[f"maintainers-{index}-email"] = f"p{index}@example.org"
    response = _post(client, **data)
    assert response.status_code == 400
    formset = response.context["maintainers"]
    errors = formset.non_form_errors() if where == "non-form" else formset.forms[0].errors
    assert message in str(errors), str(errors)
    assert Proposal.objects.count() == 0


def test_honeypot_filled_is_refused_and_nothing_saved(client):
    response = _post(client, website="http://spam.example")
    assert response.status_code == 400
    assert "looks automated" in response.content.decode()
    assert Proposal.objects.count() == 0
    assert mail.outbox == []


def test_name_of_an_existing_package_links_to_it(client):
    PackageFactory(name="kornia", status=Package.Status.ACTIVE)
    response = _post(client)
    assert response.status_code == 400
    content = response.content.decode()
    assert "kornia is already a package of the distribution (active)." in content
    assert 'href="/packages/kornia/"' in content
    assert Proposal.objects.count() == 0


def test_name_with_an_open_proposal_links_to_that_proposal(client):
    existing = ProposalFactory(package_name="kornia", state=Proposal.State.IN_REVIEW)
    response = _post(client)
    assert response.status_code == 400
    content = response.content.decode()
    assert "kornia has already been proposed and the proposal is open" in content
    assert f'href="/proposals/{existing.pk}/"' in content
    assert client.get(f"/proposals/{existing.pk}/").status_code == 200
    assert Proposal.objects.count() == 1


def test_name_of_a_rejected_proposal_or_removed_package_can_be_proposed_again(client):
    ProposalFactory(package_name="kornia", state=Proposal.State.REJECTED)
    PackageFactory(name="kornia", status=Package.Status.REMOVED)
    assert _post(client).status_code == 302


def test_form_requires_csrf_token():
    client = Client(enforce_csrf_checks=True)
    response = client.post(URL, form_data(), REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 403
    assert Proposal.objects.count() == 0


def test_rate_limit_allows_the_configured_number_per_hour_per_client(client, settings):
    settings.PROPOSAL_RATE_LIMIT_PER_HOUR = 3
    for index in range(3):
        assert _post(client, package_name=f"pkg{index}").status_code == 302
    response = _post(client, package_name="pkg3")
    assert response.status_code == 429
    assert "At most 3 proposals per hour" in response.content.decode()
    assert Proposal.objects.count() == 3
    # Another address is not affected.
    other = client.post(URL, form_data(package_name="pkg4"), REMOTE_ADDR="198.51.100.9")
    assert other.status_code == 302


def test_rate_limit_counts_stored_proposals_older_than_an_hour_do_not_count(client, settings):
    settings.PROPOSAL_RATE_LIMIT_PER_HOUR = 1
    old = ProposalFactory(client_fingerprint=client_fingerprint("203.0.113.7"))
    Proposal.objects.filter(pk=old.pk).update(
        created_at=old.created_at.replace(year=old.created_at.year - 1)
    )
    assert _post(client).status_code == 302
    assert _post(client, package_name="other").status_code == 429


def test_rate_limit_uses_the_proxy_added_forwarded_address_only_behind_the_proxy(client, settings):
    settings.PROPOSAL_RATE_LIMIT_PER_HOUR = 1
    settings.BEHIND_TLS_PROXY = True
    # Same proxy (REMOTE_ADDR), two real clients: the proxy appends each client's address.
    first = client.post(
        URL, form_data(), REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="spoofed, 203.0.113.7"
    )
    second = client.post(
        URL,
        form_data(package_name="other"),
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.9",
    )
    assert (first.status_code, second.status_code) == (302, 302)
    fingerprints = set(Proposal.objects.values_list("client_fingerprint", flat=True))
    assert fingerprints == {client_fingerprint("203.0.113.7"), client_fingerprint("198.51.100.9")}
    # A forged first entry does not buy a fresh allowance.
    third = client.post(
        URL,
        form_data(package_name="third"),
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7",
    )
    assert third.status_code == 429


def test_forwarded_header_is_ignored_without_the_proxy_setting(client, settings):
    settings.PROPOSAL_RATE_LIMIT_PER_HOUR = 1
    settings.BEHIND_TLS_PROXY = False
    client.post(URL, form_data(), REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="1.1.1.1")
    response = client.post(
        URL,
        form_data(package_name="other"),
        REMOTE_ADDR="203.0.113.7",
        HTTP_X_FORWARDED_FOR="2.2.2.2",
    )
    assert response.status_code == 429


def test_submission_survives_redis_being_down(
    client, settings, caplog, django_capture_on_commit_callbacks
):
    # Nothing listens on port 1: the enqueue fails after the proposal was committed.
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "default": {"URL": "redis://127.0.0.1:1/0"}}
    response = _post(client, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    proposal = Proposal.objects.get()
    assert (proposal.state, proposal.precheck_outcome) == ("submitted", "pending")
    assert "enqueue_prechecks" in caplog.text
    assert len(mail.outbox) == 1  # the status link still went out
