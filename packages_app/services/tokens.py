"""Per-package API tokens for maintainers' CI ("test this build"): created, used, revoked.

Only the token's SHA-256 is stored (packages_app.models.hash_token); the plain token is returned
once, at creation. A revoked token stays listed (who made it, when it was last used).
"""

import secrets

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from packages_app.models import Maintainer
from packages_app.models import Package
from packages_app.models import PackageToken
from packages_app.models import hash_token
from packages_app.selectors.proposals import account_maintainers

# Recognisable in logs and secret scanners; 256 random bits after it.
TOKEN_PREFIX = "cdt_"
TOKEN_BYTES = 32


def maintainer_of(*, user, package: Package) -> Maintainer | None:
    """The user's Maintainer row if they maintain `package`, else None."""
    return package.maintainers.filter(pk__in=account_maintainers(user)).first()


def may_manage_tokens(*, user, package: Package) -> bool:
    """Maintainers of the package, and staff with the model permission."""
    if not user.is_authenticated:
        return False
    if user.has_perm("packages_app.change_packagetoken"):
        return True
    return maintainer_of(user=user, package=package) is not None


@transaction.atomic
def create_package_token(
    *, package: Package, name: str, created_by: Maintainer | None = None
) -> tuple[PackageToken, str]:
    """A new token for `package`; returns the row and the plain token (never stored)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the token after what uses it, e.g. 'github-ci'."})
    if PackageToken.objects.filter(package=package, name=name, revoked_at__isnull=True).exists():
        raise ValidationError({"name": f"{package.name} already has an active token {name!r}."})
    plain = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = PackageToken(
        package=package, name=name, token_hash=hash_token(plain), created_by=created_by
    )
    token.full_clean()
    token.save()
    return token, plain


@transaction.atomic
def revoke_package_token(*, token: PackageToken) -> PackageToken:
    """Stop accepting the token at once (idempotent)."""
    PackageToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db()
    return token


@transaction.atomic
def authenticate_package_token(*, plain: str) -> PackageToken:
    """The active token `plain` stands for, stamped as used; PermissionDenied otherwise."""
    if not plain:
        raise PermissionDenied("No token given.")
    token = (
        PackageToken.objects.select_for_update()
        .select_related("package")
        .filter(token_hash=hash_token(plain))
        .first()
    )
    if token is None:
        raise PermissionDenied("Unknown token.")
    if token.revoked_at is not None:
        raise PermissionDenied(f"Token {token.name!r} of {token.package.name} was revoked.")
    PackageToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token
