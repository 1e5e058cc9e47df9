"""GitHub Actions' OpenID Connect signing keys (JWKS), fetched with requests and cached.

GitHub publishes the keys that sign Actions' OIDC tokens at
https://token.actions.githubusercontent.com/.well-known/jwks and rotates them. The key set is kept
in this process for TRUSTED_PUBLISHING_JWKS_CACHE_S; a token signed with a key id the cached set
does not have makes one fresh fetch (a rotation), but at most once per
TRUSTED_PUBLISHING_JWKS_MIN_REFRESH_S, so tokens with made-up key ids cannot turn this site into
a stream of requests to GitHub. While GitHub is unreachable, cached keys stay usable for
STALE_KEYS_GRACE_S.
"""

import logging
import threading
import time
from dataclasses import dataclass

import jwt
import requests
from django.conf import settings

logger = logging.getLogger(__name__)

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_ACTIONS_JWKS_URL = f"{GITHUB_ACTIONS_ISSUER}/.well-known/jwks"
MAX_JWKS_BYTES = 256 * 1024


class JwksUnavailable(Exception):
    """GitHub's key set could not be read or was not a key set."""


class UnknownSigningKey(Exception):
    """No key of GitHub's current key set has this key id."""


@dataclass
class _CachedKeys:
    keys: dict[str, jwt.PyJWK]
    fetched_at: float  # time.monotonic()


# While GitHub cannot be reached, keys it published are still used for this long past
# TRUSTED_PUBLISHING_JWKS_CACHE_S: a short GitHub outage does not stop CI, a long one does (a key
# GitHub withdrew must not stay trusted forever).
STALE_KEYS_GRACE_S = 24 * 3600

_lock = threading.Lock()
_cache: _CachedKeys | None = None
_last_attempt: float | None = None  # time.monotonic() of the last fetch, failed or not


def fetch_jwks(url: str = GITHUB_ACTIONS_JWKS_URL) -> dict[str, jwt.PyJWK]:
    """GitHub's current signing keys by key id (RSA signing keys only)."""
    try:
        response = requests.get(url, timeout=settings.HTTP_TIMEOUT_S)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise JwksUnavailable(f"GitHub's signing keys could not be read: {exc}") from exc
    if len(response.content) > MAX_JWKS_BYTES:
        raise JwksUnavailable(f"GitHub's key set is larger than {MAX_JWKS_BYTES} bytes")
    try:
        key_set = jwt.PyJWKSet.from_dict(response.json())
    except (ValueError, jwt.PyJWKSetError, jwt.InvalidKeyError) as exc:
        raise JwksUnavailable(f"GitHub's key set is not a JWKS: {exc}") from exc
    return {
        key.key_id: key
        for key in key_set.keys
        if key.key_id and key.key_type == "RSA" and key.public_key_use in (None, "sig")
    }


def signing_key(key_id: str) -> jwt.PyJWK:
    """The key GitHub signs with under `key_id`, from the cache or a fetch.

    Raises UnknownSigningKey when GitHub's current set has no such key, JwksUnavailable when the
    set cannot be read (and no cached copy within STALE_KEYS_GRACE_S has the key)."""
    global _cache, _last_attempt
    with _lock:
        now = time.monotonic()
        cache_s = settings.TRUSTED_PUBLISHING_JWKS_CACHE_S
        if _cache is not None and now - _cache.fetched_at < cache_s and key_id in _cache.keys:
            return _cache.keys[key_id]
        may_fetch = (
            _last_attempt is None
            or now - _last_attempt >= settings.TRUSTED_PUBLISHING_JWKS_MIN_REFRESH_S
        )
        failure = None
        if may_fetch:
            _last_attempt = now
            try:
                _cache = _CachedKeys(keys=fetch_jwks(), fetched_at=now)
            except JwksUnavailable as exc:
                failure = exc
        if _cache is None:
            raise failure or JwksUnavailable(
                "GitHub's signing keys could not be read a moment ago; not trying again yet"
            )
        usable = now - _cache.fetched_at < cache_s + STALE_KEYS_GRACE_S
        if key_id in _cache.keys and usable:
            if failure is not None:
                logger.warning("using cached GitHub signing keys: %s", failure)
            return _cache.keys[key_id]
        if failure is not None:
            raise failure
        if not usable:
            raise JwksUnavailable("GitHub's signing keys are too old and could not be re-read")
    raise UnknownSigningKey(f"GitHub has no signing key {key_id!r}")


def forget_cached_keys() -> None:
    """Drop the cached key set (tests; an operator after a key compromise)."""
    global _cache, _last_attempt
    with _lock:
        _cache = None
        _last_attempt = None
