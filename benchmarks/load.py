"""Load: `companion serve` on a full-size database, driven over HTTP by wrk.

    .venv/bin/python benchmarks/load.py [--db PATH] [--reuse] [--servers gunicorn,granian]
                                        [--bare gunicorn,granian] [--rounds 2] [--duration 10]

All on 127.0.0.1: a working copy of scale.py's database (generated at --scale when missing),
`companion serve --server NAME` over it, practitioners and clients signed in through the API;
then, round after round, a bare Flask app's trivial route under each server, and for each
server configuration one wrk run per route and a mixed run (wrk runs load.lua, beside this
script), while a thread queues reminders for devices on a push receiver so that the
dispatcher's lateness is measured under the load.
benchmarks/README.md explains every figure it prints.
"""

import argparse
import math
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median_high

import psutil
import requests
import scale  # benchmarks/scale.py, beside this script
from tabulate import tabulate

from companion import create_app
from companion.cli import migrate
from companion.db import connect, iso, utcnow, write
from companion.reminders.retries import after_quiet_hours
from testkit.bench import cpu_seconds, percentile
from testkit.processes import COMPANION, free_port, stop, wait_for_health
from testkit.push_receiver import ReceiverProcess
from testkit.reminders import wait_settled

BIN = Path(COMPANION).parent
SUBJECT = "mailto:ops@clinic-bench.net"
ROUTES = {
    "healthz": "GET /healthz (trivial)",
    "home": "GET / (client home)",
    "checkin": "POST /api/checkins",
    "aftercare": "GET /api/aftercare",
    "flags": "GET /api/flags (queue)",
}
MIX = {"home": 35, "aftercare": 25, "checkin": 25, "flags": 15}
LABELS = ROUTES | {"mixed": "mixed " + "/".join(map(str, MIX.values()))}
TARGETS = {"checkin": 1000, "p99_ms": 50, "home": 1500, "mb": 150}  # issue 16
WRK = ["wrk", "--threads", "2", "--timeout", "10s"]
LOAD_LUA = Path(__file__).with_name("load.lua")
PROBE_RATE = 20  # reminders due a second while wrk runs
CHECKIN_RATE_PER_HOUR = "100000"  # so that the benchmark's clients are not rate limited


def log(*args) -> None:
    print(*args, flush=True)


def peak_mb(pid: int | None) -> float:
    """The process's peak resident memory (VmHWM; psutil reports only the current RSS)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone
        return math.nan
    return int(re.search(r"^VmHWM:\s+(\d+)", status, re.M).group(1)) / 1024


# -- the database -------------------------------------------------------------------------------


def prepare_db(source: str, work: Path, reuse: bool, size: float) -> Path:
    """A working copy of `source` (made by scale.py, generated here when missing)."""
    path = work / "companion.sqlite3"
    if reuse and path.exists():
        log(f"Reusing the working copy {path}")
        return path
    if not Path(source).exists():
        log(f"{source} is missing: generating it at scale {size:g} ...")
        scale.generate(source, scale=size, seed=1, log=log)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    log(f"Copying {source} to {path} (SQLite online backup) ...")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    with closing(src), closing(sqlite3.connect(path)) as dst:
        src.backup(dst, pages=65536)
    return path


def last_rows(path: str | Path) -> dict:
    """The last generated check-in and flag: any row after them a load run posted."""
    sql = "SELECT coalesce(max(rowid), 0) FROM {}"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {t: conn.execute(sql.format(t)).fetchone()[0] for t in ("checkins", "flags")}


def forget_posted(path: Path, base: dict) -> int:
    """Delete the check-ins (and the flags they raised) that earlier runs posted, so that each
    run starts from the generated data (a home page charts every check-in of a session)."""
    with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        gone = conn.execute("DELETE FROM checkins WHERE rowid > :checkins", base).rowcount
        conn.execute("DELETE FROM flags WHERE id > :flags", base)
        conn.execute("COMMIT")
        return gone


def choose_people(path: Path, n: int, rng: random.Random) -> tuple[list[dict], dict[int, str]]:
    """Clients with a session in the last 21 days, by whole clinics, and each clinic's first
    practitioner."""
    with closing(sqlite3.connect(path)) as conn:
        since = iso(datetime.now(UTC) - timedelta(days=21))
        recent = conn.execute(
            "SELECT s.client_id, c.clinic_id FROM treatment_sessions s JOIN clients c"
            " ON c.id = s.client_id WHERE s.performed_at >= :since GROUP BY s.client_id",
            {"since": since},
        ).fetchall()
        by_clinic: dict[int, list[int]] = {}
        for client_id, clinic_id in recent:
            by_clinic.setdefault(clinic_id, []).append(client_id)
        clinics = sorted(by_clinic)
        rng.shuffle(clinics)
        chosen = [{"id": c, "clinic_id": k} for k in clinics for c in by_clinic[k]][:n]
        sql = "SELECT email FROM practitioners WHERE clinic_id = ? AND active = 1 ORDER BY id"
        clinic_ids = sorted({c["clinic_id"] for c in chosen})
        return chosen, {k: conn.execute(sql, (k,)).fetchone()[0] for k in clinic_ids}


def awake_first(path: Path, chosen: list[dict], hours: float = 3) -> list[dict]:
    """`chosen`, the clients outside their quiet hours from now for `hours` first: the probe's
    devices are the first --devices of them, since the dispatcher rightly holds a reminder due in
    a client's quiet hours (it is not late, and not lost)."""
    now = datetime.now(UTC)
    steps = [now + timedelta(minutes=m) for m in range(0, int(hours * 60) + 1, 10)]
    sql = "SELECT timezone, quiet_start, quiet_end FROM clients WHERE id = ?"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        quiet = {c["id"]: dict(conn.execute(sql, (c["id"],)).fetchone()) for c in chosen}
    awake = {k for k, q in quiet.items() if all(after_quiet_hours(q, t) == t for t in steps)}
    return sorted(chosen, key=lambda c: c["id"] not in awake)  # stable: awake ones first


