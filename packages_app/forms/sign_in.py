"""Sign-in and password-change forms that refuse guessing (packages_app.services.sign_in).

The site's sign-in, the admin's and the password change share the counts: the address the
request came from (distro_site.clients) and the username tried. A blocked attempt is refused
before the password is checked; the view answers 429 with Retry-After (`blocked_for_s`).
"""

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.forms import PasswordChangeForm

from distro_site.clients import client_address
from packages_app.services.sign_in import record_failed_sign_in
from packages_app.services.sign_in import record_successful_sign_in
from packages_app.services.sign_in import sign_in_blocked_for_s


def blocked_error(seconds: int) -> forms.ValidationError:
    minutes = max(1, -(-seconds // 60))
    return forms.ValidationError(
        "Too many failed sign-ins from this address or for this account. Sign-in is paused: "
        "try again in %(minutes)d minute%(plural)s.",
        code="too_many_attempts",
        params={"minutes": minutes, "plural": "" if minutes == 1 else "s"},
    )


class SignInLimitMixin:
    """For AuthenticationForm and its subclasses: counts failures, refuses while blocked."""

    blocked_for_s = 0

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        password = self.cleaned_data.get("password")
        address = client_address(self.request) if self.request is not None else ""
        self.blocked_for_s = sign_in_blocked_for_s(address=address, username=username)
        if self.blocked_for_s:
            raise blocked_error(self.blocked_for_s)
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if username and password:
                self.blocked_for_s = record_failed_sign_in(address=address, username=username)
                if self.blocked_for_s:
                    raise blocked_error(self.blocked_for_s) from None
            raise
        if self.get_user() is not None:
            record_successful_sign_in(username=username)
        return cleaned


class SignInForm(SignInLimitMixin, AuthenticationForm):
    pass


class AdminSignInForm(SignInLimitMixin, AdminAuthenticationForm):
    pass


class LimitedPasswordChangeForm(PasswordChangeForm):
    """A wrong old password counts as a failed sign-in of the account (a stolen session must not
    become a way to guess the password)."""

    blocked_for_s = 0

    def __init__(self, user, *args, request=None, **kwargs):
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self):
        username = self.user.get_username()
        address = client_address(self.request) if self.request is not None else ""
        self.blocked_for_s = sign_in_blocked_for_s(address=address, username=username)
        if self.blocked_for_s:
            raise blocked_error(self.blocked_for_s)
        try:
            return super().clean_old_password()
        except forms.ValidationError:
            self.blocked_for_s = record_failed_sign_in(address=address, username=username)
            if self.blocked_for_s:
                raise blocked_error(self.blocked_for_s) from None
            raise


class AdminLimitedPasswordChangeForm(LimitedPasswordChangeForm):
    required_css_class = "required"  # as the admin's own AdminPasswordChangeForm
