"""Admin for the catalog: display and filters only; state changes belong to services."""

from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.models import SocialToken
from django.contrib import admin

from . import channels
from . import people

__all__ = ["channels", "people"]

# "Sign in with GitHub" takes its OAuth app from settings (GITHUB_OAUTH_*) and keeps no access
# tokens, so django-allauth's tables of apps and tokens are never read: not offered here, where
# an app added by hand would look as if it were used. Connected GitHub accounts stay listed.
for _unused in (SocialApp, SocialToken):
    if admin.site.is_registered(_unused):
        admin.site.unregister(_unused)
