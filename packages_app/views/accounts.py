"""Sign-in (rate-limited) and the signed-in maintainer's page: their packages and proposals
(linked by account or email)."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from packages_app.forms.sign_in import LimitedPasswordChangeForm
from packages_app.forms.sign_in import SignInForm
from packages_app.selectors.proposals import get_maintainer_home


def refused_while_blocked(response, form):
    """429 with Retry-After when the form was refused because its sign-in is blocked."""
    if getattr(form, "blocked_for_s", 0):
        response.status_code = 429
        response["Retry-After"] = str(form.blocked_for_s)
    return response


class SignInView(auth_views.LoginView):
    authentication_form = SignInForm

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
        },
    )
