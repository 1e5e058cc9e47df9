"""Failed sign-ins, counted per client address and per username (distro_site.rate_limits).

SIGN_IN_FAILURES_PER_ADDRESS failures from one address, or SIGN_IN_FAILURES_PER_USERNAME for one
username, within SIGN_IN_WINDOW_S block further attempts for SIGN_IN_WINDOW_S: passwords are not
even checked meanwhile, so guessing stops. A successful sign-in clears its username's count (the
person got in), never the address's (one valid account must not reset the guessing of others).
The admin's sign-in and the password change count the same way.
"""

import logging

from django.conf import settings

from distro_site.rate_limits import RateLimit
from distro_site.rate_limits import blocked_for_s
from distro_site.rate_limits import forget
from distro_site.rate_limits import record_event

logger = logging.getLogger(__name__)


def _per_address() -> RateLimit:
    return RateLimit(
        "sign-in:address", settings.SIGN_IN_FAILURES_PER_ADDRESS, settings.SIGN_IN_WINDOW_S
    )


def _per_username() -> RateLimit:
    return RateLimit(
        "sign-in:username", settings.SIGN_IN_FAILURES_PER_USERNAME, settings.SIGN_IN_WINDOW_S
    )


def _normalised(username: str) -> str:
    # "Ada" and " ada" are one target for whoever guesses.
    return username.strip().casefold()


def sign_in_blocked_for_s(*, address: str, username: str) -> int:
    """Seconds before this address may try this username again; 0 when it may now."""
    return max(
        blocked_for_s(_per_address(), address),
        blocked_for_s(_per_username(), _normalised(username)),
    )


def record_failed_sign_in(*, address: str, username: str) -> int:
    """Count a failed sign-in; returns the seconds of the block it started (0: none)."""
    by_address = record_event(_per_address(), address)
    by_username = record_event(_per_username(), _normalised(username))
    if by_address or by_username:
        reached = [
            name for name, hit in (("address", by_address), ("username", by_username)) if hit
        ]
        logger.warning(
            "sign-in blocked for %d s: too many failures per %s",
            max(by_address, by_username),
            " and per ".join(reached),
        )
    return max(by_address, by_username)


def record_successful_sign_in(*, username: str) -> None:
    forget(_per_username(), _normalised(username))
