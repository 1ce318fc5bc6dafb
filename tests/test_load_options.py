"""benchmarks/load.py's documented options: a bad one stops it at once (before minutes of
preparing a database) with a clear message, and a run without bare gunicorn judges no target
on a figure it did not measure."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
load = pytest.importorskip("load")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--servers", "uwsgi"], "'uwsgi': expected gunicorn or granian"),
        (["--bare", "granian,nginx"], "'nginx': expected gunicorn or granian"),
        (["--servers", "granian:2x"], "'granian:2x': expected"),
        (["--servers", ","], "--servers names no server"),
        (["--servers", "granian@/nonexistent/before"], "has no companion package"),
    ],
)
def test_a_bad_server_list_stops_before_any_work(tmp_path, options, message):
    db = tmp_path / "never-made.sqlite3"
    r = subprocess.run(
        [sys.executable, str(BENCHMARKS / "load.py"), "--db", str(db), *options],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not db.exists()


def test_server_specs(tmp_path):
    (tmp_path / "companion").mkdir()  # the "before" side: `git archive ... | tar -x -C`
    specs = load.parse_specs(f"gunicorn,granian:3x2,granian:4@{tmp_path}")
    assert [(s["server"], s["workers"], s["threads"], s["label"]) for s in specs] == [
        ("gunicorn", 2, 1, "gunicorn 2x1"),
        ("granian", 3, 2, "granian 3x2"),
        ("granian", 4, 1, f"granian 4x1 @{tmp_path}"),
    ]
    assert load.parse_specs("") == []


def run(label: str, rps: float) -> dict:
    keys = ["healthz"] if label.startswith("bare") else list(load.LABELS)
    results = {k: {"rps": rps, "p99_us": 40_000, "errors": 0} for k in keys}
    run = {"label": label, "results": results, "memory": {"workers": [80, 80]}}
    if not label.startswith("bare"):
        run |= {"lateness": [0.5], "missing": 0, "held": 0}
        run["memory"]["after_login"] = [110, 110]
    return run


def test_without_bare_gunicorn_its_target_is_not_judged(capsys):
    load.print_summary([run("bare granian 2x1", 5000), run("granian 2x1", 1200)])
    out = capsys.readouterr().out
    assert "nan" not in out
    line = next(x for x in out.splitlines() if "of bare gunicorn's trivial" in x)
    assert line.split()[0] == "n/a" and "not measured: --bare without gunicorn" in line
    load.print_summary([run("bare gunicorn 2x1", 2000), run("granian 2x1", 1200)])
    line = next(x for x in capsys.readouterr().out.splitlines() if "bare gunicorn's" in x)
    assert line.split()[0] == "met" and "60% of 2000" in line
