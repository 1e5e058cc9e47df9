"""The sandboxed Jinja of recipe rendering: the context recipes expect, and nothing more.

A recipe is untrusted text from a web form. Templates run in jinja2's SandboxedEnvironment with
a context that exposes nothing of this server (`environ` is empty; `load_setup_py_data()` and
friends return nothing and say so), and with caps on what could exhaust memory: string and list
repetition, powers, huge format widths and huge integer arguments. No ORM here.
"""

import posixpath
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from jinja2 import ChainableUndefined
from jinja2 import TemplateError
from jinja2 import TemplateSyntaxError
from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.compiler import Frame
from jinja2.compiler import optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing
from rattler import Version
from rattler import VersionSpec
from rattler.exceptions import InvalidVersionError
from rattler.exceptions import InvalidVersionSpecError

MAX_RENDERED_CHARS = 2_000_000
# Largest string or list one expression may build (`+`, `~`, `*`): a recipe's values are short.
MAX_VALUE_CHARS = 1_000_000
# Largest integer argument a template may pass to a call or filter (widths, repeats, ranges).
MAX_TEMPLATE_INT = 100_000
_HUGE_FORMAT_WIDTH = re.compile(r"(%[-+ #0]*(\d{6,}|\*))|(\{[^{}]*:[^{}]*\d{6,}[^{}]*\})")
COMPILER_PACKAGES = {"c": "gcc", "cxx": "gxx", "fortran": "gfortran", "cuda": "cuda-nvcc"}


class RecipeRenderError(Exception):
    """The recipe's templating could not be evaluated (syntax or runtime error)."""


@dataclass(frozen=True)
class RenderTarget:
    """The platform and versions a recipe is rendered for (selectors and Jinja variables)."""

    platform: str = "linux-64"
    python: str = "3.11"
    numpy: str = "2.0"

    def describe(self) -> str:
        return f"{self.platform}, Python {self.python}, CPU variant"


def selector_namespace(target: RenderTarget) -> dict[str, Any]:
    """conda-build's selector variables for the target platform and Python."""
    plat = target.platform
    os_name, _, arch = plat.partition("-")
    py = int("".join(target.python.split(".")[:2]))
    namespace: dict[str, Any] = {
        "linux": os_name == "linux",
        "linux32": plat == "linux-32",
        "linux64": plat == "linux-64",
        "osx": os_name == "osx",
        "win": os_name == "win",
        "win32": plat == "win-32",
        "win64": plat == "win-64",
        "unix": os_name in ("linux", "osx"),
        "x86": plat.endswith(("-32", "-64")),
        "x86_64": plat.endswith("-64"),
        "arm64": arch in ("arm64", "aarch64"),
        "aarch64": arch == "aarch64",
        "ppc64le": arch == "ppc64le",
        "py": py,
        "py3k": py >= 30,
        "py2k": 20 <= py < 30,
        "np": int("".join(target.numpy.split(".")[:2])),
        "build_platform": plat,
        "target_platform": plat,
        # conda-forge variant keys of PyTorch feedstocks: the CPU variant is rendered.
        "cuda_compiler_version": "None",
        "cuda_compiler": "None",
        "nomkl": False,
    }
    return namespace


class _RecordingUndefined(ChainableUndefined):
    """Undefined that remembers which top-level names the recipe used without defining them."""

    __slots__ = ()
    sink: set[str] = set()

    def __init__(self, hint=None, obj=missing, name=None, **kwargs):
        super().__init__(hint=hint, obj=obj, name=name, **kwargs)
        if name and obj is missing:
            self.sink.add(name)


