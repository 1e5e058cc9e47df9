"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import include
from django.urls import path

from packages_app import views as package_views

urlpatterns = [
    path("", package_views.home, name="home"),
    path("packages/", include("packages_app.urls", namespace="packages")),
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
]
