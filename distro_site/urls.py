"""Top-level URL configuration."""

from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include
from django.urls import path

from distro_site import guide
from packages_app.views import catalog as package_views
from packages_app.views import channels as channel_views
from testing_app.api import build_testing


def favicon(request):
    """Browsers and feed readers ask for /favicon.ico whatever the page's <link rel=icon>."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


urlpatterns = [
    path("", package_views.home, name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("packages/", include("packages_app.urls.catalog", namespace="packages")),
    path("channels/", channel_views.channel_stack, name="channel-stack"),
    path("admin/", admin.site.urls),
    # The documentation in docs/, rendered (the maintainers' guide first).
    path("docs/", guide.guide_index, name="guide-index"),
    path("docs/<slug:slug>/", guide.guide_page, name="guide-page"),
    path("django-rq/", include("django_rq.urls")),
    # Token-authenticated write endpoint for maintainers' CI (issue 5), next to the read API.
    path("api/test-this-build/", build_testing.request_build_test, name="api-test-this-build"),
    path("api/", include("testing_app.api.urls", namespace="api")),
    path("", include("testing_app.urls", namespace="testing")),
    # /propose/, /proposals/<token>/, /review/ (proposal flow) and /accounts/ (sign-in).
    path("", include("packages_app.urls.proposals", namespace="proposals")),
    path("accounts/", include("packages_app.urls.accounts", namespace="accounts")),
    # "Sign in with GitHub" through django-allauth (issue 21); off unless GITHUB_SIGN_IN_ENABLED.
    path("accounts/oauth/", include("packages_app.urls.github_sign_in")),
]