# -- the servers --------------------------------------------------------------------------------

BARE_APP = (
    'from flask import Flask\napp = Flask("bare")\napp.get("/healthz")(lambda: {"status": "ok"})\n'
)


class Server:
    """`companion serve --server NAME` in its own process group (master, workers, dispatcher),
    or (`bare`) a trivial Flask app under that server. `src`: a folder whose `companion` package
    runs instead of the installed one (the "before" side of a before/after comparison)."""

    def __init__(self, spec: dict, env: dict, work: Path, bare: bool = False):
        name, workers, threads = spec["server"], str(spec["workers"]), str(spec["threads"])
        port = free_port()
        self.bare, self.base = bare, f"http://127.0.0.1:{port}"
        self.label = ("bare " if bare else "") + spec["label"]
        bind = ["--host", "127.0.0.1", "--port", str(port)]
        (work / "bare_app.py").write_text(BARE_APP)
        if not bare:
            cmd = [COMPANION, "serve", "--server", name, *bind]
            cmd += ["--workers", workers, "--threads", threads]
            env = env | ({"PYTHONPATH": spec["src"]} if spec["src"] else {})
        elif name == "gunicorn":
            cmd = [str(BIN / "gunicorn"), "--chdir", str(work), "-w", workers]
            cmd += ["-b", f"127.0.0.1:{port}", "bare_app:app"]
        else:
            cmd = [str(BIN / "granian"), "--interface", "wsgi", "--working-dir", str(work), *bind]
            cmd += ["--workers", workers, "--blocking-threads", threads, "bare_app:app"]
        with open(work / "serve.log", "ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=1)
        wait_for_health(port, self.proc, timeout=120)
        deadline = time.monotonic() + 60
        while len(self.worker_pids()) < spec["workers"] or not (bare or self.dispatcher_pid()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cmd} did not start its processes; see {work}/serve.log")
            time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        """The web workers: every child but the dispatcher and multiprocessing's helpers."""
        cmds = {p.pid: " ".join(p.cmdline()) for p in psutil.Process(self.proc.pid).children()}
        return [pid for pid, c in cmds.items() if not c.endswith(" worker") and "multip" not in c]

    def dispatcher_pid(self) -> int | None:
        children = psutil.Process(self.proc.pid).children()
        return next((p.pid for p in children if p.cmdline()[-1:] == ["worker"]), None)

    def stop(self) -> None:
        """SIGTERM (graceful: the dispatcher releases its leases); the whole group killed after
        45 s."""
        if stop(self.proc, timeout=45) is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def sign_in(base: str, chosen: list[dict], emails: dict[int, str], receiver, devices: int):
    """(client cookies, practitioner cookies), signed in through the API: practitioners with
    their password, clients with an invite their practitioner issues; the first `devices`
    clients also subscribe a device on `receiver`."""

    def post(path: str, cookie: str = "", body: dict | None = None) -> requests.Response:
        r = requests.post(base + path, json=body or {}, headers={"Cookie": cookie}, timeout=60)
        r.raise_for_status()
        return r

    def cookies(r: requests.Response) -> str:
        kept = ("session", "remember_token")
        return "; ".join(f"{k}={v}" for k, v in r.cookies.items() if k in kept)

    def login(email: str) -> str:
        return cookies(post("/api/auth/login", body={"email": email, "password": scale.PASSWORD}))

    def client(k: int, c: dict) -> str:
        invite = post(f"/api/clients/{c['id']}/invites", prac[c["clinic_id"]]).json()
        cookie = cookies(post(f"/api/invites/{invite['token']}/redeem"))
        if k < devices:
            device = receiver.new_subscription(f"lat{c['id']}").to_json()
            post("/api/push/subscriptions", cookie, device)
        return cookie

    with ThreadPoolExecutor(4) as pool:
        prac = dict(zip(emails, pool.map(login, emails.values()), strict=True))
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(client, range(len(chosen)), chosen)), list(prac.values())


