"""Every package the app imports is declared in pyproject.toml (issue 11: "Declare every
package the code imports"), not merely installed because something else pulls it in."""

import ast
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

APP = Path(__file__).resolve().parent.parent / "companion"


def imported_top_level_modules() -> set[str]:
    found = set()
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "companion"}


def test_every_imported_package_is_a_declared_runtime_dependency():
    declared = {
        canonicalize_name(Requirement(line).name)
        for line in requires("companion") or []
        if not Requirement(line).marker  # runtime, not the test extra
    }
    providers = packages_distributions()
    undeclared = {
        module: providers.get(module)
        for module in imported_top_level_modules()
        if not {canonicalize_name(d) for d in providers.get(module, [module])} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_runtime_dependencies_are_capped_below_their_next_major_version():
    uncapped = [
        line
        for line in requires("companion") or []
        if not Requirement(line).marker
        and Requirement(line).name != "tzdata"  # time-zone data: always the newest
        and not any(spec.operator == "<" for spec in Requirement(line).specifier)
    ]
    assert not uncapped
