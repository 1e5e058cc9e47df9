"""django-allauth's hooks for "Sign in with GitHub" (settings.SOCIALACCOUNT_ADAPTER); allauth
calls them like views, so they live with the views.

allauth runs the OAuth dance (state, code exchange, /user and /user/emails); these hooks decide
who the person is here (packages_app.services.github_accounts):
- a GitHub account already connected signs in to its account, and its Maintainer row follows a
  renamed login;
- a new GitHub account that matches a Maintainer row without an account gets a new account,
  linked to the row;
- one that matches a row with an ordinary account is connected to that account (its groups and
  history stay) when GitHub lists a verified address of the account or the row;
- otherwise (a staff account: administrators, reviewers with admin access; or no verified
  address in common) it is not connected automatically: the account's owner signs in with the
  password and connects GitHub from the account page, so a mistyped or planted handle on a
  proposal can never hand over an existing account;
- no match: no account (sign-up is closed to people who maintain nothing here).
The OAuth app comes from settings at request time, so GITHUB_SIGN_IN_ENABLED=false switches the
whole flow off.
"""

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.base import AuthProcess
from django.conf import settings
from django.shortcuts import render
from django.urls import reverse

from packages_app.services.github_accounts import GitHubIdentity
from packages_app.services.github_accounts import find_maintainer
from packages_app.services.github_accounts import link_github_account

GITHUB = "github"


def identity_of(sociallogin: SocialLogin) -> GitHubIdentity:
    data = sociallogin.account.extra_data or {}
    return GitHubIdentity(
        github_id=int(sociallogin.account.uid),
        login=str(data.get("login") or ""),
        # The primary address first: it becomes the account's e-mail.
        verified_emails=tuple(
            a.email
            for a in sorted(sociallogin.email_addresses, key=lambda a: not a.primary)
            if a.verified
        ),
    )


def may_connect_automatically(account, maintainer, identity: GitHubIdentity) -> bool:
    """Whether a first GitHub sign-in may enter an existing account: never a staff account, and
    only when GitHub vouches for an address of the account or its maintainer record. A handle
    alone is not enough there: it came from a proposal form, and an existing account has more
    to lose (groups, history) than a new one."""
    if account.is_staff or account.is_superuser:
        return False
    verified = {address.casefold() for address in identity.verified_emails}
    known = {(account.email or "").casefold(), maintainer.email.casefold()} - {""}
    return bool(verified & known)


class MaintainerSocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request, provider=None, client_id=None):
        if not settings.GITHUB_SIGN_IN_ENABLED or provider not in (None, GITHUB):
            return []
        if client_id and client_id != settings.GITHUB_OAUTH_CLIENT_ID:
            return []
        return [
            SocialApp(
                provider=GITHUB,
                name="GitHub",
                client_id=settings.GITHUB_OAUTH_CLIENT_ID,
                secret=settings.GITHUB_OAUTH_CLIENT_SECRET,
            )
        ]

    def pre_social_login(self, request, sociallogin):
        if sociallogin.account.provider != GITHUB:
            return
        identity = identity_of(sociallogin)
        if sociallogin.is_existing:
            link_github_account(user=sociallogin.user, identity=identity)
            return
        if sociallogin.state.get("process") == AuthProcess.CONNECT:
            # The signed-in person connects GitHub to their own account (allauth checks the
            # GitHub account is not someone else's).
            if request.user.is_authenticated:
                link_github_account(user=request.user, identity=identity)
            return
        maintainer = find_maintainer(identity)
        if maintainer is None or maintainer.user is None:
            return  # sign-up decides (is_open_for_signup)
        account = maintainer.user
        if not may_connect_automatically(account, maintainer, identity):
            raise ImmediateHttpResponse(
                render(
                    request,
                    "packages_app/github_sign_in_refused.html",
                    {
                        "login": identity.login,
                        "account": account.get_username(),
                        "staff": account.is_staff or account.is_superuser,
                    },
                    status=403,
                )
            )
        sociallogin.connect(request, account)
        link_github_account(user=account, identity=identity)

    def get_connect_redirect_url(self, request, socialaccount):
        return reverse("accounts:home")

    def is_open_for_signup(self, request, sociallogin):
        return find_maintainer(identity_of(sociallogin)) is not None

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        # Only an address GitHub verified becomes the account's e-mail.
        verified = identity_of(sociallogin).verified_emails
        user.email = verified[0] if verified else ""
        return user

    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form=form)
        link_github_account(user=user, identity=identity_of(sociallogin))
        return user