# -- the dispatcher's lateness ------------------------------------------------------------------


INSERT_PROBE = (
    "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id, kind, title, body, url,"
    " due_at, expires_at, next_attempt_at, created_at) VALUES ('client', :client, :clinic, :client,"
    " 'instruction', :title, 'Keep your skin clean and dry tonight.', '/reminders', :due, :until,"
    " :due, :now)"
)


class Probe(threading.Thread):
    """Queue PROBE_RATE reminders a second for the subscribed clients, each due 1-2 s later."""

    def __init__(self, path: Path, clients: list[dict], title: str):
        super().__init__(daemon=True)
        self.path, self.clients, self.title = path, clients, title
        self.due: dict[int, float] = {}  # reminder id -> when it was due (epoch seconds)
        self.halt = threading.Event()

    def run(self) -> None:
        with closing(connect(str(self.path))) as db:
            queued, next_at = 0, time.time()
            while not self.halt.is_set():
                start = datetime.now(UTC) + timedelta(seconds=1)
                with write(db):
                    for j in range(PROBE_RATE):
                        client = self.clients[queued % len(self.clients)]
                        queued += 1
                        due = start + timedelta(seconds=j / PROBE_RATE)
                        row = {"client": client["id"], "clinic": client["clinic_id"]}
                        row |= {"title": self.title, "due": iso(due), "now": iso(utcnow())}
                        row["until"] = iso(due + timedelta(hours=12))
                        self.due[db.conn.execute(INSERT_PROBE, row).lastrowid] = due.timestamp()
                next_at += 1.0
                self.halt.wait(max(0.0, next_at - time.time()))

    def stop(self, settle: float = 30) -> int:
        """Stop queueing and wait (up to `settle` s) until the dispatcher settled every row;
        return how many it holds for their client's quiet hours (pending, due later)."""
        self.halt.set()
        self.join()
        with closing(connect(str(self.path))) as db:
            with suppress(TimeoutError):
                wait_settled(db, self.title, settle)
            sql = "SELECT count(*) FROM notifications WHERE title = ? AND status = 'pending'"
            sql += " AND status_reason LIKE 'held for quiet hours%'"
            return db.conn.execute(sql, (self.title,)).fetchone()[0]

    def lateness(self, receiver, since: int) -> list[float]:
        """Seconds from due to the first arrival, of each reminder that arrived."""
        arrived = {}
        for _, row_id, _, at in receiver.messages(since):
            if row_id in self.due:
                arrived.setdefault(row_id, at)
        return [at - self.due[i] for i, at in arrived.items()]


# -- wrk ----------------------------------------------------------------------------------------


def write_cookies(path: Path, clients: list[str], practitioners: list[str]) -> Path:
    """The signed-in cookies, one a line, for load.lua."""
    lines = [f"client\t{c}\n" for c in clients] + [f"practitioner\t{p}\n" for p in practitioners]
    path.write_text("".join(lines))
    return path


