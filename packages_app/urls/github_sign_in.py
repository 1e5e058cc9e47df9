"""django-allauth's URLs for "Sign in with GitHub", under /accounts/oauth/ (no namespace:
allauth reverses its own names).

Only the GitHub flow is mounted: allauth's password, sign-up and e-mail pages are not, since
password sign-in is Django's own rate-limited form (packages_app.urls.accounts). allauth's
`account_login` name points at that page. Connecting GitHub to a signed-in account starts from
the account page and returns there (allauth's connections page is not mounted either). When
GITHUB_SIGN_IN_ENABLED is off, the GitHub pages answer 404 with the sign-in page's explanation.
"""

from allauth.account import views as allauth_account_views
from allauth.socialaccount import views as socialaccount_views
from allauth.socialaccount.providers.github import views as github_views
from django.urls import path
from django.views.generic import RedirectView

from packages_app.views.accounts import github_sign_in_only_when_enabled

urlpatterns = [
    path(
        "github/login/",
        github_sign_in_only_when_enabled(github_views.oauth2_login),
        name="github_login",
    ),
    path(
        "github/login/callback/",
        github_sign_in_only_when_enabled(github_views.oauth2_callback),
        name="github_callback",
    ),
    path(
        "login/cancelled/",
        socialaccount_views.login_cancelled,
        name="socialaccount_login_cancelled",
    ),
    path("login/error/", socialaccount_views.login_error, name="socialaccount_login_error"),
    path(
        "signup/",
        github_sign_in_only_when_enabled(socialaccount_views.signup),
        name="socialaccount_signup",
    ),
    path("inactive/", allauth_account_views.account_inactive, name="account_inactive"),
    path(
        "login/",
        RedirectView.as_view(pattern_name="accounts:login", query_string=True),
        name="account_login",
    ),
]
