"""Admin for the matrix axes: variants and platforms (small reference tables)."""

from django.contrib import admin

from testing_app.models import Platform
from testing_app.models import Variant


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "accelerator_version",
        "needs_gpu",
        "min_driver_cuda",
        "select_specs",
        "sort_order",
    )
    list_filter = ("kind", "needs_gpu")
    search_fields = ("name", "accelerator_version")


@admin.register(Platform)
class PlatformAdmin(admin.ModelAdmin):
    list_display = ("subdir", "os_name", "arch", "sort_order")
    list_filter = ("os_name", "arch")
    search_fields = ("subdir",)
