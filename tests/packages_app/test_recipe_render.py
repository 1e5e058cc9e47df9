"""Rendering recipes as conda-build reads them: Jinja, selectors, YAML, outputs, the sandbox."""

import os
from pathlib import Path

import pytest

from packages_app.adapters.recipe import RecipeParseError
from packages_app.adapters.recipe import RecipeRenderError
from packages_app.adapters.recipe import RenderTarget
from packages_app.adapters.recipe import render_recipe

RECIPES = Path(__file__).parent / "recipes"


def _recipe(name: str):
    filename = "recipe.yaml" if name.endswith("recipe.yaml") else "meta.yaml"
    return render_recipe((RECIPES / name).read_text(), filename=filename)


def _meta(text: str, **target):
    return render_recipe(text, filename="meta.yaml", target=RenderTarget(**target))


def test_render_conda_forge_recipe_applies_jinja_and_selectors():
    recipe = _recipe("kornia.meta.yaml")
    assert (recipe.name, recipe.version, recipe.license) == ("kornia", "0.7.3", "Apache-2.0")
    (output,) = recipe.outputs
    # kornia-rs is `# [linux]` (kept for linux-64), pywin32 `# [win]` (dropped).
    assert output.run == (
        "python >=3.10",
        "packaging",
        "pytorch >=1.9.1,<2.6",
        "kornia-rs >=0.1.0",
    )
    assert output.tests.imports == ("kornia", "kornia.augmentation")
    assert output.tests.commands == 1
    # `skip: true  # [py<38]` is false for Python 3.11, so the line is gone.
    assert recipe.skipped is False
    assert recipe.undefined == ()
    assert recipe.warnings == ()


def test_render_same_recipe_for_windows_swaps_the_selected_lines():
    text = (RECIPES / "kornia.meta.yaml").read_text()
    (output,) = _meta(text, platform="win-64").outputs
    assert "pywin32" in output.run
    assert "kornia-rs >=0.1.0" not in output.run


def test_render_python_selector_compares_as_number():
    text = "package:\n  name: a\n  version: '1'\nbuild:\n  skip: true  # [py<38]\n"
    assert _meta(text, python="3.7").skipped is True
    assert _meta(text, python="3.11").skipped is False


def test_render_multiple_outputs_each_with_requirements_and_tests():
    recipe = _recipe("torchvision-split.meta.yaml")
    assert recipe.has_outputs_section
    assert [o.name for o in recipe.outputs] == [
        "libtorchvision",
        "torchvision",
        "torchvision-tests",
    ]
    lib, py, tests = recipe.outputs
    # `test -f ...dylib  # [osx]` is dropped for linux-64.
    assert lib.tests.commands == 1
    assert py.tests.imports == ("torchvision", "torchvision.ops")
    assert not tests.tests.runnable
    # pin_subpackage/pin_compatible render to the bare name and remember how they pin.
    assert "libtorchvision" in py.run
    assert recipe.build_time_pins["libtorch"] == "pin_compatible(max_pin='x.x')"
    assert recipe.build_time_pins["libtorchvision"] == "pin_subpackage(exact=True)"


def test_render_output_named_like_the_package_inherits_top_level_tests_and_run():
    text = """
package:
  name: foo
  version: "1.0"
requirements:
  run:
    - pytorch >=2.4,<2.6
test:
  imports:
    - foo
outputs:
  - name: foo
  - name: foo-extras
    requirements:
      - foo
"""
    recipe = _meta(text)
    foo, extras = recipe.outputs
    assert foo.is_top_level
    assert foo.run == ("pytorch >=2.4,<2.6",)
    assert foo.tests.imports == ("foo",)
    assert extras.run == ("foo",)
    assert not extras.is_top_level


def test_render_v1_recipe_context_interpolation_and_if_then_else():
    recipe = _recipe("torchmetrics.recipe.yaml")
    assert (recipe.format, recipe.name, recipe.version) == ("recipe.yaml", "torchmetrics", "1.4.0")
    (output,) = recipe.outputs
    assert output.run == (
        "python >=3.9",
        "numpy >1.20.0",
        "packaging >17.1",
        "pytorch >=2.0,<2.6",
    )
    assert output.tests.imports == ("torchmetrics",)
    assert output.tests.commands == 1


