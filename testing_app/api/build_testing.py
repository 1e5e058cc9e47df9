"""POST /api/test-this-build/: a maintainer's CI asks for one staged build to be tested.

Authenticated by a per-package token (`Authorization: Bearer <token>`, packages_app.services.
tokens) or a trusted publisher's GitHub Actions OIDC token (testing_app.services.
trusted_publishing), not by a session: no CSRF, and open even when PUBLIC_READ is off
(distro_site.access).
The body names a build of the token's package in a staging channel; the planner plans it as a
new build (its cells, its dependents re-tested) and the answer is the run. Every refusal is a
JSON object with `detail` and `code` (401 token, 403 another package's build, 404 no such
build, 400 malformed body, 405 not a POST, 429 more than TEST_THIS_BUILD_REQUESTS_PER_HOUR
requests for one package, all its tokens together: each may read the staging channels and plan
GPU work).
"""

import json

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from distro_site.rate_limits import RateLimit
from distro_site.rate_limits import blocked_for_s
from distro_site.rate_limits import record_event
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.services.sync import sync_channels
from testing_app.models import Run
from testing_app.services.planning import plan_new_builds
from testing_app.services.trusted_publishing import authenticate_ci_credential

FIELDS = {"filename": str, "subdir": str, "channel": str, "force": bool}
MAX_BODY_BYTES = 16 * 1024


def _error(status: int, code: str, detail: str, **extra) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code, **extra}, status=status)


def _requests_per_package() -> RateLimit:
    # Per package, not per token: its maintainers can make more tokens at will.
    return RateLimit("test-this-build:package", settings.TEST_THIS_BUILD_REQUESTS_PER_HOUR, 3600)


def _bearer(request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "token") else ""


def _body(request) -> tuple[dict | None, JsonResponse | None]:
    if len(request.body) > MAX_BODY_BYTES:
        return None, _error(400, "malformed", f"The body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(request.body or b"")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, _error(400, "malformed", "The body must be a JSON object.")
    if not isinstance(body, dict):
        return None, _error(400, "malformed", "The body must be a JSON object.")
    errors = {}
    for name, value in body.items():
        expected = FIELDS.get(name)
        if expected is None:
            errors[name] = [f"Unknown field; expected some of {sorted(FIELDS)}."]
        elif not isinstance(value, expected) or (expected is str and not value.strip()):
            errors[name] = [f"Must be a {'boolean' if expected is bool else 'non-empty string'}."]
    if "filename" not in body:
        errors["filename"] = ["Required: the package file name, e.g. kornia-0.7.3-pyhd8_0.conda."]
    if errors:
        return None, _error(400, "invalid", "The body has invalid fields.", errors=errors)
    return body, None


def _staged(body: dict):
    builds = Build.objects.filter(
        channel__role=Channel.Role.STAGING, filename=body["filename"]
    ).exclude(state=Build.State.WITHDRAWN)
    if "subdir" in body:
        builds = builds.filter(subdir=body["subdir"])
    if "channel" in body:
        name, _, label = body["channel"].partition("/label/")
        builds = builds.filter(channel__name=name, channel__label=label)
    return list(builds.select_related("package", "channel")[:2])


@csrf_exempt
def request_build_test(request):
    if request.method != "POST":
        return _error(405, "method_not_allowed", "Use POST.")
    try:
        # A package token, or a GitHub Actions OIDC token of a trusted publisher (issue 21).
        token = authenticate_ci_credential(credential=_bearer(request))
    except PermissionDenied as exc:
        return _error(401, getattr(exc, "code", "invalid_token"), str(exc))
    wait_s = blocked_for_s(_requests_per_package(), str(token.package_id))
    if wait_s:
        response = _error(
            429,
            "rate_limited",
            f"At most {settings.TEST_THIS_BUILD_REQUESTS_PER_HOUR} requests per hour for "
            f"{token.package.name}; try again in {wait_s} s.",
        )
        response["Retry-After"] = str(wait_s)
        return response
    # This request is served; the one that reaches the limit starts the pause.
    record_event(_requests_per_package(), str(token.package_id))
    body, problem = _body(request)
    if problem is not None:
        return problem
    found = _staged(body)
    if not found:
        # Just uploaded? Read the staging channels once (import only: planned right here).
        sync_channels(channels=Channel.objects.filter(role=Channel.Role.STAGING), plan=False)
        found = _staged(body)
    if not found:
        return _error(404, "unknown_build", f"No staged build {body['filename']!r}.")
    if len(found) > 1:
        return _error(400, "ambiguous", "Several staged builds match: give subdir and channel.")
    build = found[0]
    if build.package_id != token.package_id:
        return _error(
            403,
            "wrong_package",
            f"{build.filename} is not a build of {token.package.name}, whose token this is.",
        )
    report = plan_new_builds(
        builds=[build],
        detail=f"API token {token.name!r} of {token.package.name}",
        force=body.get("force", False),
        trigger=Run.Trigger.MANUAL,
    )
    url = request.build_absolute_uri(reverse("testing:run-detail", args=[report.run.pk]))
    return JsonResponse(
        {
            "run": report.run.pk,
            "run_url": url,
            "build": {"id": build.pk, "subdir": build.subdir, "filename": build.filename},
            "install_checks": report.jobs,
            "not_applicable": report.not_applicable,
            "already_decided": report.already_decided,
        },
        status=201,
    )
