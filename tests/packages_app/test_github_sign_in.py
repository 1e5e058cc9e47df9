"""Sign in with GitHub (issue 21): the whole OAuth dance through django-allauth, with GitHub's
endpoints answered at the HTTP boundary by `responses`.

The replies are shaped as GitHub documents them: POST /login/oauth/access_token answers
{"access_token", "scope", "token_type"}; GET /user the user object (login, id, name, email, ...);
GET /user/emails a list of {"email", "primary", "verified", "visibility"}. A denied consent comes
back to the callback as ?error=access_denied&error_description=...&state=... .
"""

from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import responses
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from packages_app.models import Maintainer
from tests import factories

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/oauth/github/login/"
CALLBACK = "/accounts/oauth/github/login/callback/"
TOKEN_URL = "https://github.com/login/oauth/access_token"
USER_URL = "https://api.github.com/user"
EMAILS_URL = "https://api.github.com/user/emails"
ACCESS_TOKEN = "gho_16C7e42F292c6912E7710c838347Ae178B4a"


@pytest.fixture
def github_enabled(settings):
    settings.GITHUB_SIGN_IN_ENABLED = True
    settings.GITHUB_OAUTH_CLIENT_ID = "Iv1.test-client-id"
    settings.GITHUB_OAUTH_CLIENT_SECRET = "test-client-secret"


def github_user(login: str, github_id: int, email: str | None = None) -> dict:
    return {
        "login": login,
        "id": github_id,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": f"https://github.com/images/{login}.gif",
        "html_url": f"https://github.com/{login}",
        "type": "User",
        "site_admin": False,
        "name": "Ada Lovelace",
        "company": None,
        "email": email,
        "created_at": "2008-01-14T04:33:35Z",
    }


def github_email(address: str, *, verified: bool, primary: bool = True) -> dict:
    return {"email": address, "primary": primary, "verified": verified, "visibility": "private"}


class GitHub:
    """GitHub's OAuth and REST endpoints, as one sign-in sees them."""

    def __init__(self, mock: responses.RequestsMock):
        self.mock = mock

    def will_answer(self, user: dict, emails: list[dict]):
        self.mock.add(
            responses.POST,
            TOKEN_URL,
            json={
                "access_token": ACCESS_TOKEN,
                "scope": "read:user,user:email",
                "token_type": "bearer",
            },
        )
        self.mock.add(responses.GET, USER_URL, json=user)
        self.mock.add(responses.GET, EMAILS_URL, json=emails)

    def calls_to(self, url: str):
        return [call for call in self.mock.calls if call.request.url.split("?")[0] == url]


@pytest.fixture
def github(github_enabled):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield GitHub(mock)


def start(client: Client, **fields) -> str:
    """Press "Sign in with GitHub"; returns the state GitHub would send back."""
    response = client.post(LOGIN, {"process": "login", **fields})
    assert response.status_code == 302
    authorize = urlsplit(response["Location"])
    assert (authorize.scheme, authorize.netloc, authorize.path) == (
        "https",
        "github.com",
        "/login/oauth/authorize",
    )
    query = parse_qs(authorize.query)
    assert query["client_id"] == ["Iv1.test-client-id"]
    assert query["redirect_uri"] == [f"http://testserver{CALLBACK}"]
    assert set(query["scope"][0].split()) == {"read:user", "user:email"}
    return query["state"][0]


def dance(client: Client, github: GitHub, user: dict, emails: list[dict], **fields):
    """The whole round trip: GitHub sends the browser back with a code."""
    github.will_answer(user, emails)
    state = start(client, **fields)
    return client.get(CALLBACK, {"code": "a1b2c3d4e5f6", "state": state})


def signed_in_user(client: Client):
    response = client.get("/accounts/")
    if response.status_code != 200:
        return None
    return response.wsgi_request.user


