"""Site-wide read access: pages are public unless PUBLIC_READ is off, then sign-in is required.

Write actions check their own permissions in their views; this only decides who may read.
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse

# Paths that handle authentication themselves (admin login, the queue dashboard) or must be
# reachable to sign in at all (static files of the login page).
# Notification preferences and unsubscribe links carry their own token (the link in an email
# must work without signing in); so do proposal status pages. Proposing a package and signing in
# are public by nature.
ALWAYS_OPEN_PREFIXES = (
    "/admin/",
    "/django-rq/",
    "/notifications/",
    "/propose/",
    "/proposals/",
    "/accounts/",
    # The "test this build" API authenticates by its own per-package token.
    "/api/test-this-build/",
)


class PublicReadMiddleware:
    """When settings.PUBLIC_READ is false, anonymous requests get a login redirect (pages) or a
    structured 401 (the JSON API). Read at request time, so the setting can change per test."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if getattr(settings, "PUBLIC_READ", True) or request.user.is_authenticated:
            return self.get_response(request)
        path = request.path_info
        if path.startswith((*ALWAYS_OPEN_PREFIXES, "/" + settings.STATIC_URL.lstrip("/"))):
            return self.get_response(request)
        if path.startswith("/api/"):
            return JsonResponse(
                {
                    "detail": "Authentication credentials were not provided.",
                    "code": "not_authenticated",
                },
                status=401,
            )
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
