"""Who is asking: the client's address, as rate limits count it."""

from django.conf import settings


def client_address(request) -> str:
    """The client's address for rate limiting.

    Behind the reverse proxy the last X-Forwarded-For entry is the one the proxy itself added
    (the address it saw); entries before it come from the client and can be forged.
    """
    if settings.BEHIND_TLS_PROXY:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [h for h in hops if h]
        if hops:
            return hops[-1]
    return request.META.get("REMOTE_ADDR", "")
