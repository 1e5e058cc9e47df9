"""No import circle anywhere, module by module, across both apps and the site package; every RQ
entry point that a service names by its dotted path exists.

pyproject.toml's import-linter contracts (lint-imports, run by `make test`) check the layers
and the circles between siblings of one package; a circle that runs through both apps (say
packages_app.services.reviews -> testing_app.services.notices -> ... -> reviews) is no circle
between siblings, so this test reads the same import graph (grimp, import-linter's own) and
looks for any strongly connected group of modules. Types-only imports (TYPE_CHECKING) do not
count, as in the contracts.
"""

import importlib
import pkgutil
import re
import sys
from pathlib import Path

import grimp
from django.utils.module_loading import import_string

import packages_app.services
import testing_app.services

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("packages_app", "testing_app", "distro_site")
ENTRY_POINT = re.compile(r"(packages_app|testing_app)\.jobs\.rq_\w+")


def import_circles(graph) -> list[list[str]]:
    """Every group of two or more modules that import one another (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(root: str) -> None:
        # Iterative, so that a deep chain of imports cannot exhaust Python's recursion limit.
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = lowlink[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            step = next(imported, None)
            if step is not None:
                if step not in index:
                    index[step] = lowlink[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph.find_modules_directly_imported_by(step)))))
                elif step in on_stack:
                    lowlink[module] = min(lowlink[module], index[step])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[module])
            if lowlink[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    circles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return circles


def test_no_module_imports_itself_through_others(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(ROOT), *sys.path])
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    assert import_circles(graph) == []


def test_the_search_finds_a_circle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.one", "a.two", "a.three", "a.four"):
        graph.add_module(module)
    graph.add_import(importer="a.one", imported="a.two")
    graph.add_import(importer="a.two", imported="a.three")
    graph.add_import(importer="a.three", imported="a.one")
    graph.add_import(importer="a.four", imported="a.one")
    assert import_circles(graph) == [["a.one", "a.three", "a.two"]]


def test_every_entry_point_a_service_names_exists():
    """Services name RQ entry points by dotted path instead of importing jobs.py; a misspelt
    path would only fail on a worker, so each one is resolved here."""
    named = {}
    for package in (packages_app.services, testing_app.services):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for attribute, value in vars(module).items():
                if isinstance(value, str) and ENTRY_POINT.fullmatch(value):
                    named[f"{info.name}.{attribute}"] = value
    assert len(named) >= 9  # dispatch, installability, promotions, prechecks, emails, notices...
    for constant, path in named.items():
        function = import_string(path)
        assert callable(function), constant
        assert function.__module__ in ("packages_app.jobs", "testing_app.jobs"), constant
