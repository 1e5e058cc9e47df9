"""ETags and conditional GET for the API: a client that has the current body gets a 304."""

import hashlib

from django.utils.cache import get_conditional_response


class ConditionalGetMixin:
    """Adds a strong ETag (hash of the rendered body) to successful reads and answers
    `If-None-Match` with 304 Not Modified, saving the transfer and the client's parsing."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method not in ("GET", "HEAD") or response.status_code != 200:
            return response
        response.render()
        etag = '"' + hashlib.sha256(response.content).hexdigest()[:40] + '"'
        response["ETag"] = etag
        response["Cache-Control"] = "no-cache"
        return get_conditional_response(request, etag=etag, response=response)