def test_render_v1_match_uses_rattler_version_specs():
    text = """
package: {name: a, version: "1"}
requirements:
  run:
    - if: match(python, "<3.10")
      then: old-python-shim
      else: new-python-only
"""
    run_for = {
        py: render_recipe(text, filename="recipe.yaml", target=RenderTarget(python=py))
        .outputs[0]
        .run
        for py in ("3.9", "3.12")
    }
    assert run_for == {"3.9": ("old-python-shim",), "3.12": ("new-python-only",)}


def test_render_versions_stay_text_not_floats():
    recipe = _meta("package:\n  name: a\n  version: 1.10\n")
    assert recipe.version == "1.10"


def test_render_load_setup_py_data_fails_gracefully_with_a_warning():
    text = """{% set data = load_setup_py_data() %}
package:
  name: torch-thing
  version: {{ data.get('version') }}
"""
    recipe = _meta(text)
    assert recipe.name == "torch-thing"
    assert any("load_setup_py_data()" in w for w in recipe.warnings)


def test_render_undefined_variables_are_listed_not_fatal():
    text = (
        "package:\n  name: a\n  version: '1'\nrequirements:\n  run:\n"
        "    - libblas * *{{ blas_impl }}\n    - mpich  # [mpi == 'mpich']\n"
    )
    recipe = _meta(text)
    assert set(recipe.undefined) == {"blas_impl", "mpi"}
    assert recipe.outputs[0].run == ("libblas * *",)


def test_render_compiler_stdlib_and_environ_give_placeholders(monkeypatch):
    monkeypatch.setenv("SUPER_SECRET_TOKEN", "do-not-leak")
    text = """
package:
  name: a
  version: "{{ environ.get('SUPER_SECRET_TOKEN', '0.1') }}{{ os.environ.get('HOME', '') }}"
requirements:
  build:
    - {{ compiler('cxx') }}
    - {{ stdlib('c') }}
"""
    recipe = _meta(text)
    # The recipe sees an empty environment, never this server's.
    assert recipe.version == "0.1"
    assert os.environ["SUPER_SECRET_TOKEN"] == "do-not-leak"


def test_render_unknown_selector_function_is_a_warning_and_drops_the_line():
    text = (
        "package:\n  name: a\n  version: '1'\n"
        "requirements:\n  run:\n    - x  # [__import__('os')]\n"
    )
    recipe = _meta(text)
    assert recipe.outputs[0].run == ()
    assert any("could not be evaluated" in w for w in recipe.warnings)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ 'x' * 100000000 }}",
        "{{ '%99999999s' % 'x' }}",
        "{{ '{:99999999}'.format(1) }}",
        "{{ 'x'.center(1000000000) }}",
        "{{ 'x'|center(1000000000) }}",
        "{{ 2 ** 100000000 }}",
    ],
)
def test_render_sandbox_refuses_escapes_and_memory_bombs(template):
    with pytest.raises(RecipeRenderError):
        _meta(template + "\npackage: {name: a}\n")


def test_render_jinja_syntax_error_names_the_line():
    with pytest.raises(RecipeRenderError, match="line 5"):
        _recipe("broken-jinja.meta.yaml")


def test_render_yaml_that_does_not_parse_names_the_line():
    with pytest.raises(RecipeParseError, match="not valid YAML on line 8"):
        _recipe("broken-yaml.meta.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "not a YAML mapping"),
        ("about:\n  license: MIT\n", "no package name"),
        ("package: [a, b]\n", "package must be a mapping"),
        ("package:\n  name: a\noutputs: {name: b}\n", "outputs: must be a list"),
        ("package:\n  name: a\noutputs:\n  - requirements: {}\n", "has no name"),
    ],
)
def test_render_recipe_of_the_wrong_shape_is_a_parse_error(text, message):
    with pytest.raises(RecipeParseError, match=message):
        _meta(text)


@pytest.mark.parametrize(
    ("skip", "platform", "skipped"),
    [
        ("[win]", "win-64", True),
        ("[win]", "linux-64", False),
        ('["osx and arm64", win]', "osx-arm64", True),
        ('["osx and arm64"]', "osx-64", False),
        ("true", "linux-64", True),
        ("win", "win-64", True),
    ],
)
def test_recipe_v1_build_skip_is_evaluated_for_the_target(skip, platform, skipped):
    text = f"package:\n  name: a\n  version: '1'\nbuild:\n  skip: {skip}\n"
    recipe = render_recipe(text, filename="recipe.yaml", target=RenderTarget(platform=platform))
    assert recipe.skipped is skipped
