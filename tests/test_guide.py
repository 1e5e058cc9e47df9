"""The documentation pages: served by the site, linked where maintainers look, and true.

The maintainers' guide is checked against the product itself: every management command it
names exists, every site address it gives resolves to a view, every setting it names is a
setting, and its example recipes pass the real pre-checks.
"""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands
from django.urls import Resolver404
from django.urls import resolve

from distro_site.guide import PAGES
from distro_site.guide import render_markdown
from packages_app.adapters.recipe_fetch import FetchedText
from packages_app.lint.recipe_checks import FAIL
from packages_app.lint.recipe_checks import PASS
from packages_app.services.prechecks import evaluate_recipe_url
from tests.packages_app.proposal_helpers import seed_catalog

DOCS = Path(settings.BASE_DIR) / "docs"
GUIDE = DOCS / "maintainers.md"
# Sample values for the placeholders the guide writes in addresses.
PLACEHOLDERS = {"<name>": "kornia", "<id>": "1", "<version>": "2.5.1", "<token>": "abc"}
# Variables of the guide's CI example (secrets and addresses of the maintainer's CI, not ours).
CI_VARIABLES = {"DISTRO_URL", "DISTRO_TOKEN"}
FENCE = re.compile(r"^```[a-z]*\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)


def guide_text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def site_paths(text: str) -> set[str]:
    """Addresses on the site the text names: `/x/...` in code spans and link targets."""
    candidates = re.findall(r"`(/[^`\s]*)`", text) + re.findall(r"\]\((/[^)\s]*)\)", text)
    candidates += re.findall(r"\$DISTRO_URL(/[^\s\"']*)", text)
    return {c for c in candidates if not c.startswith("//")}


def test_every_page_in_the_index_has_its_file():
    for page in PAGES:
        assert (DOCS / f"{page.slug}.md").is_file(), page.slug


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.slug)
def test_every_documentation_page_renders(client, db, page):
    response = client.get(f"/docs/{page.slug}/")
    assert response.status_code == 200
    first_heading = (DOCS / f"{page.slug}.md").read_text(encoding="utf-8").splitlines()[0]
    assert first_heading.startswith("# ")
    assert first_heading[2:].split(":")[0] in response.content.decode()


def test_index_lists_the_maintainers_guide_first(client, db):
    response = client.get("/docs/")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index("/docs/maintainers/") < body.index("/docs/operators/")


def test_unknown_page_is_404(client, db):
    assert client.get("/docs/nope/").status_code == 404
    assert client.get("/docs/..%2Fsettings/").status_code == 404


def test_links_between_files_become_links_between_pages():
    page = render_markdown("See [the codes](lint.md#codes) and [x](https://example.org/a.md).")
    assert 'href="/docs/lint/#codes"' in page.html
    assert 'href="https://example.org/a.md"' in page.html


def test_raw_html_in_markdown_is_escaped_and_headings_get_anchors():
    page = render_markdown("## Two words\n\n<script>alert(1)</script>\n")
    assert "<script>" not in page.html
    assert '<h2 id="two-words">' in page.html
    assert page.outline == [(2, "two-words", "Two words")]


def test_guide_is_linked_from_the_header_the_form_and_package_pages(client, db, reference_data):
    from packages_app.models import Package

    Package.objects.create(name="kornia", status=Package.Status.ACTIVE)
    for path in ("/", "/propose/", "/packages/kornia/"):
        body = client.get(path).content.decode()
        assert 'href="/docs/maintainers/' in body, path


def test_every_management_command_in_the_guide_exists():
    named = set(re.findall(r"manage\.py ([a-z_]+)", guide_text()))
    assert named <= set(get_commands()), named - set(get_commands())


def test_every_site_address_in_the_guide_resolves():
    paths = site_paths(guide_text())
    assert "/api/test-this-build/" in paths
    assert "/propose/" in paths
    unresolved = []
    for path in sorted(paths):
        concrete = path
        for placeholder, value in PLACEHOLDERS.items():
            concrete = concrete.replace(placeholder, value)
        try:
            resolve(concrete.split("#")[0].split("?")[0])
        except Resolver404:
            unresolved.append(path)
    assert not unresolved


def test_every_setting_in_the_guide_is_a_setting():
    named = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", guide_text()))
    assert named, "the guide names its settings"
    assert {n for n in named - CI_VARIABLES if not hasattr(settings, n)} == set()


def _example_recipes() -> dict[str, str]:
    recipes = {}
    for match in FENCE.finditer(guide_text()):
        body = match["body"]
        first, _, rest = body.partition("\n")
        if first.strip() in ("# meta.yaml", "# recipe.yaml"):
            recipes[first.strip()[2:]] = rest
    return recipes


def test_the_guide_shows_one_example_recipe_of_each_format():
    assert set(_example_recipes()) == {"meta.yaml", "recipe.yaml"}


@pytest.mark.parametrize("filename", ["meta.yaml", "recipe.yaml"])
def test_the_guides_example_recipes_pass_every_precheck(db, filename):
    seed_catalog()
    text = _example_recipes()[filename]
    url = f"https://github.com/kornia/kornia-feedstock/raw/main/recipe/{filename}"

    def fetch(requested_url, policy):
        return FetchedText(url=requested_url, text=text, size=len(text.encode()))

    def no_siblings(requested_url, policy):
        from packages_app.adapters.recipe_fetch import RecipeFetchError

        raise RecipeFetchError("no such file")

    results = evaluate_recipe_url(
        recipe_url=url,
        package_name="kornia",
        form_license="Apache-2.0",
        fetch=fetch,
        fetch_sibling=no_siblings,
    )
    outcomes = {r.check: r.outcome for r in results}
    assert FAIL not in outcomes.values(), results
    assert set(outcomes.values()) == {PASS}, results
    assert "test_section" in outcomes
    assert "pytorch_upper_bound" in outcomes
