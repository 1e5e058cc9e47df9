"""reverse() for links of one shape repeated hundreds of times on a page (matrix cells, job
history, gate evidence): the URL is reversed once with a placeholder, then filled in.

reverse() costs ~0.1 ms; a package page links ~1,000 jobs and a matrix page 550 packages.
"""

from functools import lru_cache
from urllib.parse import quote

from django.urls import get_script_prefix
from django.urls import reverse

PLACEHOLDER = "7919793"
# What reverse() leaves unquoted in a path argument (django.urls.resolvers).
_SAFE = "!$&'()*+,;=/~:@"


@lru_cache(maxsize=32)
def _url_template(viewname: str, kwarg: str, script_prefix: str) -> str:
    return reverse(viewname, kwargs={kwarg: PLACEHOLDER})


def fast_reverse(viewname: str, kwarg: str, value) -> str:
    """reverse(viewname, kwargs={kwarg: value}) for a view with that one argument."""
    template = _url_template(viewname, kwarg, get_script_prefix())
    return template.replace(PLACEHOLDER, quote(str(value), safe=_SAFE))


def url_pieces(viewname: str, kwarg: str) -> tuple[str, str]:
    """(head, tail) of the view's URL around its one argument: head + str(value) + tail, for
    integer values (nothing to quote) in the tightest loops."""
    head, _, tail = _url_template(viewname, kwarg, get_script_prefix()).partition(PLACEHOLDER)
    return head, tail


def job_url(job_id: int | None) -> str:
    if not job_id:
        return ""
    head, tail = url_pieces("testing:job-detail", "pk")
    return f"{head}{int(job_id)}{tail}"


def package_url(name: str) -> str:
    return fast_reverse("packages:package-detail", "name", name)


@lru_cache(maxsize=8)
def _matrix_cell_prefix(script_prefix: str) -> str:
    arguments = dict.fromkeys(("package", "release", "variant", "platform"), PLACEHOLDER)
    return reverse("testing:matrix-cell", kwargs=arguments).partition(PLACEHOLDER)[0]


def matrix_cell_prefix() -> str:
    """The URL of the matrix's cell pages up to the package name (…/matrix/cell/)."""
    return _matrix_cell_prefix(get_script_prefix())


def matrix_cell_url(package: str, release: str, variant: str, platform: str) -> str:
    """A matrix cell's page: package x PyTorch release x variant x platform."""
    parts = (package, release, variant, platform)
    return matrix_cell_prefix() + "/".join(quote(str(p), safe="") for p in parts) + "/"
