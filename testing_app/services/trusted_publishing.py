"""Trusted publishing: a GitHub Actions OIDC token in place of a package token (issue 21).

What PyPI's trusted publishing does, for POST /api/test-this-build/: a package's maintainers
register a publisher (GitHub repository, workflow file, optional environment; packages_app.
models.publishers.TrustedPublisher). A workflow run asks GitHub for an OIDC token with this site's
audience and sends it as the bearer token. It is accepted when:
- its signature verifies with a key of GitHub's JWKS (RS256 only: `alg: none` and HMAC tokens are
  refused before any key is looked at);
- `iss` is GitHub Actions, `aud` is TRUSTED_PUBLISHING_AUDIENCE, `exp`/`nbf`/`iat` hold (with
  TRUSTED_PUBLISHING_LEEWAY_S of clock skew);
- its `repository`, the workflow file of `job_workflow_ref` and (when the publisher names one)
  `environment` match a registered publisher of exactly one package;
- its `jti` was never accepted before (kept until the token expires).
Everything here refuses with CredentialRefused (a PermissionDenied with a `code`), which the view
answers 401.
"""

import logging
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime

import jwt
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.db import transaction
from django.utils import timezone

from packages_app.models import Package
from packages_app.models import TrustedPublisher
from packages_app.models import UsedPublishingToken
from packages_app.services.tokens import authenticate_package_token
from testing_app.adapters import github_oidc

logger = logging.getLogger(__name__)

ALGORITHMS = ["RS256"]  # what GitHub signs with; anything else is refused
REQUIRED_CLAIMS = ["iss", "aud", "exp", "nbf", "iat", "jti", "repository", "job_workflow_ref"]


