"""POST /api/test-this-build/: a maintainer's CI asks for one staged build to be tested.

A DRF view like the rest of the API, so it is in /api/schema/ and the schema fuzzing reaches it:
its own authentication class (package tokens), a serializer for the body, a throttle.

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

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.exceptions import NotAuthenticated
from rest_framework.exceptions import ParseError
from rest_framework.exceptions import Throttled
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from distro_site.rate_limits import RateLimit
from distro_site.rate_limits import blocked_for_s
from distro_site.rate_limits import record_event
from packages_app.models import Build
from packages_app.models import Channel
from packages_app.services.sync import sync_channels
from testing_app.models import Run
from testing_app.services.planning import plan_new_builds
from testing_app.services.trusted_publishing import authenticate_ci_credential

MAX_BODY_BYTES = 16 * 1024


def _error(status: int, code: str, detail: str, **extra) -> Response:
    return Response({"detail": detail, "code": code, **extra}, status=status)


def _requests_per_package() -> RateLimit:
    # Per package, not per token: its maintainers can make more tokens at will.
    return RateLimit("test-this-build:package", settings.TEST_THIS_BUILD_REQUESTS_PER_HOUR, 3600)


def _bearer(request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "token") else ""


class PackageTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <package token>`; a missing or bad token is refused (401), never
    passed on as anonymous: this endpoint has no other way in."""

    def authenticate(self, request):
        try:
            # A package token, or a GitHub Actions OIDC token of a trusted publisher (issue 21).
            token = authenticate_ci_credential(credential=_bearer(request))
        except PermissionDenied as exc:
            # Trusted publishing's refusals carry their own code (expired, replayed, ...).
            raise AuthenticationFailed(
                str(exc), code=getattr(exc, "code", "invalid_token")
            ) from exc
        return AnonymousUser(), token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class PackageTokenScheme(OpenApiAuthenticationExtension):
    target_class = PackageTokenAuthentication
    name = "packageToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A package's API token"}


class HasPackageToken(BasePermission):
    def has_permission(self, request, view) -> bool:
        return request.auth is not None


class PackageRequestsThrottle(BaseThrottle):
    """TEST_THIS_BUILD_REQUESTS_PER_HOUR per package, all its tokens together, in Redis: each
    request may read the staging channels and plan GPU work."""

    wait_s = 0

    def allow_request(self, request, view) -> bool:
        key = str(request.auth.package_id)
        self.wait_s = blocked_for_s(_requests_per_package(), key)
        if self.wait_s:
            return False
        # This request is served; the one that reaches the limit starts the pause.
        record_event(_requests_per_package(), key)
        return True

    def wait(self) -> int:
        return self.wait_s


class _StrictCharField(serializers.CharField):
    """A JSON string, not a number turned into one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class _StrictBooleanField(serializers.BooleanField):
    """A JSON true/false, not "yes" or 1."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class TestThisBuildRequestSerializer(serializers.Serializer):
    filename = _StrictCharField(
        max_length=255, help_text="The package file name, e.g. kornia-0.7.3-pyhd8_0.conda."
    )
    subdir = _StrictCharField(max_length=32, required=False, help_text="e.g. linux-64")
    channel = _StrictCharField(
        max_length=200, required=False, help_text="Staging channel name, optionally /label/<l>."
    )
    force = _StrictBooleanField(
        required=False, default=False, help_text="Plan again cells already decided."
    )

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            expected = sorted(self.fields)
            raise serializers.ValidationError(
                {name: [f"Unknown field; expected some of {expected}."] for name in unknown}
            )
        return attrs


class _BuildSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    subdir = serializers.CharField()
    filename = serializers.CharField()


class TestThisBuildAnswerSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    run_url = serializers.URLField()
    build = _BuildSerializer()
    install_checks = serializers.IntegerField()
    not_applicable = serializers.IntegerField()
    already_decided = serializers.IntegerField()


class ApiErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(required=False)


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


class TestThisBuildView(APIView):
    authentication_classes = [PackageTokenAuthentication]
    permission_classes = [HasPackageToken]
    throttle_classes = [PackageRequestsThrottle]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]

    def initial(self, request, *args, **kwargs):
        # Not a POST is 405 before anything else, token or not, as this endpoint always answered.
        if request.method != "POST":
            raise MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc):
        """Every refusal is {detail, code}, with the codes this endpoint has always used."""
        if isinstance(exc, MethodNotAllowed):
            return _error(405, "method_not_allowed", "Use POST.")
        if isinstance(exc, AuthenticationFailed | NotAuthenticated):
            code = getattr(exc.detail, "code", "")
            if code in ("", "authentication_failed", "not_authenticated"):
                code = "invalid_token"
            return _error(401, code, str(exc.detail))
        if isinstance(exc, ParseError):
            return _error(400, "malformed", "The body must be a JSON object.")
        if isinstance(exc, Throttled):
            wait_s = int(exc.wait or 1)
            response = _error(
                429,
                "rate_limited",
                f"At most {settings.TEST_THIS_BUILD_REQUESTS_PER_HOUR} requests per hour for "
                f"{self.request.auth.package.name}; try again in {wait_s} s.",
            )
            response["Retry-After"] = str(wait_s)
            return response
        return super().handle_exception(exc)

    @extend_schema(
        operation_id="test_this_build",
        summary="Ask for one staged build of the token's package to be tested",
        request=TestThisBuildRequestSerializer,
        responses={
            201: TestThisBuildAnswerSerializer,
            400: ApiErrorSerializer,
            401: ApiErrorSerializer,
            403: ApiErrorSerializer,
            404: ApiErrorSerializer,
            429: ApiErrorSerializer,
        },
    )
    def post(self, request):
        if len(request.body) > MAX_BODY_BYTES:
            return _error(400, "malformed", f"The body is larger than {MAX_BODY_BYTES} bytes.")
        if not isinstance(request.data, dict):
            return _error(400, "malformed", "The body must be a JSON object.")
        serializer = TestThisBuildRequestSerializer(data=request.data)
        if not serializer.is_valid():
            return _error(400, "invalid", "The body has invalid fields.", errors=serializer.errors)
        body = {k: v for k, v in serializer.validated_data.items() if k in request.data}
        body.setdefault("force", False)
        return self._plan(request, body)

    def _plan(self, request, body: dict) -> Response:
        token = request.auth
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
            force=body["force"],
            trigger=Run.Trigger.MANUAL,
        )
        url = request.build_absolute_uri(reverse("testing:run-detail", args=[report.run.pk]))
        answer = {
            "run": report.run.pk,
            "run_url": url,
            "build": {"id": build.pk, "subdir": build.subdir, "filename": build.filename},
            "install_checks": report.jobs,
            "not_applicable": report.not_applicable,
            "already_decided": report.already_decided,
        }
        return Response(answer, status=201)


request_build_test = TestThisBuildView.as_view()