def children_cpu() -> float:
    """User + system CPU time of the children this process has waited for (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(server: Server, mode: str, cookies: Path, args, duration: float) -> dict:
    """One wrk run of load.lua (`mode`: a route or "mixed"): its RESULT line, req/s, and the cores
    that wrk, the server's workers and the dispatcher used meanwhile (psutil for the server's
    processes, rusage for wrk)."""
    workers = server.worker_pids()
    dispatcher = [] if server.bare else [server.dispatcher_pid()]
    cpu0 = [sum(map(cpu_seconds, workers)), sum(map(cpu_seconds, dispatcher)), children_cpu()]
    cmd = [*WRK, "--connections", str(args.connections), "--duration", f"{duration:g}s"]
    cmd += ["--script", str(LOAD_LUA), server.base, "--", mode, str(cookies)]
    cmd += [str(random.randrange(2**30)), *(f"{k}={w}" for k, w in MIX.items())]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    cpu1 = [sum(map(cpu_seconds, workers)), sum(map(cpu_seconds, dispatcher)), children_cpu()]
    with open(Path(args.work) / "wrk.log", "a") as f:
        f.write(f"$ {' '.join(cmd)}\n{out}\n")
    found = re.search(r"^RESULT (.*)$", out, re.M)
    if not found:
        raise RuntimeError(f"wrk printed no RESULT line:\n{out}")
    res = {k: v if k == "codes" else int(v) for k, v in (p.split("=") for p in found[1].split())}
    secs = res["duration_us"] / 1e6
    used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    res["rps"] = res["requests"] / secs
    res["cpu_ms"] = 1000 * used[0] / max(1, res["requests"])
    res["cores"] = dict(zip(("workers", "disp", "wrk"), (u / secs for u in used), strict=True))
    return res


# -- one configuration --------------------------------------------------------------------------


@dataclass
class Bench:
    """What every configuration's measurement shares."""

    args: argparse.Namespace
    db: Path  # the working copy
    baseline: dict  # its generated rows (last_rows)
    env: dict  # the servers' environment
    timed: ReceiverProcess  # the push service of the probe's devices
    devices: list[dict]  # the clients with a device on it
    emails: list[str]  # one practitioner of each chosen clinic

    def wait_quiet(self) -> float:
        """The load average now, after waiting (up to --wait-quiet s) for it to fall to 1.5: the
        host may be shared, give another job a while to finish."""
        started, before = time.monotonic(), os.getloadavg()[0]
        while os.getloadavg()[0] > 1.5 and time.monotonic() - started < self.args.wait_quiet:
            time.sleep(5)
        return before

    def measure(self, spec: dict, cookies: Path, title: str) -> dict:
        """Every route and the mixed run on one server configuration, with the dispatcher's
        lateness meanwhile and the processes' peak memory."""
        args, before = self.args, self.wait_quiet()
        server = Server(spec, self.env, Path(args.work))
        log(f"\n== {server.label} ==   (load average {before:.2f}, {os.getloadavg()[0]:.2f} now)")
        try:
            run_wrk(server, "mixed", cookies, args, duration=3)  # warm-up
            probe = Probe(self.db, self.devices, title)
            since = len(self.timed.messages())
            probe.start()
            results = {}
            for mode in LABELS:
                forget_posted(self.db, self.baseline)
                results[mode] = run_wrk(server, mode, cookies, args, args.duration)
            held = probe.stop()
            memory = {
                "master": peak_mb(server.proc.pid),
                "dispatcher": peak_mb(server.dispatcher_pid()),
                "workers": [peak_mb(p) for p in server.worker_pids()],
            }
            # Then concurrent practitioner sign-ins: each password check is scrypt (32 MiB while
            # it runs), one per busy thread.
            burst = min(16, 2 * spec["workers"] * spec["threads"])
            body = {"email": self.emails[0], "password": scale.PASSWORD}
            login = f"{server.base}/api/auth/login"
            with ThreadPoolExecutor(burst) as pool:
                list(pool.map(lambda _: requests.post(login, json=body, timeout=60), range(burst)))
            memory["after_login"] = [peak_mb(p) for p in server.worker_pids()]
        finally:
            server.stop()
        print_runs(results)
        lateness = probe.lateness(self.timed, since)
        # Not received: held for quiet hours (the dispatcher's rule, the row still pending) or lost.
        missing = len(probe.due) - len(lateness) - held
        log(
            f"dispatcher lateness: {len(probe.due)} reminders due at {PROBE_RATE}/s through the"
            f" runs: p50 {percentile(lateness, 50):.3f} s, p99 {percentile(lateness, 99):.3f} s;"
            f" {held} held for quiet hours, {missing} lost\npeak memory (VmHWM): master {memory['master']:.0f} MB,"
            f" workers {'/'.join(f'{mb:.0f}' for mb in memory['workers'])} MB"
            f" ({max(memory['after_login']):.0f} MB after {burst} concurrent scrypt sign-ins),"
            f" dispatcher {memory['dispatcher']:.0f} MB"
        )
        run = {"label": server.label, "results": results, "memory": memory}
        return run | {"lateness": lateness, "missing": missing, "held": held}

    def measure_bare(self, spec: dict) -> dict:
        """The trivial route of a bare Flask app under this server: the ceiling of the server."""
        before, args = self.wait_quiet(), self.args
        server = Server(spec, self.env, Path(args.work), bare=True)
        nobody = write_cookies(Path(args.work) / "nobody.txt", [], [])
        try:
            run_wrk(server, "healthz", nobody, args, duration=2)  # warm-up
            result = run_wrk(server, "healthz", nobody, args, args.duration)
            memory = {"workers": [peak_mb(p) for p in server.worker_pids()]}
        finally:
            server.stop()
        log(
            f"\n== {server.label} ==   (load average {before:.2f}): GET /healthz {result['rps']:.0f}"
            f" req/s, p99 {result['p99_us'] / 1000:.1f} ms, {result['errors']} errors,"
            f" {result['cpu_ms']:.2f} ms CPU a request, workers {max(memory['workers']):.0f} MB"
        )
        return {"label": server.label, "results": {"healthz": result}, "memory": memory}


