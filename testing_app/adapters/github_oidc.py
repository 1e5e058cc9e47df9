"""GitHub Actions' OpenID Connect signing keys (JWKS), fetched with requests and cached.

GitHub publishes the keys that sign Actions' OIDC tokens at
https://token.actions.githubusercontent.com/.well-known/jwks and rotates them. The key set is kept
in this process for TRUSTED_PUBLISHING_JWKS_CACHE_S; a token signed with a key id the cached set
does not have makes one fresh fetch (a rotation), but at most once per
TRUSTED_PUBLISHING_JWKS_MIN_REFRESH_S, so tokens with made-up key ids cannot turn this site into
a stream of requests to GitHub.
"""

import threading
import time
from dataclasses import dataclass

import jwt
import requests
from django.conf import settings

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


_lock = threading.Lock()
_cache: _CachedKeys | None = None


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
    """The key GitHub signs with under `key_id`, from the cache or a fetch."""
    global _cache
    with _lock:
        now = time.monotonic()
        age = now - _cache.fetched_at if _cache is not None else None
        fresh = age is not None and age < settings.TRUSTED_PUBLISHING_JWKS_CACHE_S
        if fresh and key_id in _cache.keys:
            return _cache.keys[key_id]
        recently = age is not None and age < settings.TRUSTED_PUBLISHING_JWKS_MIN_REFRESH_S
        if not recently:
            _cache = _CachedKeys(keys=fetch_jwks(), fetched_at=now)
        if key_id in _cache.keys:
            return _cache.keys[key_id]
    raise UnknownSigningKey(f"GitHub has no signing key {key_id!r}")


def forget_cached_keys() -> None:
    """Drop the cached key set (tests; an operator after a key compromise)."""
    global _cache
    with _lock:
        _cache = None
