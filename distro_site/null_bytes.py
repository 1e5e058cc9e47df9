"""Refuse query parameters that hold a NUL character, before any view reads them.

PostgreSQL text cannot hold NUL (psycopg raises on such a literal), so a filter like
`/api/builds/?version=%00` would end in a 500. Django's form fields refuse NUL
(ProhibitNullCharactersValidator); query parameters read directly by views and the API get the
same rule here, once, with a clear 400.
"""

from django.http import HttpResponseBadRequest
from django.http import JsonResponse

MESSAGE = "Query parameters may not contain NUL characters."


class RefuseNullBytesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if any("\x00" in key or "\x00" in value for key, value in _items(request.GET)):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": MESSAGE, "code": "invalid"}, status=400)
            return HttpResponseBadRequest(MESSAGE)
        return self.get_response(request)


def _items(query):
    for key, values in query.lists():
        for value in values:
            yield key, value