class CredentialRefused(PermissionDenied):
    """The bearer credential is not accepted; `code` goes into the API's error body."""

    def __init__(self, message: str, code: str = "invalid_token"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TrustedPublisherCaller:
    """A verified workflow run, standing where a PackageToken stands in the view."""

    publisher: TrustedPublisher
    claims: dict

    @property
    def package(self) -> Package:
        return self.publisher.package

    @property
    def package_id(self) -> int:
        return self.publisher.package_id

    @property
    def name(self) -> str:
        # Shown in the run's trigger detail: which workflow run asked.
        return (
            f"GitHub Actions {self.claims['job_workflow_ref']} "
            f"(run {self.claims.get('run_id', '?')})"
        )


def looks_like_jwt(credential: str) -> bool:
    # Package tokens are "cdt_" + URL-safe base64 (no dots); a JWT is three dotted segments.
    return credential.count(".") == 2 and not credential.startswith("cdt_")


def authenticate_ci_credential(*, credential: str):
    """The package token or trusted publisher `credential` (the bearer value) stands for.

    Returns a PackageToken or a TrustedPublisherCaller (both have .package, .package_id and
    .name); raises PermissionDenied (CredentialRefused with a code for OIDC tokens)."""
    if looks_like_jwt(credential):
        return authenticate_github_oidc_token(token=credential)
    return authenticate_package_token(plain=credential)


def authenticate_github_oidc_token(*, token: str) -> TrustedPublisherCaller:
    if not settings.TRUSTED_PUBLISHING_ENABLED:
        raise CredentialRefused(
            "Trusted publishing (GitHub Actions OIDC tokens) is off on this site: it is "
            "configured not to reach GitHub. Use a package token "
            "(Authorization: Bearer cdt_...) from the package's CI tokens page.",
            code="trusted_publishing_off",
        )
    claims = verified_claims(token)
    publisher = matching_publisher(claims)
    consume_token_id(claims)
    record_publisher_use(publisher=publisher, claims=claims)
    return TrustedPublisherCaller(publisher=publisher, claims=claims)


def verified_claims(token: str) -> dict:
    """The claims of a GitHub Actions OIDC token whose signature, issuer, audience and times
    verify."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise CredentialRefused(f"Not a JSON Web Token: {exc}") from exc
    if header.get("alg") not in ALGORITHMS:
        raise CredentialRefused(
            f"Token algorithm {header.get('alg')!r} refused; GitHub signs with RS256."
        )
    key_id = header.get("kid")
    if not isinstance(key_id, str) or not key_id:
        raise CredentialRefused("The token names no signing key (kid).")
    try:
        key = github_oidc.signing_key(key_id)
    except github_oidc.UnknownSigningKey as exc:
        raise CredentialRefused(f"{exc}: not a token GitHub signed.") from exc
    except github_oidc.JwksUnavailable as exc:
        logger.warning("trusted publishing: %s", exc)
        raise CredentialRefused(
            f"{exc}. Try again later, or use a package token.", code="issuer_unreachable"
        ) from exc
    try:
        return jwt.decode(
            token,
            key=key.key,
            algorithms=ALGORITHMS,
            audience=settings.TRUSTED_PUBLISHING_AUDIENCE,
            issuer=github_oidc.GITHUB_ACTIONS_ISSUER,
            leeway=settings.TRUSTED_PUBLISHING_LEEWAY_S,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise CredentialRefused("The token has expired.", code="token_expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise CredentialRefused("The token is not valid yet (nbf/iat).") from exc
    except jwt.InvalidAudienceError as exc:
        raise CredentialRefused(
            f"The token's audience is not {settings.TRUSTED_PUBLISHING_AUDIENCE!r}: ask GitHub "
            "for a token with this site's audience.",
            code="wrong_audience",
        ) from exc
    except jwt.InvalidTokenError as exc:
        raise CredentialRefused(f"The token does not verify: {exc}") from exc


def _workflow_of(job_workflow_ref: str, repository: str) -> str | None:
    """The workflow file name of `owner/repo/.github/workflows/<file>@<ref>`, when it lives in
    `repository` (a reusable workflow from another repository is not the caller's)."""
    path, at, _ref = job_workflow_ref.partition("@")
    prefix = f"{repository}/.github/workflows/"
    if not at or not path.casefold().startswith(prefix.casefold()):
        return None
    workflow = path[len(prefix) :]
    return workflow if workflow and "/" not in workflow else None


def matching_publisher(claims: dict) -> TrustedPublisher:
    """The one registered publisher these verified claims match."""
    repository = str(claims["repository"])
    workflow = _workflow_of(str(claims["job_workflow_ref"]), repository)
    environment = str(claims.get("environment") or "")
    candidates = TrustedPublisher.objects.filter(repository__iexact=repository).select_related(
        "package"
    )
    matches = [
        publisher
        for publisher in candidates
        if workflow is not None
        and publisher.workflow.casefold() == workflow.casefold()
        # A publisher without an environment trusts the workflow in any (PyPI does the same).
        and publisher.environment.casefold() in ("", environment.casefold())
    ]
    if not matches:
        where = f" in environment {environment!r}" if environment else ""
        raise CredentialRefused(
            f"No package trusts {claims['job_workflow_ref']}{where}: register the repository "
            "and workflow as a trusted publisher on the package's CI tokens page.",
            code="no_trusted_publisher",
        )
    packages = {publisher.package_id for publisher in matches}
    if len(packages) > 1:
        names = sorted({publisher.package.name for publisher in matches})
        raise CredentialRefused(
            f"{repository} is a trusted publisher of several packages ({', '.join(names)}); "
            "register a distinct environment per package, or use a package token.",
            code="ambiguous_trusted_publisher",
        )
    # A publisher naming the environment is the more specific match.
    publisher = sorted(matches, key=lambda p: not p.environment)[0]
    repository_id = str(claims.get("repository_id") or "")
    if publisher.repository_id and repository_id != publisher.repository_id:
        raise CredentialRefused(
            f"{repository} is not the repository registered for {publisher.package.name} (its "
            "GitHub id changed: deleted and re-created?). Register it again.",
            code="no_trusted_publisher",
        )
    return publisher


def consume_token_id(claims: dict) -> None:
    """Accept each token once: store its `jti` until it expires; a second use is refused."""
    now = timezone.now()
    UsedPublishingToken.objects.filter(expires_at__lt=now).delete()
    expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
    try:
        with transaction.atomic():
            UsedPublishingToken.objects.create(jti=str(claims["jti"]), expires_at=expires_at)
    except IntegrityError as exc:
        raise CredentialRefused(
            "This token was already used; ask GitHub for a new one per request.",
            code="token_replayed",
        ) from exc


def record_publisher_use(*, publisher: TrustedPublisher, claims: dict) -> None:
    changes = {"last_used_at": timezone.now()}
    if not publisher.repository_id and claims.get("repository_id"):
        # Trust on first use, as PyPI pins the repository owner's id.
        changes["repository_id"] = str(claims["repository_id"])
    TrustedPublisher.objects.filter(pk=publisher.pk).update(**changes)
    for field, value in changes.items():
        setattr(publisher, field, value)
