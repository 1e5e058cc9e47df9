"""Sign-in pages (django.contrib.auth views, rate-limited) and the maintainer's own page,
under /accounts/."""

from django.contrib.auth import views as auth_views
from django.urls import path
from django.urls import reverse_lazy

from packages_app.views import accounts as account_views

app_name = "accounts"

urlpatterns = [
    path("", account_views.account_home, name="home"),
    path(
        "login/",
        account_views.SignInView.as_view(
            template_name="registration/login.html",
            next_page=reverse_lazy("accounts:home"),
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page=reverse_lazy("home")), name="logout"),
    path(
        "password/",
        account_views.PasswordChangeView.as_view(
            template_name="registration/password_change_form.html",
            success_url=reverse_lazy("accounts:password-change-done"),
        ),
        name="password-change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="registration/password_change_done.html"
        ),
        name="password-change-done",
    ),
]
