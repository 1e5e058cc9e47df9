"""Render an untrusted recipe in a child process under memory and CPU limits.

The structural caps (recipe.py: YAML aliases and depth; recipe_jinja.py: `*`, `+`, `~`, `%`,
`**`, recursion) stop the known bombs cheaply; this is the outer wall for whatever they miss: the
render runs in a fresh Python process (started, not forked: rattler is not fork-safe) with an
empty environment, RLIMIT_AS and RLIMIT_CPU set, and a wall-clock deadline. Exhausting either
ends the child, not the worker, and the proposer gets a failed check naming the limit.

The child runs this project's own renderer (jinja2's sandbox, PyYAML's SafeLoader, py-rattler's
version parsing), which reads no environment and cannot abort its parent. No ORM here.
"""

import io
import pickle
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packages_app.adapters.recipe import RecipeParseError
from packages_app.adapters.recipe import RenderedRecipe
from packages_app.adapters.recipe import render_recipe
from packages_app.adapters.recipe_jinja import RecipeRenderError
from packages_app.adapters.recipe_jinja import RenderTarget

MIB = 1024 * 1024
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_ALLOWED_MODULES = frozenset({"packages_app.adapters.recipe", "packages_app.adapters.recipe_jinja"})


@dataclass(frozen=True)
class RenderLimits:
    memory_bytes: int = 1024 * MIB
    cpu_s: int = 20
    wall_s: float = 60.0


def render_recipe_limited(
    text: str, *, filename: str, target: RenderTarget, limits: RenderLimits
) -> RenderedRecipe:
    """render_recipe in a limited child; RecipeRenderError when a limit ends it."""
    request = pickle.dumps((text, filename, target, limits))
    try:
        result = subprocess.run(  # noqa: S603 - this interpreter and module, fixed arguments
            [sys.executable, "-E", "-s", "-m", __name__],
            input=request,
            capture_output=True,
            # Nothing of the worker's environment: the renderer has nothing to read.
            env={},
            cwd=PROJECT_ROOT,
            timeout=limits.wall_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RecipeRenderError(
            f"rendering the recipe took longer than {limits.wall_s:g} s; it was stopped"
        ) from None
    if result.returncode != 0 or not result.stdout:
        raise RecipeRenderError(_death_reason(result.returncode, limits))
    kind, value = _RecipeUnpickler(io.BytesIO(result.stdout)).load()
    if kind == "ok":
        return value
    if kind == "parse":
        raise RecipeParseError(value)
    raise RecipeRenderError(value)


class _RecipeUnpickler(pickle.Unpickler):
    """Only the recipe's own dataclasses come back from the child, never arbitrary objects."""

    def find_class(self, module, name):
        if module in _ALLOWED_MODULES and not name.startswith("_"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a recipe type")


def _death_reason(exitcode: int | None, limits: RenderLimits) -> str:
    # SIGXCPU is what RLIMIT_CPU sends; a failed allocation in native code aborts the child
    # (SIGABRT, SIGSEGV) instead of raising MemoryError.
    if exitcode == -signal.SIGXCPU:
        return f"rendering the recipe used more than {limits.cpu_s} s of CPU; it was stopped"
    return (
        f"rendering the recipe needed more than {limits.memory_bytes // MIB} MB of memory "
        f"or crashed (exit {exitcode}); it was stopped"
    )


def _main() -> None:  # pragma: no cover - runs in the child
    request = sys.stdin.buffer.read()
    text, filename, target, limits = pickle.loads(request)  # noqa: S301 - written by our parent
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
    try:
        result = ("ok", render_recipe(text, filename=filename, target=target))
    except RecipeParseError as exc:
        result = ("parse", str(exc))
    except RecipeRenderError as exc:
        result = ("render", str(exc))
    except MemoryError:
        result = (
            "render",
            f"rendering the recipe needed more than {limits.memory_bytes // MIB} MB of memory",
        )
    except RecursionError:
        result = ("render", "the recipe recurses too deeply")
    sys.stdout.buffer.write(pickle.dumps(result))


if __name__ == "__main__":
    _main()
