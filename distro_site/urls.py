"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import include
from django.urls import path

from packages_app import channel_views
from packages_app import views as package_views
from testing_app.api import build_testing

urlpatterns = [
    path("", package_views.home, name="home"),
    path("channels/", channel_views.channel_stack, name="channel-stack"),
    path("packages/", include("packages_app.urls", namespace="packages")),
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
    # Token-authenticated write endpoint for maintainers' CI (issue 5), next to the read API.
    path("api/test-this-build/", build_testing.request_build_test, name="api-test-this-build"),
    path("api/", include("testing_app.api.urls", namespace="api")),
    path("", include("testing_app.urls", namespace="testing")),
    # /propose/, /proposals/<token>/, /review/ (proposal flow) and /accounts/ (sign-in).
    path("", include("packages_app.proposal_urls", namespace="proposals")),
    path("accounts/", include("packages_app.account_urls", namespace="accounts")),
]