class _CappedCodeGenerator(CodeGenerator):
    """Compiles `a ~ b` to the environment's capped join: the sandbox cannot intercept `~`, and
    `{% set a = a ~ a %}` twenty times doubles a string past any memory without printing it."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.capped_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _CappedSandbox(SandboxedEnvironment):
    """The sandbox plus caps on what can blow up memory: repeats, concatenations (`+`, `~`),
    powers, format widths."""

    code_generator_class = _CappedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def capped_concat(self, parts) -> str:
        pieces = [str(part) for part in parts]
        if sum(len(piece) for piece in pieces) > MAX_VALUE_CHARS:
            raise SecurityError("the recipe builds a string larger than 1 MB")
        return "".join(pieces)

    def call_binop(self, context, operator, left, right):
        if operator == "+" and _sum_too_big(left, right):
            raise SecurityError("the recipe builds a string or list larger than 1 MB")
        if operator == "*" and _repeat_too_big(left, right):
            raise SecurityError("the recipe repeats a string or list too many times")
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("the recipe raises a number to a huge power")
        if operator == "%" and isinstance(left, str) and _HUGE_FORMAT_WIDTH.search(left):
            raise SecurityError("the recipe formats a string with a huge width")
        return super().call_binop(context, operator, left, right)

    def call(self, context, obj, /, *args, **kwargs):
        _check_call_arguments(args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value):
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and _HUGE_FORMAT_WIDTH.search(owner):
            raise SecurityError("the recipe formats a string with a huge width")
        return super().wrap_str_format(value)


def _sum_too_big(left: Any, right: Any) -> bool:
    sized = (str, list, tuple)
    return (
        isinstance(left, sized)
        and isinstance(right, sized)
        and len(left) + len(right) > MAX_VALUE_CHARS
    )


def _repeat_too_big(left: Any, right: Any) -> bool:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            return len(seq) * max(times, 0) > MAX_RENDERED_CHARS
    return False


def _check_call_arguments(args: tuple, kwargs: dict) -> None:
    values = [*args, *kwargs.values()]
    if any(isinstance(v, int) and not isinstance(v, bool) and v > MAX_TEMPLATE_INT for v in values):
        raise SecurityError("the recipe passes a huge number to a function")


def _capped_filter(function):
    def capped(*args, **kwargs):
        _check_call_arguments(args[1:], kwargs)
        if args and isinstance(args[0], str) and _HUGE_FORMAT_WIDTH.search(args[0]):
            raise SecurityError("the recipe formats a string with a huge width")
        return function(*args, **kwargs)

    capped.__name__ = function.__name__
    # Keep jinja's pass_context / pass_environment marker on the wrapper.
    if hasattr(function, "jinja_pass_arg"):
        capped.jinja_pass_arg = function.jinja_pass_arg
    return capped


class RenderState:
    """One render: the sandbox, the Jinja context, and what the recipe did that we could not."""

    def __init__(self, target: RenderTarget):
        self.target = target
        self.undefined: set[str] = set()
        self.warnings: list[str] = []
        self.build_time_pins: dict[str, str] = {}
        undefined_class = type("RecipeUndefined", (_RecordingUndefined,), {"sink": self.undefined})
        self.env = _CappedSandbox(
            undefined=undefined_class, autoescape=False, keep_trailing_newline=True
        )
        self.env.filters = {name: _capped_filter(f) for name, f in self.env.filters.items()}
        self.v1_env = _CappedSandbox(
            undefined=undefined_class,
            autoescape=False,
            variable_start_string="${{",
            variable_end_string="}}",
            block_start_string="\x00{%",
            block_end_string="%}\x00",
            comment_start_string="\x00{#",
            comment_end_string="#}\x00",
        )
        self.v1_env.filters = dict(self.env.filters)
        self.namespace = selector_namespace(target)
        self.context = {**self.namespace, **self._functions()}

    def _functions(self) -> dict[str, Any]:
        target = self.target
        nothing = self._loader_stub
        return {
            "compiler": lambda lang: f"{COMPILER_PACKAGES.get(lang, lang)}_{target.platform}",
            "stdlib": lambda lang: f"sysroot_{target.platform}" if lang == "c" else lang,
            "cdt": lambda name: f"{name}-cos7-x86_64",
            "pin_compatible": self._pin("pin_compatible"),
            "pin_subpackage": self._pin("pin_subpackage"),
            "load_setup_py_data": nothing("load_setup_py_data"),
            "load_file_data": nothing("load_file_data"),
            "load_str_data": nothing("load_str_data"),
            "load_file_regex": nothing("load_file_regex"),
            "match": self._match,
            # Never the server's environment: a recipe must not read this process's secrets.
            "environ": {},
            "env": SimpleNamespace(get=lambda name, default=None: default, exists=lambda n: False),
            "os": SimpleNamespace(environ={}, sep="/", path=SimpleNamespace(join=posixpath.join)),
            "PYTHON": "python",
            "PY_VER": target.python,
            "python": target.python,
            "NPY_VER": target.numpy,
            "numpy": target.numpy,
            "python_min": "3.10",
            "RECIPE_DIR": "$RECIPE_DIR",
            "SRC_DIR": "$SRC_DIR",
        }

    def _pin(self, function: str):
        def pin(name, *args, lower_bound=None, upper_bound=None, **kwargs):
            options = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
            self.build_time_pins[str(name)] = f"{function}({options})" if options else function
            if lower_bound and upper_bound:
                return f"{name} >={lower_bound},<{upper_bound}"
            return str(name)

        return pin

    def _loader_stub(self, function: str):
        def load(*args, **kwargs):
            self.warnings.append(
                f"{function}() needs the source tree, which pre-checks do not download; "
                "values taken from it are empty"
            )
            return {}

        return load

    def _match(self, value, spec) -> bool:
        try:
            return VersionSpec(str(spec)).matches(Version(str(value)))
        except (InvalidVersionError, InvalidVersionSpecError, TypeError):
            self.warnings.append(f"match({value!r}, {spec!r}) could not be evaluated")
            return False

    def render_template(self, text: str) -> str:
        try:
            template = self.env.from_string(text)
            pieces: list[str] = []
            size = 0
            for piece in template.generate(self.context):
                size += len(piece)
                if size > MAX_RENDERED_CHARS:
                    raise RecipeRenderError("the rendered recipe is larger than 2 MB")
                pieces.append(piece)
        except TemplateSyntaxError as exc:
            raise RecipeRenderError(
                f"Jinja syntax error on line {exc.lineno}: {exc.message}"
            ) from exc
        except (TemplateError, SecurityError) as exc:
            raise RecipeRenderError(f"Jinja error: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise RecipeRenderError(f"Jinja error: {type(exc).__name__}: {exc}") from exc
        except RecursionError as exc:
            raise RecipeRenderError("Jinja error: the recipe recurses too deeply") from exc
        except MemoryError as exc:
            raise RecipeRenderError("Jinja error: the recipe needs too much memory") from exc
        return "".join(pieces)

    def render_v1_string(self, text: str, variables: dict[str, Any]) -> Any:
        if "${{" not in text:
            return text
        try:
            rendered = self.v1_env.from_string(text).render({**self.context, **variables})
        except TemplateSyntaxError as exc:
            raise RecipeRenderError(f"template error in {text!r}: {exc.message}") from exc
        except (TemplateError, SecurityError, TypeError, ValueError, ArithmeticError) as exc:
            raise RecipeRenderError(f"template error in {text!r}: {exc}") from exc
        except RecursionError as exc:
            raise RecipeRenderError(f"template error in {text!r}: recurses too deeply") from exc
        return rendered

    def evaluate(self, expression: str, variables: dict[str, Any] | None = None) -> bool:
        """A selector or `if:` condition, evaluated by the sandbox; errors become warnings."""
        try:
            compiled = self.env.compile_expression(expression, undefined_to_none=False)
            return bool(compiled(**{**self.context, **(variables or {})}))
        except (TemplateError, SecurityError, TypeError, ValueError, ArithmeticError) as exc:
            self.warnings.append(
                f"selector [{expression}] could not be evaluated ({exc}); treated as false"
            )
            return False
