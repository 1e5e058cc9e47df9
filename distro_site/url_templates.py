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
