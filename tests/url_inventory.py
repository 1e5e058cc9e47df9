"""Every URL of the URLconf as a concrete path, so security tests cover URLs added later too."""

from dataclasses import dataclass

from django.urls import URLPattern
from django.urls import URLResolver
from django.urls import get_resolver
from django.urls import resolve
from django.urls.exceptions import Resolver404
from django.utils.regex_helper import normalize

# Values tried for each captured argument until the path resolves to the same view (an admin
# app_label pattern only accepts real app labels).
ARGUMENT_CANDIDATES = ("1", "auth", "packages_app", "testing_app", "json")


@dataclass(frozen=True)
class ConcreteUrl:
    name: str  # "namespace:name", or the route when the pattern has no name
    path: str
    callback: object


def _walk(patterns, prefix: str, namespace: str):
    for entry in patterns:
        route = normalize(entry.pattern.regex.pattern)[0][0]
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + route, inner)
        elif isinstance(entry, URLPattern):
            yield prefix + route, entry, namespace


def all_urls() -> list[ConcreteUrl]:
    """One concrete path per pattern; patterns no candidate value can satisfy are left out."""
    found = []
    for template, pattern, namespace in _walk(get_resolver().url_patterns, "", ""):
        for value in ARGUMENT_CANDIDATES:
            path = "/" + template.replace("%(", "{").replace(")s", "}")
            path = path.format_map(_Fill(value))
            try:
                match = resolve(path)
            except Resolver404:
                continue
            if match.func is pattern.callback:
                name = f"{namespace}{pattern.name}" if pattern.name else template
                found.append(ConcreteUrl(name=name, path=path, callback=pattern.callback))
                break
    return found


class _Fill(dict):
    def __init__(self, value: str):
        super().__init__()
        self.value = value

    def __missing__(self, key):
        # DRF's format suffix must name a renderer, or the view answers 404 before anything else.
        return "json" if key == "format" else self.value
