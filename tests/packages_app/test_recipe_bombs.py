"""No bombs: hostile recipes submitted through /propose/ end as a failed pre-check with a clear
reason, never as a dead worker or a process asking the kernel for gigabytes.

The YAML and Jinja bombs are the two of the report (a 410-byte "billion laughs" and a 451-byte
`{% set a = a ~ a %}` chain), and their `+`, recursion and nesting cousins. The limited child
process (adapters/recipe_limits.py) is shown catching what the structural caps do not see: a
memory hog built from small allowed steps and a CPU spin.
"""

import pytest

from packages_app.adapters.recipe import RecipeParseError
from packages_app.adapters.recipe import render_recipe
from packages_app.adapters.recipe_jinja import RecipeRenderError
from packages_app.adapters.recipe_jinja import RenderTarget
from packages_app.adapters.recipe_limits import RenderLimits
from packages_app.adapters.recipe_limits import render_recipe_limited
from packages_app.models import Proposal
from packages_app.services.proposals import submit_proposal
from tests.packages_app.proposal_helpers import RecipeServer
from tests.packages_app.proposal_helpers import drain_default_queue
from tests.packages_app.proposal_helpers import proposal_input

MIB = 1024 * 1024
# 9 levels of 9 aliases: 9**9 (387 million) strings once expanded.
BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8)
    )
    + "package: {name: kornia, version: '1.0'}\n"
)
# Twenty doublings of a 40-character string: 40 MB; thirty: 40 GB.
CONCAT_BOMB = (
    '{% set a = "0123456789012345678901234567890123456789" %}'
    + "{% set a = a ~ a %}" * 30
    + "package: {name: kornia, version: '1.0'}\n"
)
PLUS_BOMB = CONCAT_BOMB.replace("a ~ a", "a + a")
LIST_PLUS_BOMB = (
    "{% set a = [0, 1, 2, 3, 4, 5, 6, 7] %}"
    + "{% set a = a + a %}" * 30
    + "package: {name: kornia, version: '1.0'}\n"
)
RECURSION = "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}\npackage: {name: kornia}\n"
DEEP_YAML = "package: {name: kornia}\nx: " + "[" * 5000 + "]" * 5000 + "\n"
# Each step is under every structural cap; together they want 90 GB.
MEMORY_HOG = (
    "{% set ns = namespace(items=[]) %}{% for i in range(100000) %}"
    "{% set ns.items = ns.items + ['x' * 900000] %}{% endfor %}"
    "package: {name: kornia, version: '1.0'}\n"
)
CPU_SPIN = (
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    "package: {name: kornia, version: '1.0'}\n"
)


def test_the_bombs_are_as_small_as_in_the_report():
    assert len(BILLION_LAUGHS.encode()) < 450
    assert len(CONCAT_BOMB.encode()) < 700


def test_yaml_billion_laughs_is_refused_before_it_expands():
    with pytest.raises(RecipeParseError, match="expands to more than 100,000 values"):
        render_recipe(BILLION_LAUGHS, filename="meta.yaml")
    with pytest.raises(RecipeParseError, match="expands to more than"):
        render_recipe(BILLION_LAUGHS, filename="recipe.yaml")


def test_ordinary_anchors_and_aliases_still_work():
    text = (
        "package: {name: kornia, version: '1.0'}\n"
        "requirements:\n  host: &deps\n    - python\n    - pytorch >=2.4,<2.6\n  run: *deps\n"
    )
    recipe = render_recipe(text, filename="meta.yaml")
    assert recipe.outputs[0].run == ("python", "pytorch >=2.4,<2.6")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CONCAT_BOMB, "builds a string larger than 1 MB"),
        (PLUS_BOMB, "builds a string or list larger than 1 MB"),
        (LIST_PLUS_BOMB, "builds a string or list larger than 1 MB"),
        (RECURSION, "recurses too deeply"),
    ],
)
def test_jinja_bombs_are_capped_for_every_operator(text, message):
    with pytest.raises(RecipeRenderError, match=message):
        render_recipe(text, filename="meta.yaml")


def test_v1_recipes_are_capped_too():
    text = (
        "context:\n  a: '0123456789'\n"
        + "".join(
            f"  a{i}: ${{{{ a{i - 1 if i else ''} ~ a{i - 1 if i else ''} }}}}\n" for i in range(30)
        )
        + "package: {name: kornia, version: '1.0'}\n"
    )
    with pytest.raises(RecipeRenderError, match="larger than 1 MB"):
        render_recipe(text, filename="recipe.yaml")


def test_ordinary_concatenation_still_renders():
    text = '{% set v = "2." ~ 4 %}package: {name: kornia, version: "{{ v + ".1" }}"}\n'
    assert render_recipe(text, filename="meta.yaml").version == "2.4.1"


def test_deep_yaml_nesting_is_a_parse_error():
    with pytest.raises(RecipeParseError, match="nest"):
        render_recipe(DEEP_YAML, filename="meta.yaml")


def test_the_limited_child_stops_a_memory_hog_the_caps_do_not_see():
    with pytest.raises(RecipeRenderError, match="needs too much memory|more than 256 MB"):
        render_recipe_limited(
            MEMORY_HOG,
            filename="meta.yaml",
            target=RenderTarget(),
            limits=RenderLimits(memory_bytes=256 * MIB),
        )


def test_the_limited_child_stops_a_cpu_spin():
    with pytest.raises(RecipeRenderError, match="more than 1 s of CPU"):
        render_recipe_limited(
            CPU_SPIN, filename="meta.yaml", target=RenderTarget(), limits=RenderLimits(cpu_s=1)
        )


def test_the_limited_child_renders_like_the_renderer_and_sees_no_environment(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "child-must-not-see-this-0123")
    text = (
        "context:\n  v: '1.0'\n"
        "package: {name: kornia, version: '${{ v }}'}\n"
        'about: {summary: \'${{ env.get("SECRET_KEY", default="none") }}\'}\n'
    )
    limited = render_recipe_limited(
        text, filename="recipe.yaml", target=RenderTarget(), limits=RenderLimits()
    )
    assert limited == render_recipe(text, filename="recipe.yaml")
    assert "child-must-not-see-this" not in repr(limited)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("bomb", "reason"),
    [
        (BILLION_LAUGHS, "expands to more than"),
        (CONCAT_BOMB, "larger than 1 MB"),
        (MEMORY_HOG, "memory"),
    ],
)
def test_a_proposed_bomb_is_a_failed_precheck_not_a_dead_worker(
    bomb, reason, settings, django_capture_on_commit_callbacks
):
    settings.RECIPE_FETCH_ALLOW_PRIVATE = True  # the recipe server is on 127.0.0.1
    settings.RECIPE_RENDER_MEMORY_MB = 256
    with RecipeServer() as server:
        server.files["/bomb/meta.yaml"] = bomb
        with django_capture_on_commit_callbacks(execute=True):
            proposal, _token = submit_proposal(
                data=proposal_input(recipe_url=server.url + "/bomb/meta.yaml"),
                client_fingerprint="fp-bomb",
                site_url="http://testserver/",
            )
        drain_default_queue()  # a real RQ worker runs the pre-check job
    proposal = Proposal.objects.get(pk=proposal.pk)
    results = {r["check"]: r for r in proposal.precheck_results}
    assert results["recipe_fetch"]["outcome"] == "pass"
    assert results["recipe_render"]["outcome"] == "fail"
    assert reason in results["recipe_render"]["detail"]
