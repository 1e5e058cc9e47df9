"""Catalog URLs."""

from django.urls import path

from packages_app.views import catalog as views
from packages_app.views import tokens as token_views

app_name = "packages"

urlpatterns = [
    path("", views.package_list, name="package-list"),
    path("<str:name>/", views.package_detail, name="package-detail"),
    path("<str:name>/tokens/", token_views.package_tokens, name="package-tokens"),
    path(
        "<str:name>/tokens/<int:pk>/revoke/",
        token_views.package_token_revoke,
        name="package-token-revoke",
    ),
    path(
        "<str:name>/tokens/publishers/",
        token_views.package_publishers,
        name="package-publishers",
    ),
    path(
        "<str:name>/tokens/publishers/<int:pk>/remove/",
        token_views.package_publisher_remove,
        name="package-publisher-remove",
    ),
]
