"""Worker CPU per request, in-process: the app's own cost, before and after a change, in one run.

    .venv/bin/python benchmarks/percall.py [--db PATH] [--src . /tmp/before] [--routes ...]
                                           [--batches 30] [--requests 50] [--profile FILE]

One child process per `--src` folder (its `companion` package runs: `.` is this tree; `git archive
<commit> companion | tar -x -C /tmp/before` makes a "before") over its own migrated copy of `--db`
(scale.py's database, generated at `--scale` when missing), with clients and practitioners signed
in through the API. Then, batch after batch, the sides take turns (a busy moment of the shared host
falls on all of them): each times `--requests` calls of a route through Flask's test client in
process CPU. It prints ms of CPU a request, the minimum (noise only ever adds) and the median of
the batches. No HTTP server: its share is the same on every side. benchmarks/README.md has figures.
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
ROUTES = ("healthz", "home", "aftercare", "flags", "checkin")


def people(path: str, n: int) -> tuple[list[int], dict[int, str]]:
    """Clients with a session in the last 21 days, and their clinics' first practitioners."""
    since = (datetime.now(UTC) - timedelta(days=21)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with closing(sqlite3.connect(path)) as conn:
        found = conn.execute(
            "SELECT s.client_id, c.clinic_id FROM treatment_sessions s JOIN clients c"
            " ON c.id = s.client_id WHERE s.performed_at >= ? GROUP BY s.client_id"
            " ORDER BY s.client_id LIMIT ?",
            (since, n),
        ).fetchall()
        sql = "SELECT email FROM practitioners WHERE clinic_id = ? AND active = 1 ORDER BY id"
        return found, {k: conn.execute(sql, (k,)).fetchone()[0] for _, k in found}


def child(args) -> None:
    """Measure this interpreter's `companion` (the --src folder is first on sys.path)."""
    import scale

    from companion import create_app
    from companion.cli import migrate

    work = Path(tempfile.mkdtemp(prefix="percall-"))
    path = str(work / "companion.sqlite3")
    with closing(sqlite3.connect(args.db)) as src, closing(sqlite3.connect(path)) as dst:
        src.backup(dst)
    os.environ["COMPANION_INSTANCE_PATH"] = str(work)
    app = create_app({"DATABASE": path, "CHECKIN_RATE_PER_HOUR": 10**9})
    migrate(app)  # the copy to this side's schema
    clients, emails = people(path, args.people)
    prac = {}
    for clinic_id, email in emails.items():
        prac[clinic_id] = app.test_client()
        body = {"email": email, "password": scale.PASSWORD}
        assert prac[clinic_id].post("/api/auth/login", json=body).status_code == 200
    phones = []
    for client_id, clinic_id in clients:
        token = prac[clinic_id].post(f"/api/clients/{client_id}/invites", json={}).json["token"]
        phone = app.test_client()
        assert phone.post(f"/api/invites/{token}/redeem", json={}).status_code < 300
        phones.append(phone)
    anon, pracs = app.test_client(), list(prac.values())

    def checkin(i: int):
        body = {
            "id": str(uuid.uuid4()),
            "taken_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **{"redness": i % 3, "swelling": i % 2, "pain": i % 3},
        }
        return phones[i % len(phones)].post("/api/checkins", json=body)

    calls = {
        "healthz": lambda i: anon.get("/healthz"),
        "home": lambda i: phones[i % len(phones)].get("/"),
        "checkin": checkin,
        "aftercare": lambda i: phones[i % len(phones)].get("/api/aftercare"),
        "flags": lambda i: pracs[i % len(pracs)].get("/api/flags"),
    }
    for route in ROUTES:  # warm up: templates compiled, connections opened, models built
        for i in range(20):
            status = calls[route](i).status_code
            assert status < 300, (route, status)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    print("READY " + sys.modules["companion"].__file__, flush=True)
    for line in sys.stdin:  # one batch per line: "ROUTE N"
        route, n = line.split()
        call = calls[route]
        if profiler:
            profiler.enable()
        start = time.process_time()
        for i in range(int(n)):
            status = call(i).status_code
            assert status < 300, (route, status)
        spent = time.process_time() - start
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        print(f"{spent / int(n) * 1000:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="/tmp/companion-percall.sqlite3")
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--src", nargs="+", default=["."])
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=ROUTES)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--profile", help="cProfile stats of the batches to this file (one --src)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not Path(args.db).exists():
        import scale

        print(f"{args.db} is missing: generating it at scale {args.scale:g} ...", flush=True)
        scale.generate(args.db, scale=args.scale, seed=1, log=print)
    children = []
    for src in args.src:
        path = os.pathsep.join([str(Path(src).resolve()), str(HERE)])
        argv = [sys.executable, __file__, "--child", "--db", args.db, "--people", str(args.people)]
        proc = subprocess.Popen(
            argv + (["--profile", args.profile] if args.profile else []),
            env={**os.environ, "PYTHONPATH": path},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(proc)
    for src, proc in zip(args.src, children, strict=True):
        print(f"{src}: {proc.stdout.readline().strip()}", flush=True)
    figures = {src: {r: [] for r in args.routes} for src in args.src}
    for route in [r for r in ROUTES if r in args.routes]:  # the check-ins last: they add rows
        for _ in range(args.batches):
            for src, proc in zip(args.src, children, strict=True):
                proc.stdin.write(f"{route} {args.requests}\n")
                proc.stdin.flush()
                figures[src][route].append(float(proc.stdout.readline()))
    for proc in children:
        proc.stdin.close()
        proc.wait()
    print("\nms of CPU a request: minimum (median) of the batches")
    print(f"{'src':28}" + "".join(f"{r:>17}" for r in args.routes))
    for src in args.src:
        cells = [sorted(figures[src][r]) for r in args.routes]
        print(f"{src:28}" + "".join(f"{v[0]:>8.3f} ({v[len(v) // 2]:.3f})" for v in cells))


if __name__ == "__main__":
    main()
