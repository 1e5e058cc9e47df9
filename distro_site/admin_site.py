"""The admin site: Django's, with the rate-limited sign-in and password change of
packages_app.forms.sign_in (the counts are shared with the site's own sign-in)."""

from django.contrib import admin
from django.urls import reverse

from packages_app.forms.sign_in import AdminLimitedPasswordChangeForm
from packages_app.forms.sign_in import AdminSignInForm
from packages_app.views.accounts import PasswordChangeView
from packages_app.views.accounts import refused_while_blocked


class DistroAdminSite(admin.AdminSite):
    login_form = AdminSignInForm

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        return refused_while_blocked(response, form)

    def password_change(self, request, extra_context=None):
        # AdminSite.password_change with the limited form and a view that passes the request.
        defaults = {
            "form_class": AdminLimitedPasswordChangeForm,
            "success_url": reverse("admin:password_change_done", current_app=self.name),
            "extra_context": {**self.each_context(request), **(extra_context or {})},
        }
        if self.password_change_template is not None:
            defaults["template_name"] = self.password_change_template
        request.current_app = self.name
        return PasswordChangeView.as_view(**defaults)(request)
