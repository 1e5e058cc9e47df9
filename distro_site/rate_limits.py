"""Rate limits kept in the cache (Redis, shared by every web process and machine).

For events that leave no row to count: failed sign-ins, CI requests to the API. (Proposals,
claims and manual retries count their own rows in PostgreSQL.) Each subject (an address, a
username, a token) gets a counter per fixed window; reaching the limit blocks the subject for one
window from that moment. Subjects enter the keys only as keyed hashes, so Redis holds no address
or username. The times live in the values; the keys' expiry only cleans up.
"""

import math
import time
from dataclasses import dataclass

from django.core.cache import caches
from django.utils.crypto import salted_hmac

CACHE_ALIAS = "rate_limits"


@dataclass(frozen=True)
class RateLimit:
    scope: str  # names the keys, e.g. "sign-in:address"
    limit: int  # events per window; reaching it blocks the subject
    window_s: int


def _subject_key(rate: RateLimit, subject: str) -> str:
    digest = salted_hmac("rate-limit", f"{rate.scope}\0{subject}", algorithm="sha256")
    return f"{rate.scope}:{digest.hexdigest()[:40]}"


def _window_key(rate: RateLimit, subject: str, now: float) -> str:
    return f"{_subject_key(rate, subject)}:count:{int(now // rate.window_s)}"


def _block_key(rate: RateLimit, subject: str) -> str:
    return f"{_subject_key(rate, subject)}:blocked-until"


def blocked_for_s(rate: RateLimit, subject: str) -> int:
    """Seconds the subject stays blocked; 0 when it is not."""
    until = caches[CACHE_ALIAS].get(_block_key(rate, subject))
    if until is None:
        return 0
    return max(0, math.ceil(until - time.time()))


def record_event(rate: RateLimit, subject: str) -> int:
    """Count one event of the subject. Returns the seconds it is now blocked for (0: under the
    limit); the event that reaches the limit starts the block."""
    cache = caches[CACHE_ALIAS]
    now = time.time()
    key = _window_key(rate, subject, now)
    # add + incr: atomic in Redis, so parallel requests never lose a count.
    cache.add(key, 0, timeout=rate.window_s)
    try:
        count = cache.incr(key)
    except ValueError:  # the window's key expired between add and incr
        cache.add(key, 1, timeout=rate.window_s)
        count = 1
    if count < rate.limit:
        return 0
    cache.set(_block_key(rate, subject), now + rate.window_s, timeout=rate.window_s)
    return rate.window_s


def forget(rate: RateLimit, subject: str) -> None:
    """Drop the subject's count of the current window and any block."""
    caches[CACHE_ALIAS].delete_many(
        [_window_key(rate, subject, time.time()), _block_key(rate, subject)]
    )
