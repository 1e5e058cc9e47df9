"""API permissions: reads follow PUBLIC_READ; this API has no writes."""

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.permissions import BasePermission


class PublicReadOnly(BasePermission):
    """Safe methods for everyone when PUBLIC_READ is on, else for signed-in users only."""

    def has_permission(self, request, view) -> bool:
        if request.method not in SAFE_METHODS:
            return False
        return settings.PUBLIC_READ or bool(request.user and request.user.is_authenticated)