def test_a_maintainer_is_linked_on_first_sign_in_and_sees_their_packages(github):
    maintainer = factories.MaintainerFactory(github_handle="AdaLovelace", user=None)
    package = factories.PackageFactory(name="kornia")
    package.maintainers.add(maintainer)
    client = Client()

    response = dance(
        client,
        github,
        github_user("adalovelace", 583231, "ada@public.example"),
        [github_email("ada@work.example", verified=True)],
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/"
    maintainer.refresh_from_db()
    assert maintainer.user is not None
    assert maintainer.github_id == 583231
    assert maintainer.github_handle == "adalovelace"  # GitHub's spelling from now on
    assert maintainer.user.email == "ada@work.example"  # only a verified address
    assert not maintainer.user.has_usable_password()
    home = client.get("/accounts/")
    assert home.wsgi_request.user == maintainer.user
    assert b"kornia" in home.content
    assert b"Connected to the GitHub account <strong>adalovelace</strong>" in home.content
    # The code was exchanged with the app's credentials, and the profile read with the token.
    exchange = github.calls_to(TOKEN_URL)[0].request
    sent = parse_qs(exchange.body)
    assert sent["code"] == ["a1b2c3d4e5f6"]
    assert sent["client_id"] == ["Iv1.test-client-id"]
    assert sent["client_secret"] == ["test-client-secret"]
    assert github.calls_to(USER_URL)[0].request.headers["Authorization"] == f"token {ACCESS_TOKEN}"


def test_next_sign_in_follows_a_renamed_handle_by_numeric_id(github):
    maintainer = factories.MaintainerFactory(github_handle="ada", user=None)
    emails = [github_email("ada@work.example", verified=True)]
    dance(Client(), github, github_user("ada", 583231), emails)
    first_user = Maintainer.objects.get(pk=maintainer.pk).user
    # Someone else registers the old handle later; the renamed person must still be found by id.
    factories.MaintainerFactory(github_handle="ada-renamed-away", user=None)

    client = Client()
    response = dance(client, github, github_user("ada-lovelace", 583231), emails)

    assert response.status_code == 302
    maintainer.refresh_from_db()
    assert maintainer.github_handle == "ada-lovelace"
    assert maintainer.user == first_user
    assert signed_in_user(client) == first_user
    assert get_user_model().objects.count() == 1


def test_an_existing_account_keeps_its_groups(github):
    account = factories.UserFactory(username="ada-account", email="ada@work.example")
    account.groups.add(Group.objects.get(name="release managers"))
    maintainer = factories.MaintainerFactory(github_handle="ada", user=account)
    client = Client()

    dance(
        client,
        github,
        github_user("ADA", 583231),
        [github_email("Ada@Work.example", verified=True)],
    )

    assert signed_in_user(client) == account
    assert list(account.groups.values_list("name", flat=True)) == ["release managers"]
    assert SocialAccount.objects.get(provider="github").user == account
    maintainer.refresh_from_db()
    assert maintainer.github_id == 583231
    assert get_user_model().objects.count() == 1


def test_a_handle_alone_never_enters_an_existing_account(github):
    # The handle may have been planted on a proposal; GitHub vouches for no address of the account.
    account = factories.UserFactory(username="ada-account", email="ada@work.example")
    factories.MaintainerFactory(github_handle="ada", email="ada@work.example", user=account)
    client = Client()

    refused = dance(
        client,
        github,
        github_user("ada", 666),
        [github_email("ada@work.example", verified=False)],
    )

    assert refused.status_code == 403
    assert b"GitHub lists no verified e-mail address of that account" in refused.content
    assert signed_in_user(client) is None
    assert not SocialAccount.objects.exists()


def test_a_staff_account_is_never_connected_automatically_but_can_connect_itself(github):
    reviewer = factories.UserFactory(username="reviewer", is_staff=True)
    reviewer.set_password("a long reviewer password")
    reviewer.save()
    reviewer.groups.add(Group.objects.get(name="reviewers"))
    factories.MaintainerFactory(github_handle="ada", user=reviewer)
    emails = [github_email("ada@work.example", verified=True)]

    client = Client()
    refused = dance(client, github, github_user("ada", 583231), emails)
    assert refused.status_code == 403
    assert b"Sign in with your password first" in refused.content
    assert signed_in_user(client) is None
    assert not SocialAccount.objects.exists()

    # The reviewer signs in with the password (the site's rate-limited form) and connects.
    assert (
        client.post(
            "/accounts/login/", {"username": "reviewer", "password": "a long reviewer password"}
        ).status_code
        == 302
    )
    home = client.get("/accounts/")
    assert b"Connect your GitHub account" in home.content
    connected = dance(client, github, github_user("ada", 583231), emails, process="connect")
    assert connected.status_code == 302
    assert SocialAccount.objects.get(provider="github").user == reviewer

    # From now on GitHub signs the reviewer in, into the same account with its groups.
    client = Client()
    dance(client, github, github_user("ada", 583231), emails)
    assert signed_in_user(client) == reviewer
    assert reviewer.groups.filter(name="reviewers").exists()


def test_denied_consent_signs_nobody_in(github):
    factories.MaintainerFactory(github_handle="ada", user=None)
    client = Client()
    state = start(client)

    response = client.get(
        CALLBACK,
        {
            "error": "access_denied",
            "error_description": "The user has denied your application access.",
            "error_uri": "https://docs.github.com/apps/troubleshooting-authorization-request-errors",
            "state": state,
        },
        follow=True,
    )

    assert response.status_code == 200
    assert b"Sign-in with GitHub cancelled" in response.content
    assert signed_in_user(client) is None
    assert not get_user_model().objects.exists()
    assert not github.calls_to(TOKEN_URL)  # no code, nothing exchanged


def test_an_unverified_email_links_nobody(github):
    # The maintainer row has no handle; only its e-mail could match.
    maintainer = factories.MaintainerFactory(github_handle="", email="ada@work.example", user=None)
    client = Client()

    response = dance(
        client,
        github,
        github_user("mallory", 666, "ada@work.example"),
        [github_email("ada@work.example", verified=False)],
    )

    assert response.status_code == 200
    assert b"No maintainer matches your GitHub account" in response.content
    assert signed_in_user(client) is None
    assert not get_user_model().objects.exists()
    maintainer.refresh_from_db()
    assert (maintainer.user, maintainer.github_id) == (None, None)


def test_a_verified_email_links_a_maintainer_without_handle(github):
    maintainer = factories.MaintainerFactory(github_handle="", email="Ada@Work.example", user=None)
    client = Client()

    dance(
        client,
        github,
        github_user("ada-gh", 583231),
        [
            github_email("ada@other.example", verified=False, primary=True),
            github_email("ada@work.example", verified=True, primary=False),
        ],
    )

    maintainer.refresh_from_db()
    assert signed_in_user(client) == maintainer.user
    assert (maintainer.github_id, maintainer.github_handle) == (583231, "ada-gh")
    assert maintainer.user.email == "ada@work.example"


def test_nobody_matching_gets_no_account(github):
    client = Client()
    response = dance(client, github, github_user("stranger", 99), [])
    assert b"No maintainer matches your GitHub account" in response.content
    assert not get_user_model().objects.exists()


def test_a_github_error_is_a_clear_page(github):
    factories.MaintainerFactory(github_handle="ada", user=None)
    github.mock.add(responses.POST, TOKEN_URL, json={"error": "bad_verification_code"}, status=200)
    client = Client()
    state = start(client)
    response = client.get(CALLBACK, {"code": "expired", "state": state})
    assert b"Sign-in with GitHub failed" in response.content
    assert signed_in_user(client) is None


def test_off_by_default_the_sign_in_page_says_so_and_nothing_calls_github(settings):
    assert settings.GITHUB_SIGN_IN_ENABLED is False  # the default
    client = Client()
    with responses.RequestsMock() as mock:
        page = client.get("/accounts/login/")
        assert b"Sign-in with GitHub is off on this site" in page.content
        assert LOGIN.encode() not in page.content
        refused = client.post(LOGIN, {"process": "login"})
        assert refused.status_code == 404
        assert b"Sign-in with GitHub is off on this site" in refused.content
        callback = client.get(CALLBACK, {"code": "x", "state": "y"})
        assert callback.status_code == 404
        assert len(mock.calls) == 0


def test_password_sign_in_keeps_working_beside_github(github):
    staff = factories.UserFactory(username="admin-person", is_staff=True)
    staff.set_password("a long admin password")
    staff.save()
    client = Client()
    page = client.get("/accounts/login/")
    assert LOGIN.encode() in page.content  # the GitHub button
    response = client.post(
        "/accounts/login/", {"username": "admin-person", "password": "a long admin password"}
    )
    assert response.status_code == 302
    assert signed_in_user(client) == staff
    # allauth's own password pages are not mounted: the rate-limited form is the only one.
    assert client.get("/accounts/oauth/password/reset/").status_code == 404
    assert client.get("/accounts/oauth/signup/").status_code == 302  # no pending GitHub login


def test_opening_the_start_url_asks_to_continue_with_a_post(github):
    # A GET never starts the OAuth dance (a link elsewhere cannot sign anyone in silently).
    page = Client().get(LOGIN)
    assert page.status_code == 200
    assert b'method="post"' in page.content
    assert not github.mock.calls
