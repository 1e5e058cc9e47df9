"""Maintainers sign in (they are not staff) and see their packages and proposals."""

import pytest

from packages_app.models import Proposal
from packages_app.services.tokens import maintainer_of
from testing_app.services.dispatch import user_may_retry_job
from tests.factories import BuildFactory
from tests.factories import JobFactory
from tests.factories import MaintainerFactory
from tests.factories import PackageFactory
from tests.factories import ProposalFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def maintainer_user():
    user = UserFactory(username="ada", email="ada@example.org")
    user.set_password("correct horse battery staple")
    user.save()
    return user


def test_non_staff_maintainer_signs_in_on_the_site_login(client, maintainer_user):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    response = client.post(
        "/accounts/login/",
        {"username": "ada", "password": "correct horse battery staple"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/"
    assert client.get("/accounts/").status_code == 200


def test_wrong_password_shows_an_error(client, maintainer_user):
    response = client.post("/accounts/login/", {"username": "ada", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_my_page_requires_sign_in(client):
    response = client.get("/accounts/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_my_page_lists_packages_by_linked_user_or_by_email(client, maintainer_user):
    by_email = MaintainerFactory(email="ADA@example.org")  # no user link, same address
    linked = MaintainerFactory(user=maintainer_user, email="ada.lovelace@example.org")
    PackageFactory(name="kornia").maintainers.add(by_email)
    PackageFactory(name="torchmetrics").maintainers.add(linked)
    PackageFactory(name="someone-elses").maintainers.add(MaintainerFactory())
    ProposalFactory(package_name="as-contact", contact_email="ada@example.org")
    ProposalFactory(
        package_name="as-maintainer",
        state=Proposal.State.CHANGES_REQUESTED,
        maintainers_data=[
            {"name": "Ada", "email": "ada.lovelace@example.org", "github_handle": "ada"}
        ],
    )
    # "bada@example.org" contains "ada@example.org": only whole addresses may match.
    ProposalFactory(
        package_name="not-mine",
        contact_email="bada@example.org",
        maintainers_data=[{"name": "B", "email": "bada@example.org", "github_handle": ""}],
    )
    client.force_login(maintainer_user)
    response = client.get("/accounts/")
    home = response.context["home"]
    assert [p.name for p in home.packages] == ["kornia", "torchmetrics"]
    assert sorted(p.package_name for p in home.proposals) == ["as-contact", "as-maintainer"]
    content = response.content.decode()
    assert "someone-elses" not in content
    assert "not-mine" not in content


def test_logout_is_a_post_and_returns_home(client, maintainer_user):
    client.force_login(maintainer_user)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/accounts/").status_code == 302


def test_an_account_matched_by_email_acts_as_the_maintainer(client, maintainer_user):
    """Approval creates Maintainer rows without accounts; the account with that email may do
    what the account page offers it (retry, CI tokens), and no one else's row matches."""
    approved = MaintainerFactory(email="Ada@Example.org")  # as approval writes it: no account
    package = PackageFactory(name="kornia")
    package.maintainers.add(approved)
    job = JobFactory(build=BuildFactory(package=package), status="finished", verdict="failed")
    assert maintainer_of(user=maintainer_user, package=package) == approved
    assert user_may_retry_job(maintainer_user, job)
    client.force_login(maintainer_user)
    assert client.get("/packages/kornia/tokens/").status_code == 200
    assert client.get(f"/jobs/{job.pk}/").context["may_retry"] is True

    # A row linked to another account is that account's, even with the same address.
    other = UserFactory(username="ada2", email="ada@example.org")
    approved.user = other
    approved.save()
    assert maintainer_of(user=maintainer_user, package=package) is None
    assert not user_may_retry_job(maintainer_user, job)
    assert maintainer_of(user=other, package=package) == approved
    stranger = UserFactory(username="bob", email="bob@example.org")
    assert not user_may_retry_job(stranger, job)
