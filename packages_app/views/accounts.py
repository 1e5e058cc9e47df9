"""Sign-in (rate-limited) and the signed-in maintainer's page: their packages and proposals
(linked by account or email)."""

from functools import wraps

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from packages_app.forms.sign_in import LimitedPasswordChangeForm
from packages_app.forms.sign_in import SignInForm
from packages_app.selectors.proposals import get_maintainer_home
from packages_app.selectors.proposals import github_login_of


def refused_while_blocked(response, form):
    """429 with Retry-After when the form was refused because its sign-in is blocked."""
    if getattr(form, "blocked_for_s", 0):
        response.status_code = 429
        response["Retry-After"] = str(form.blocked_for_s)
    return response


GITHUB_SIGN_IN_OFF = (
    "Sign-in with GitHub is off on this site (it cannot reach GitHub, or its administrators "
    "have not registered a GitHub OAuth app). Sign in with a username and password; "
    "administrators create accounts and link them to maintainers."
)


def github_sign_in_context() -> dict:
    return {
        "github_sign_in_enabled": settings.GITHUB_SIGN_IN_ENABLED,
        "github_sign_in_off": GITHUB_SIGN_IN_OFF,
    }


def github_sign_in_only_when_enabled(view):
    """The GitHub OAuth pages answer 404 with the reason while GITHUB_SIGN_IN_ENABLED is off, so
    nothing on this site tries to reach GitHub."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not settings.GITHUB_SIGN_IN_ENABLED:
            return render(
                request,
                "packages_app/github_sign_in_off.html",
                github_sign_in_context(),
                status=404,
            )
        return view(request, *args, **kwargs)

    return guarded


class SignInView(auth_views.LoginView):
    authentication_form = SignInForm

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **github_sign_in_context()}

    def form_invalid(self, form):
        return refused_while_blocked(super().form_invalid(form), form)


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = LimitedPasswordChangeForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}

    def form_invalid(self, form):
        return refused_while_blocked(super().form_invalid(form), form)


@login_required(login_url="accounts:login")
def account_home(request):
    home = get_maintainer_home(user=request.user)
    return render(
        request,
        "packages_app/account_home.html",
        {
            "home": home,
            "is_reviewer": request.user.has_perm("packages_app.review_proposal"),
            "github_login": github_login_of(request.user),
            **github_sign_in_context(),
        },
    )
