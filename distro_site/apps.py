"""App configs of the site itself."""

from django.contrib.admin.apps import AdminConfig


class DistroAdminConfig(AdminConfig):
    # admin.site and every @admin.register use this site (rate-limited sign-in).
    default_site = "distro_site.admin_site.DistroAdminSite"