# -- what it prints -----------------------------------------------------------------------------


def print_runs(results: dict[str, dict]) -> None:
    """One configuration's table: a row per wrk run."""
    trivial = results["healthz"]["rps"]
    header = ["route", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "% trivial"]
    header += ["cpu ms/req", "workers", "disp", "wrk"]
    table = []
    for key, r in results.items():
        row = [LABELS[key], r["rps"], *(r[k] / 1000 for k in ("p50_us", "p99_us", "max_us"))]
        row += [r["errors"], r["rps"] / trivial, r["cpu_ms"], *r["cores"].values()]
        table.append(row)
    floats = ("", ".0f", ".1f", ".1f", ".1f", "", ".0%", ".2f", ".2f", ".2f", ".2f")
    log(tabulate(table, header, "plain", floatfmt=floats))
    for key, r in results.items():
        if r["codes"]:
            log(f"  {LABELS[key]}: error statuses {r['codes']}")


def print_summary(runs: list[dict]) -> None:
    """One row per run (in the order run), then the targets per configuration, on the median
    of its rounds."""
    header = ["req/s and p99 ms"]
    for key in LABELS:
        header += [key, ""]
    header += ["errors", "late p99", "worker MB", "+login"]
    table = []
    for run in runs:
        r, mem = run["results"], run["memory"]
        row = [run["label"]]
        for key in LABELS:
            row += [r[key]["rps"], r[key]["p99_us"] / 1000] if key in r else ["", ""]
        row += [sum(x["errors"] for x in r.values())]
        row += [percentile(run["lateness"], 99) if "lateness" in run else ""]
        row += [max(mem["workers"]), max(mem.get("after_login", [""]))]
        table.append(row)
    floats = ("", *(".0f", ".1f") * len(LABELS), "d", ".3f", ".0f", ".0f")
    log("\n" + tabulate(table, header, "plain", floatfmt=floats))

    def median(label: str, key: str, field: str = "rps") -> float:
        values = [x["results"][key][field] for x in runs if x["label"] == label]
        return median_high(values) if values else math.nan  # the higher of two rounds

    bare, t = median("bare gunicorn 2x1", "healthz"), TARGETS
    for label in dict.fromkeys(x["label"] for x in runs if not x["label"].startswith("bare")):
        mine = [x for x in runs if x["label"] == label]
        rps = {k: median(label, k) for k in LABELS}
        p99 = median(label, "checkin", "p99_us") / 1000
        errors = sum(v["errors"] for x in mine for v in x["results"].values())
        late = max(percentile(x["lateness"], 99) for x in mine)
        missing = sum(x["missing"] for x in mine)
        held = sum(x["held"] for x in mine)
        mb = max(mb for x in mine for mb in x["memory"]["after_login"])
        checkin, share = rps["checkin"], rps["checkin"] / bare
        # --bare without gunicorn measures no bare gunicorn: that target is then not judged
        # (it printed "MISSED nan% of nan").
        versus_bare = (
            (f"{share:.0%} of {bare:.0f}", share >= 0.5)
            if bare == bare
            else ("not measured: --bare without gunicorn", None)
        )
        checks = [
            (f"check-in POST >= {t['checkin']} req/s", f"{checkin:.0f}", checkin >= t["checkin"]),
            (f"check-in POST p99 < {t['p99_ms']} ms", f"{p99:.1f}", p99 < t["p99_ms"]),
            (f"client home >= {t['home']} req/s", f"{rps['home']:.0f}", rps["home"] >= t["home"]),
            ("check-in >= 50% of bare gunicorn's trivial", *versus_bare),
            ("zero errors", str(errors), errors == 0),
            (
                "dispatcher lateness p99 < 2 s, none lost",
                f"{late:.3f} s, {missing} lost ({held} held for quiet hours)",
                late < 2 and not missing,
            ),
            (f"peak memory < {t['mb']} MB a worker (+ sign-ins)", f"{mb:.0f} MB", mb < t["mb"]),
        ]
        for key in ("home", "checkin", "aftercare", "flags"):
            part = rps[key] / rps["healthz"]
            checks.append((f"{ROUTES[key]} >= 50% of trivial", f"{part:.0%}", part >= 0.5))
        log(f"\ntargets, {label} (median of {len(mine)} round(s)):")
        for name, value, ok in checks:
            verdict = "n/a   " if ok is None else "met   " if ok else "MISSED"
            log(f"  {verdict}  {name:<52} {value}")


