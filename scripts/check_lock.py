"""Fail when requirements/test.lock no longer satisfies pyproject.toml (run scripts/lock).

scripts/test installs the lock, then Companion with --no-deps; a dependency added to or
tightened in pyproject.toml without refreshing the lock would otherwise go unnoticed until
an import fails. This checks every direct requirement of `companion[test]` against what
is installed; `pip check` covers the transitive ones.
"""

import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement


def stale_requirements() -> list[str]:
    """Return a line for each requirement of companion[test] the environment does not meet."""
    problems = []
    for line in requires("companion") or []:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate({"extra": "test"}):
            continue
        wanted = f"{req.name}{req.specifier}"
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            problems.append(f"{wanted} is not in the lock")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            problems.append(f"{wanted} but the lock pins {req.name}=={installed}")
    return problems


if __name__ == "__main__":
    problems = stale_requirements()
    for problem in problems:
        print(f"requirements/test.lock is stale: {problem}", file=sys.stderr)
    if problems:
        print("Run scripts/lock and commit requirements/test.lock.", file=sys.stderr)
    sys.exit(1 if problems else 0)
