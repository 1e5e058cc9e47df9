"""Linking GitHub accounts to Maintainer rows ("Sign in with GitHub", issue 21).

A person who signs in with GitHub is the maintainer whose row names them, found in this order:
1. by GitHub's numeric user id, stored at the first link (logins can be renamed, ids cannot, so
   a renamed handle is followed and the row's handle updated);
2. by the GitHub login, compared case-insensitively (GitHub logins are case-insensitive), among
   rows not yet bound to another GitHub id;
3. by an e-mail address GitHub reports as verified, among rows not yet bound to another id.
An unverified address never links anyone: anybody can add any address to a GitHub account.
"""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q

from packages_app.models import Maintainer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GitHubIdentity:
    """What GitHub's /user and /user/emails replies say about the person signing in."""

    github_id: int
    login: str
    verified_emails: tuple[str, ...] = ()


def find_maintainer(identity: GitHubIdentity) -> Maintainer | None:
    """The Maintainer row this GitHub identity stands for, or None."""
    by_id = Maintainer.objects.filter(github_id=identity.github_id).select_related("user").first()
    if by_id is not None:
        return by_id
    unbound = Maintainer.objects.filter(github_id__isnull=True).select_related("user")
    if identity.login:
        by_handle = unbound.filter(github_handle__iexact=identity.login).order_by("pk").first()
        if by_handle is not None:
            return by_handle
    if identity.verified_emails:
        any_email = Q()
        for email in identity.verified_emails:
            any_email |= Q(email__iexact=email)
        return unbound.filter(any_email).order_by("pk").first()
    return None


@transaction.atomic
def link_github_account(*, user, identity: GitHubIdentity) -> Maintainer | None:
    """Bind the user account and GitHub id to the identity's Maintainer row (idempotent).

    Follows a renamed login (the row's handle becomes the current one). Returns the linked row,
    or None when no row matches or the row already belongs to another account (that is left
    alone and logged: an administrator decides).
    """
    found = find_maintainer(identity)
    if found is None:
        return None
    maintainer = Maintainer.objects.select_for_update().get(pk=found.pk)
    if maintainer.user_id not in (None, user.pk):
        logger.warning(
            "GitHub user %s (id %s) matches maintainer %s, who is linked to another account",
            identity.login,
            identity.github_id,
            maintainer.pk,
        )
        return None
    other = Maintainer.objects.filter(user=user).exclude(pk=maintainer.pk).first()
    if other is not None:
        logger.warning(
            "account %s is already maintainer %s; not linking maintainer %s as well",
            user.pk,
            other.pk,
            maintainer.pk,
        )
        return None
    changed = []
    if maintainer.user_id is None:
        maintainer.user = user
        changed.append("user")
    if maintainer.github_id != identity.github_id:
        maintainer.github_id = identity.github_id
        changed.append("github_id")
    if identity.login and maintainer.github_handle != identity.login:
        if maintainer.github_handle:
            logger.info(
                "maintainer %s: GitHub handle %s is now %s",
                maintainer.pk,
                maintainer.github_handle,
                identity.login,
            )
        maintainer.github_handle = identity.login
        changed.append("github_handle")
    if changed:
        maintainer.save(update_fields=changed)
    return maintainer
