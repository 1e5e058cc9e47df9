"""The documentation in docs/, served by the site: Markdown rendered with markdown-it-py.

The Markdown files are the single source: they are read from the repository's docs/ folder (the
same files reviewers read on a forge), rendered once per file version and cached in memory.
markdown-it-py follows CommonMark, is maintained by the Executable Books project (MyST, Jupyter
Book) and escapes raw HTML when `html` is off, which is why it was chosen over hand-written
conversion. Links between the files (`lint.md#codes`) become links between the pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import SafeString
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from markdown_it import MarkdownIt


@dataclass(frozen=True)
class GuidePage:
    slug: str
    title: str
    audience: str


# Order of the index: maintainers first, they are the many.
PAGES = (
    GuidePage("maintainers", "Maintainers' guide", "maintainers"),
    GuidePage("trusted-publishing", "Trusted publishing from GitHub Actions", "maintainers"),
    GuidePage("github-sign-in", "Signing in with GitHub", "maintainers"),
    GuidePage("lint", "Dependency lint: codes and examples", "maintainers"),
    GuidePage("release-managers", "Release managers", "release managers"),
    GuidePage("operators", "Operators: hosts, workers, security", "operators"),
    GuidePage("operators-backups", "Operators: backups and restore", "operators"),
    GuidePage("fault-runs", "Fault runs", "operators"),
    GuidePage("architecture", "Architecture: one build through the code", "developers"),
)
PAGES_BY_SLUG = {page.slug: page for page in PAGES}
_MD_LINK = re.compile(r"^(?P<slug>[a-z0-9-]+)\.md(?P<anchor>#[\w-]*)?$")


def docs_dir() -> Path:
    return Path(settings.BASE_DIR) / "docs"


def available_pages() -> list[GuidePage]:
    """The pages whose file exists (a deployment may leave out developer pages)."""
    return [page for page in PAGES if (docs_dir() / f"{page.slug}.md").is_file()]


def _heading_ids(tokens) -> list[tuple[int, str, str]]:
    """Give every heading a stable id (GitHub's style: lower case, dashes) and list them."""
    seen: dict[str, int] = {}
    outline = []
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        text = tokens[index + 1].content
        anchor = slugify(text) or "section"
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        if count:
            anchor = f"{anchor}-{count}"
        token.attrSet("id", anchor)
        outline.append((int(token.tag[1]), anchor, text))
    return outline


def _rewrite_links(tokens) -> None:
    """`other.md#x` -> /docs/other/#x, so the files link to each other on the site too."""
    for token in tokens:
        for child in token.children or ():
            if child.type != "link_open":
                continue
            match = _MD_LINK.match(child.attrGet("href") or "")
            if match and match["slug"] in PAGES_BY_SLUG:
                url = reverse("guide-page", kwargs={"slug": match["slug"]})
                child.attrSet("href", url + (match["anchor"] or ""))


@dataclass(frozen=True)
class RenderedPage:
    html: SafeString
    outline: list[tuple[int, str, str]]


def render_markdown(text: str) -> RenderedPage:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    tokens = md.parse(text)
    outline = _heading_ids(tokens)
    _rewrite_links(tokens)
    # html is off: raw HTML in the source is escaped, so the output is safe to mark as such.
    return RenderedPage(html=mark_safe(md.renderer.render(tokens, md.options, {})), outline=outline)


@lru_cache(maxsize=32)
def _render_file(path: Path, mtime_ns: int) -> RenderedPage:
    return render_markdown(path.read_text(encoding="utf-8"))


def render_page(slug: str) -> RenderedPage:
    path = docs_dir() / f"{slug}.md"
    return _render_file(path, path.stat().st_mtime_ns)


def guide_index(request):
    return render(request, "guide/index.html", {"pages": available_pages()})


def guide_page(request, slug: str):
    page = PAGES_BY_SLUG.get(slug)
    if page is None or not (docs_dir() / f"{slug}.md").is_file():
        raise Http404(f"No documentation page {slug!r}")
    rendered = render_page(slug)
    return render(
        request,
        "guide/page.html",
        {
            "page": page,
            "pages": available_pages(),
            "body": rendered.html,
            # Level-2 headings make the page's table of contents.
            "outline": [(anchor, text) for level, anchor, text in rendered.outline if level == 2],
        },
    )
