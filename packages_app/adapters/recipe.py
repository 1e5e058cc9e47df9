"""Render a conda recipe the way conda-build reads it, safely, and normalise what checks need.

meta.yaml (conda-build): Jinja first, then line selectors (`# [win]`), then YAML.
recipe.yaml (rattler-build, "v1"): YAML first, then the `context:` variables, `${{ ... }}`
interpolation and `if:/then:/else:` list items.

Templating runs in the sandbox of recipe_jinja; YAML is read with a SafeLoader. What cannot be
evaluated becomes a warning, never a crash. No ORM here.
"""

import re
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import yaml

from packages_app.adapters.recipe_jinja import RecipeRenderError
from packages_app.adapters.recipe_jinja import RenderState
from packages_app.adapters.recipe_jinja import RenderTarget

__all__ = [
    "RecipeOutput",
    "RecipeParseError",
    "RecipeRenderError",
    "RecipeTests",
    "RenderTarget",
    "RenderedRecipe",
    "render_recipe",
    "select_lines",
]

# `<content>  # [selector]` at the end of a line, as conda-build writes them.
_SELECTOR_LINE = re.compile(r"^(?P<content>.*?)\s*#\s*\[(?P<expr>[^\[\]]+)\]\s*(#.*)?$")


class RecipeParseError(Exception):
    """The rendered recipe is not YAML, or not shaped like a recipe."""


@dataclass(frozen=True)
class RecipeTests:
    """What a package's test section runs; `requires`/`files` alone run nothing."""

    imports: tuple[str, ...] = ()
    commands: int = 0
    scripts: tuple[str, ...] = ()
    other: tuple[str, ...] = ()

    @property
    def runnable(self) -> bool:
        return bool(self.imports or self.commands or self.scripts)

    def describe(self) -> str:
        parts = []
        if self.imports:
            parts.append("imports " + ", ".join(self.imports[:5]))
        if self.commands:
            parts.append(f"{self.commands} command{'s' if self.commands != 1 else ''}")
        if self.scripts:
            parts.append("script " + ", ".join(self.scripts))
        parts.extend(self.other)
        return "; ".join(parts) or "nothing"


@dataclass(frozen=True)
class RecipeOutput:
    """One package the recipe builds, with its run requirements and tests."""

    name: str
    run: tuple[str, ...]
    run_constrained: tuple[str, ...]
    tests: RecipeTests
    # The recipe's own package: conda-build runs run_test.* files next to the recipe for it.
    is_top_level: bool
    # build: noarch: of the output (or of the recipe): "python", "generic" or "".
    noarch: str = ""


@dataclass(frozen=True)
class RenderedRecipe:
    """A rendered, parsed recipe reduced to what the pre-checks read."""

    format: str
    name: str
    version: str
    license: str
    license_file: bool
    outputs: tuple[RecipeOutput, ...]
    has_outputs_section: bool
    skipped: bool
    target: RenderTarget
    # name -> how its bound is set at build time (pin_compatible / pin_subpackage calls).
    build_time_pins: dict[str, str] = field(default_factory=dict)
    undefined: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def output_names(self) -> set[str]:
        return {o.name for o in self.outputs}


def render_recipe(
    text: str, *, filename: str, target: RenderTarget | None = None
) -> RenderedRecipe:
    """Render and parse a recipe; `filename` (meta.yaml or recipe.yaml) selects the format."""
    target = target or RenderTarget()
    state = RenderState(target)
    if filename.endswith("recipe.yaml"):
        data = _parse_yaml(text)
        data = _resolve_v1(data, state)
        return _normalise(data, state, fmt="recipe.yaml")
    rendered = state.render_template(text)
    selected = select_lines(rendered, state)
    return _normalise(_parse_yaml(selected), state, fmt="meta.yaml")


def select_lines(text: str, state: RenderState) -> str:
    """Apply conda-build line selectors: keep a line whose `# [expr]` is true, drop the others."""
    kept = []
    for line in text.splitlines():
        match = _SELECTOR_LINE.match(line)
        if match is None or not match.group("content").strip():
            kept.append(line)
            continue
        if state.evaluate(match.group("expr").strip()):
            kept.append(match.group("content"))
    return "\n".join(kept) + "\n"


class _RecipeLoader(yaml.SafeLoader):
    """safe_load keeping numbers as text: `version: 1.10` must not become 1.1 (as conda-build)."""


_RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith((":int", ":float"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# A recipe is a few hundred lines: its YAML, with every alias expanded, is far below this. The
# "billion laughs" (aliases of aliases) stays a few hundred bytes and expands past any memory.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 100


def _parse_yaml(text: str) -> dict:
    loader = _RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_yaml_size(node)
        data = loader.construct_document(node) if node is not None else None
    except RecursionError as exc:
        raise RecipeParseError("the YAML is nested too deeply") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" on line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeParseError(f"not valid YAML{where}: {problem}") from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise RecipeParseError("the recipe is not a YAML mapping (package:, requirements:, ...)")
    return data


def _check_yaml_size(root: yaml.Node) -> None:
    """Refuse a document whose nodes, with aliases expanded, exceed MAX_YAML_NODES or nest
    deeper than MAX_YAML_DEPTH. Sizes are counted once per node (memoised), so a bomb is
    measured in linear time without being expanded."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_YAML_DEPTH:
            raise RecipeParseError(f"the YAML nests deeper than {MAX_YAML_DEPTH} levels")
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a node that contains itself counts once
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        if total > MAX_YAML_NODES:
            raise RecipeParseError(
                f"the YAML expands to more than {MAX_YAML_NODES:,} values (aliases of aliases?)"
            )
        sizes[id(node)] = total
        return total

    size(root, 0)


def _resolve_v1(data: dict, state: RenderState) -> dict:
    variables: dict[str, Any] = {}
    context = data.get("context") or {}
    if not isinstance(context, dict):
        raise RecipeParseError("context: must be a mapping of variables")
    for key, value in context.items():
        variables[str(key)] = (
            state.render_v1_string(value, variables) if isinstance(value, str) else value
        )

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            items: list[Any] = []
            for item in node:
                if isinstance(item, dict) and "if" in item and "then" in item:
                    branch = item["then"] if state.evaluate(str(item["if"]), variables) else None
                    branch = item.get("else") if branch is None and "else" in item else branch
                    if branch is None:
                        continue
                    chosen = resolve(branch)
                    items.extend(chosen if isinstance(chosen, list) else [chosen])
                else:
                    items.append(resolve(item))
            return items
        if isinstance(node, str):
            return state.render_v1_string(node, variables)
        return node

    return resolve({k: v for k, v in data.items() if k != "context"})


def _normalise(data: dict, state: RenderState, *, fmt: str) -> RenderedRecipe:
    package = _mapping(data.get("package") or data.get("recipe"), "package")
    name = _text(package.get("name"))
    version = _text(package.get("version"))
    raw_outputs = data.get("outputs") or []
    if not isinstance(raw_outputs, list):
        raise RecipeParseError("outputs: must be a list")
    if not name and not raw_outputs:
        raise RecipeParseError("the recipe has no package name (package: name:)")
    about = _mapping(data.get("about"), "about")
    top_requirements = _requirements(data.get("requirements"))
    top_tests = _tests(data, fmt=fmt)
    top_noarch = _text(_mapping(data.get("build"), "build").get("noarch"))
    outputs = []
    for raw in raw_outputs:
        output = _mapping(raw, "outputs entry")
        output_name = _text(
            output.get("name") or _mapping(output.get("package"), "package").get("name")
        )
        if not output_name:
            raise RecipeParseError("an entry of outputs: has no name")
        run, constrained = _requirements(output.get("requirements"))
        tests = _tests(output, fmt=fmt)
        if output_name == name:
            # conda-build: top-level requirements and tests belong to the output of the same name.
            run, constrained = run or top_requirements[0], constrained or top_requirements[1]
            tests = tests if tests.runnable or tests.other else top_tests
        outputs.append(
            RecipeOutput(
                name=output_name,
                run=run,
                run_constrained=constrained,
                tests=tests,
                is_top_level=output_name == name,
                noarch=_text(_mapping(output.get("build"), "build").get("noarch")) or top_noarch,
            )
        )
    if not outputs:
        outputs.append(
            RecipeOutput(
                name=name,
                run=top_requirements[0],
                run_constrained=top_requirements[1],
                tests=top_tests,
                is_top_level=True,
                noarch=top_noarch,
            )
        )
    build = _mapping(data.get("build"), "build")
    skipped = _skipped(build.get("skip"), state, fmt=fmt)
    return RenderedRecipe(
        format=fmt,
        name=name or outputs[0].name,
        version=version,
        license=_text(about.get("license")),
        license_file=bool(about.get("license_file")),
        outputs=tuple(outputs),
        has_outputs_section=bool(raw_outputs),
        skipped=skipped,
        target=state.target,
        build_time_pins=dict(state.build_time_pins),
        undefined=tuple(sorted(state.undefined - set(state.context))),
        warnings=tuple(dict.fromkeys(state.warnings)),
    )


def _skipped(skip: Any, state: RenderState, *, fmt: str) -> bool:
    """`build: skip:`. meta.yaml: a boolean after its selectors were applied. recipe.yaml (v1):
    a boolean, an expression, or a list of expressions skipped when any is true (`skip: [win]`
    skips win-64), evaluated for the render target as `if:` conditions are."""
    entries = skip if isinstance(skip, list) else [skip]
    for entry in entries:
        if entry is True:
            return True
        expression = entry.strip() if isinstance(entry, str) else ""
        if fmt == "recipe.yaml" and expression and state.evaluate(expression):
            return True
    return False


def _mapping(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeParseError(f"{what} must be a mapping, not {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _specs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(" ".join(str(item).split()) for item in items if item not in (None, ""))


def _requirements(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if isinstance(value, list):  # an output's shorthand: a list means run requirements
        return _specs(value), ()
    requirements = _mapping(value, "requirements")
    constrained = requirements.get("run_constrained") or requirements.get("run_constraints")
    return _specs(requirements.get("run")), _specs(constrained)


def _tests(section: dict, *, fmt: str) -> RecipeTests:
    if fmt == "recipe.yaml":
        return _v1_tests(section.get("tests"))
    test = _mapping(section.get("test"), "test")
    script = test.get("script")
    return RecipeTests(
        imports=_specs(test.get("imports")),
        commands=len(_specs(test.get("commands"))),
        scripts=_specs(script) if isinstance(script, str | list) else (),
    )


def _v1_tests(value: Any) -> RecipeTests:
    if value is None:
        return RecipeTests()
    if not isinstance(value, list):
        raise RecipeParseError("tests: must be a list")
    imports: list[str] = []
    commands = 0
    other: list[str] = []
    for entry in value:
        entry = _mapping(entry, "tests entry")
        if "python" in entry:
            imports.extend(_specs(_mapping(entry["python"], "python test").get("imports")))
        if "script" in entry:
            script = entry["script"]
            commands += len(_specs(script)) if isinstance(script, str | list) else 1
        for kind in ("package_contents", "downstream", "r", "perl", "ruby"):
            if kind in entry:
                other.append(kind.replace("_", " "))
    return RecipeTests(imports=tuple(imports), commands=commands, other=tuple(other))
