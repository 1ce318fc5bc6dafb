"""What the benchmark scripts share: a fresh instance, percentiles, process CPU, the host's load."""

import contextlib
import math
import os
import tempfile
from pathlib import Path

import psutil

from companion import create_app
from companion.cli import migrate
from companion.db import connect


@contextlib.contextmanager
def instance(config: dict, folder: str | Path | None = None):
    """A fresh, migrated instance in `folder` (default: a temporary folder, removed after);
    yields (app, a connection to its database)."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="companion-bench-"))
        os.environ["COMPANION_INSTANCE_PATH"] = str(folder)
        app = create_app(config)
        migrate(app)
        db = connect(app.config["DATABASE"])
        stack.callback(db.close)
        yield app, db


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    return sum(psutil.Process(pid).cpu_times()[:2])


def host_load() -> str:
    """The host's 1-minute load average, for figures taken on a shared machine."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