# -- main ---------------------------------------------------------------------------------------


SPEC = re.compile(
    r"(?P<name>gunicorn|granian)(?::(?P<workers>[1-9]\d*)(?:x(?P<threads>[1-9]\d*))?)?"
)


def parse_specs(text: str) -> list[dict]:
    """`NAME[:WORKERSxTHREADS][@SOURCE]` items, e.g. `gunicorn,granian:2x1,gunicorn@/tmp/before`."""
    specs = []
    for item in filter(None, text.split(",")):
        item, _, source = item.partition("@")
        if not (m := SPEC.fullmatch(item)):
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected gunicorn or granian, optionally :WORKERS or :WORKERSxTHREADS"
            )
        if source and not (Path(source) / "companion").is_dir():
            raise argparse.ArgumentTypeError(f"{source!r} has no companion package")
        name, workers, threads = m["name"], m["workers"] or "2", m["threads"] or "1"
        label = f"{name} {workers}x{threads}" + (f" @{source}" if source else "")
        spec = dict(server=name, workers=int(workers), threads=int(threads), src=source)
        specs.append(spec | {"label": label})
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="/tmp/companion-scale.sqlite3", help="made by scale.py")
    parser.add_argument("--scale", type=float, default=1.0, help="to generate a missing --db")
    parser.add_argument("--work", default="/tmp/companion-load", help="working folder")
    parser.add_argument("--reuse", action="store_true", help="keep the working copy of --db")
    parser.add_argument("--servers", default="gunicorn,granian", help="NAME[:WxT][@SRC],...")
    parser.add_argument("--bare", default="gunicorn,granian", help="servers of a bare Flask app")
    parser.add_argument("--rounds", type=int, default=2, help="every configuration, interleaved")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk's")
    parser.add_argument("--clients", type=int, default=2000, help="signed-in clients")
    parser.add_argument("--devices", type=int, default=200, help="clients with a timed device")
    parser.add_argument("--wait-quiet", type=float, default=120, help="s to wait for load < 1.5")
    parser.add_argument("--seed", type=int, default=None, help="choice of clinics and clients")
    args = parser.parse_args()
    try:  # before any work: a typo must not cost the minutes of preparing the database
        specs, bare = parse_specs(args.servers), parse_specs(args.bare)
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if not specs:
        parser.error("--servers names no server")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    work = Path(args.work)
    (work / "instance").mkdir(parents=True, exist_ok=True)
    db = prepare_db(args.db, work, args.reuse, args.scale)
    os.environ.update(COMPANION_INSTANCE_PATH=str(work / "instance"), COMPANION_DATABASE=str(db))
    env = os.environ | {
        "COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS": "1",
        "COMPANION_VAPID_SUBJECT": SUBJECT,
        "COMPANION_CHECKIN_RATE_PER_HOUR": CHECKIN_RATE_PER_HOUR,
    }
    app = create_app()  # makes the instance's secrets (session key, VAPID keys) on first run
    migrate(app)
    baseline = last_rows(args.db if Path(args.db).exists() else db)
    gone = forget_posted(db, baseline)
    with closing(sqlite3.connect(db)) as conn:
        tables = ("clinics", "clients", "treatment_sessions", "checkins", "notifications")
        sizes = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    log(
        f"Database {db} ({db.stat().st_size / 2**30:.2f} GiB): "
        + ", ".join(f"{n:,} {t}" for t, n in sizes.items())
        + (f" (deleted {gone:,} check-ins earlier runs posted)" if gone else "")
    )
    key = app.config["VAPID_PUBLIC_KEY"]
    with (
        ReceiverProcess(application_server_key=key, decrypt=False, seed="load-bg") as background,
        ReceiverProcess(application_server_key=key, seed="load-timed") as timed,
    ):
        # Every stored push endpoint -> the local background receiver: nothing leaves the host.
        with closing(sqlite3.connect(db)) as conn, conn:
            sql = "UPDATE push_subscriptions SET endpoint = :base || '/push/b' || id"
            sql += " WHERE endpoint NOT LIKE :base || '/%'"
            moved = conn.execute(sql, {"base": background.base_url}).rowcount
        log(f"Push endpoints: {moved:,} stored subscriptions pointed at {background.base_url}")
        seed = args.seed if args.seed is not None else int(time.time())
        chosen, emails = choose_people(db, args.clients, random.Random(seed))
        chosen = awake_first(db, chosen)  # the probe's devices: clients awake through the run
        devices = chosen[: args.devices]
        # Sign in on a server of its own, so that every measured configuration has served the
        # same requests (sign-in's scrypt would otherwise raise the first one's peak memory).
        setup = Server(specs[0], env, work)
        try:
            client_cookies, prac_cookies = sign_in(setup.base, chosen, emails, timed, args.devices)
        finally:
            setup.stop()
        log(
            f"Signed in {len(prac_cookies)} practitioners and {len(client_cookies)} clients of"
            f" {len(emails)} clinics (seed {seed}); {len(devices)} devices on {timed.base_url};"
            f" wrk: 2 threads, {args.connections} connections, {args.duration:g} s a run;"
            f" {os.cpu_count()} cores; {args.rounds} round(s) of"
            f" {', '.join(['bare ' + s['label'] for s in bare] + [s['label'] for s in specs])}"
        )
        bench = Bench(args, db, baseline, env, timed, devices, list(emails.values()))
        runs, n, stamp = [], args.rounds * len(specs), datetime.now(UTC).strftime("%H%M%S")
        for r in range(args.rounds):  # A, B, A, B: the host's noise falls on every side alike
            runs += [bench.measure_bare(spec) for spec in bare]
            for i, spec in enumerate(specs):
                # Each run gets its own clients: check-ins add to a session's history.
                mine = client_cookies[r * len(specs) + i :: n]
                cookies = write_cookies(work / f"cookies-{r}-{i}.txt", mine, prac_cookies)
                # A title of this run's own: with --reuse, an earlier run's probe rows still
                # held for quiet hours were counted as this one's ("-100 lost").
                title = f"Load probe {r}-{i} {stamp}"
                runs.append(bench.measure(spec, cookies, title=title))
    print_summary(runs)
    log(f"\nload average at the end: {os.getloadavg()[0]:.2f}; wrk output in {work / 'wrk.log'}")


if __name__ == "__main__":
    main()
