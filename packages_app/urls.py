"""Catalog URLs."""

from django.urls import path

from . import views

app_name = "packages"

urlpatterns = [
    path("", views.package_list, name="package-list"),
    path("<str:name>/", views.package_detail, name="package-detail"),
]
