"""Load: `companion serve` on a full-size database, driven over HTTP by wrk.

    .venv/bin/python benchmarks/load.py [--db PATH] [--reuse] [--servers gunicorn,granian]
                                        [--bare gunicorn,granian] [--rounds 2] [--duration 10]

All on 127.0.0.1: a working copy of scale.py's database (generated at --scale when missing),
`companion serve --server NAME` over it, practitioners and clients signed in through the API;
then, round after round, a bare Flask app's trivial route under each server, and for each
server configuration one wrk run per route and a mixed run, while a thread queues reminders
for devices on a push receiver so that the dispatcher's lateness is measured under the load.
benchmarks/README.md explains every figure it prints.
"""

import argparse
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import requests
import scale  # benchmarks/scale.py, beside this script

from companion import create_app
from companion.cli import migrate
from companion.db import connect, iso, write
from testkit.processes import COMPANION, wait_for_health
from testkit.push_receiver import ReceiverProcess

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
TARGETS = {"checkin": 1000, "p99_ms": 50, "home": 1500, "mb": 150}  # issue 16


def log(*args) -> None:
    print(*args, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


def peak_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM; psutil reports only the current RSS)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return math.nan
    return int(re.search(r"^VmHWM:\s+(\d+)", status, re.M).group(1)) / 1024


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with suppress(psutil.NoSuchProcess):
            total += sum(psutil.Process(pid).cpu_times()[:2])  # user + system
    return total


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
    src, dst = sqlite3.connect(f"file:{source}?mode=ro", uri=True), sqlite3.connect(path)
    src.backup(dst, pages=65536)
    dst.close()
    src.close()
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


# -- the servers --------------------------------------------------------------------------------

BARE_APP = (
    'from flask import Flask\napp = Flask("bare")\napp.get("/healthz")(lambda: {"status": "ok"})\n'
)


class Server:
    """`companion serve --server NAME` in its own process group (master, workers, dispatcher),
    or (`bare`) a trivial Flask app under that server. `src`: a folder whose `companion` package
    runs instead of the installed one (the "before" side of a before/after comparison)."""

    def __init__(self, spec: dict, env: dict, port: int, work: Path, bare: bool = False):
        name, workers, threads, source = (spec[k] for k in ("server", "workers", "threads", "src"))
        self.workers, self.bare = workers, bare
        self.base = f"http://127.0.0.1:{port}"
        self.label = ("bare " if bare else "") + spec["label"]
        bind = ["--host", "127.0.0.1", "--port", str(port)]
        (work / "bare_app.py").write_text(BARE_APP)
        if not bare:
            cmd = [COMPANION, "serve", "--server", name, *bind, "--workers", str(workers)]
            cmd += ["--threads", str(threads)]
            env = env | ({"PYTHONPATH": source} if source else {})
        elif name == "gunicorn":
            cmd = [str(BIN / "gunicorn"), "--chdir", str(work), "-w", str(workers)]
            cmd += ["-b", f"127.0.0.1:{port}", "bare_app:app"]
        else:
            cmd = [str(BIN / "granian"), "--interface", "wsgi", "--working-dir", str(work), *bind]
            cmd += ["--workers", str(workers), "--blocking-threads", str(threads), "bare_app:app"]
        with open(work / "serve.log", "ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=1)
        wait_for_health(port, self.proc, timeout=120)
        deadline = time.monotonic() + 60
        while len(self.worker_pids()) < workers or not (bare or self.dispatcher_pid()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cmd} did not start its processes; see {work}/serve.log")
            time.sleep(0.2)

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children()

    def worker_pids(self) -> list[int]:
        """The web workers: every child but the dispatcher and multiprocessing's helpers."""
        cmds = {p.pid: " ".join(p.cmdline()) for p in self.children()}
        return [pid for pid, c in cmds.items() if not c.endswith(" worker") and "multip" not in c]

    def dispatcher_pid(self) -> int | None:
        return next((p.pid for p in self.children() if p.cmdline()[-1:] == ["worker"]), None)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: the dispatcher releases its leases
            try:
                self.proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def sign_in(base: str, chosen: list[dict], emails: dict[int, str]) -> tuple[list, list]:
    """(client cookies, practitioner cookies), signed in through the API: practitioners with
    their password, clients with an invite their practitioner issues."""

    def cookies(r: requests.Response) -> str:
        r.raise_for_status()
        return "; ".join(
            f"{k}={v}" for k, v in r.cookies.items() if k in ("session", "remember_token")
        )

    def login(email: str) -> str:
        body = {"email": email, "password": scale.PASSWORD}
        return cookies(requests.post(f"{base}/api/auth/login", json=body, timeout=60))

    def client(c: dict) -> str:
        invite = f"{base}/api/clients/{c['id']}/invites"
        r = requests.post(invite, json={}, headers={"Cookie": prac[c["clinic_id"]]}, timeout=60)
        r.raise_for_status()
        redeem = f"{base}/api/invites/{r.json()['token']}/redeem"
        return cookies(requests.post(redeem, json={}, timeout=60))

    with ThreadPoolExecutor(4) as pool:
        prac = dict(zip(emails, pool.map(login, emails.values()), strict=True))
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(client, chosen)), list(prac.values())


def subscribe(base: str, receiver, chosen: list[dict], cookies: list[str]) -> None:
    def one(c: dict, cookie: str) -> None:
        sub = receiver.new_subscription(f"lat{c['id']}").to_json()
        url, headers = f"{base}/api/push/subscriptions", {"Cookie": cookie}
        r = requests.post(url, json=sub, headers=headers, timeout=60)
        assert r.status_code == 201, (c["id"], r.status_code, r.text[:200])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, chosen, cookies))


# -- the dispatcher's lateness ------------------------------------------------------------------


INSERT_PROBE = (
    "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id, kind, title, body, url,"
    " due_at, expires_at, next_attempt_at, created_at) VALUES ('client', :client, :clinic, :client,"
    " 'instruction', 'Evening aftercare', 'Keep your skin clean and dry tonight.', '/reminders',"
    " :due, :until, :due, :now)"
)


class Probe(threading.Thread):
    """Queue `rate` reminders a second for the subscribed clients, each due 1-2 s later."""

    def __init__(self, path: Path, clients: list[dict], rate: float):
        super().__init__(daemon=True)
        self.path, self.clients, self.rate = path, clients, rate
        self.due: dict[int, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        db, k, next_at = connect(str(self.path)), 0, time.time()
        try:
            while not self.halt.is_set():
                start = datetime.now(UTC) + timedelta(seconds=1)
                with write(db):
                    for j in range(int(self.rate)):
                        c, due = (
                            self.clients[k % len(self.clients)],
                            start + timedelta(seconds=j / self.rate),
                        )
                        k += 1
                        row = {"client": c["id"], "clinic": c["clinic_id"], "due": iso(due)}
                        row |= {
                            "until": iso(due + timedelta(hours=12)),
                            "now": iso(datetime.now(UTC)),
                        }
                        row_id = db.conn.execute(INSERT_PROBE, row).lastrowid
                        self.due[row_id] = due.timestamp()
                next_at += 1.0
                self.halt.wait(max(0.0, next_at - time.time()))
        finally:
            db.close()

    def stop(self, settle: float = 30) -> None:
        """Stop queueing and wait (up to `settle` s) until the dispatcher settled every row."""
        self.halt.set()
        self.join()
        conn = sqlite3.connect(self.path, timeout=30)
        sql = "SELECT count(*) FROM notifications WHERE id >= ? AND status IN ('pending', 'leased')"
        deadline = time.monotonic() + settle
        while self.due and conn.execute(sql, (min(self.due),)).fetchone()[0]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        conn.close()


# -- wrk ----------------------------------------------------------------------------------------

# Rotates the signed-in cookies, posts check-ins with a new UUID v4 each (scores as clients in
# their first weeks report them), counts every status >= 300 as an error and prints one line.
LUA = r"""
local clients = { %(clients)s }
local practitioners = { %(practitioners)s }
local mode, mix, total = "%(mode)s", { %(mix)s }, 0
for _, m in ipairs(mix) do total = total + m[2] end
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  math.randomseed(%(seed)d + tid * 7919)
  ci, pi, errors, codes = ((tid - 1) * 7717) %% #clients, tid - 1, 0, ""
end

local function client() ci = ci %% #clients + 1; return clients[ci] end
local function practitioner() pi = pi %% #practitioners + 1; return practitioners[pi] end

local function uuid4()
  return (string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function (c)
    return string.format("%%x", c == "x" and math.random(0, 15) or math.random(8, 11))
  end))
end

local function pick(weights)  -- percent for 0, 1, 2
  local r = math.random(1, 100)
  for i, w in ipairs(weights) do if r <= w then return i - 1 end; r = r - w end
  return 0
end

local function build(kind)
  if kind == "healthz" then return wrk.format("GET", "/healthz") end
  if kind == "home" then return wrk.format("GET", "/", { Cookie = client() }) end
  if kind == "aftercare" then return wrk.format("GET", "/api/aftercare", { Cookie = client() }) end
  if kind == "flags" then return wrk.format("GET", "/api/flags", { Cookie = practitioner() }) end
  local body = string.format('{"id":"%%s","taken_at":"%%s","redness":%%d,"swelling":%%d,"pain":%%d}',
    uuid4(), os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ"), pick({70, 25, 5}), pick({80, 18, 2}), pick({60, 30, 10}))
  return wrk.format("POST", "/api/checkins", { Cookie = client(), ["Content-Type"] = "application/json" }, body)
end

function request()
  if mode ~= "mixed" then return build(mode) end
  local r = math.random(1, total)
  for _, m in ipairs(mix) do if r <= m[2] then return build(m[1]) end; r = r - m[2] end
end

function response(status, headers, body)
  if status >= 300 then
    errors = errors + 1
    if #codes < 200 then codes = codes .. status .. "," end
  end
end

function done(summary, latency, requests)
  local e, c, s = 0, "", summary.errors
  for _, t in ipairs(threads) do e, c = e + t:get("errors"), c .. t:get("codes") end
  io.write(string.format("RESULT requests=%%d duration_us=%%d p50_us=%%d p99_us=%%d max_us=%%d"
    .. " errors=%%d codes=%%s\n", summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, e + s.connect + s.read + s.write + s.timeout, c))
end
"""


def write_scripts(folder: Path, clients: list[str], practitioners: list[str]) -> dict[str, Path]:
    values = {"clients": ", ".join(map(json.dumps, clients)), "seed": random.randrange(2**30)}
    values |= {"practitioners": ", ".join(map(json.dumps, practitioners))}
    values["mix"] = ", ".join(f'{{"{k}", {w}}}' for k, w in MIX.items())
    folder.mkdir(parents=True)
    scripts = {}
    for mode in [*ROUTES, "mixed"]:
        scripts[mode] = folder / f"{mode}.lua"
        scripts[mode].write_text(LUA % (values | {"mode": mode}))
    return scripts


def run_wrk(server: Server, script: Path, args, logfile: Path, duration=None) -> dict:
    """One wrk run: its RESULT line, req/s, and the cores that wrk, the gunicorn workers and the
    dispatcher used meanwhile (psutil for the server's processes, rusage for wrk)."""
    workers, dispatcher = server.worker_pids(), [server.dispatcher_pid()] if not server.bare else []
    cpu0, disp0 = cpu_seconds(workers), cpu_seconds(dispatcher)
    wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = ["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections)]
    duration = duration or args.duration
    cmd += ["-d", f"{duration:g}s", "--timeout", "10s", "-s", str(script), server.base]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(logfile, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n{out}\n")
    found = re.search(r"^RESULT (.*)$", out, re.M)
    if not found:
        raise RuntimeError(f"wrk printed no RESULT line:\n{out}")
    res = {k: v if k == "codes" else int(v) for k, v in (p.split("=") for p in found[1].split())}
    secs = res["duration_us"] / 1e6
    worker_cpu = cpu_seconds(workers) - cpu0
    res |= {"rps": res["requests"] / secs, "cpu_ms": 1000 * worker_cpu / max(1, res["requests"])}
    res["cores"] = {"workers": worker_cpu / secs, "disp": (cpu_seconds(dispatcher) - disp0) / secs}
    wrk_cpu = (wrk1.ru_utime + wrk1.ru_stime) - (wrk0.ru_utime + wrk0.ru_stime)
    res["cores"]["wrk"] = wrk_cpu / secs
    return res


# -- one configuration --------------------------------------------------------------------------


def wait_quiet(args) -> float:
    started, before = time.monotonic(), os.getloadavg()[0]
    while os.getloadavg()[0] > 1.5 and time.monotonic() - started < args.wait_quiet:
        time.sleep(5)  # the host may be shared: give another job a while to finish
    return before


def measure_bare(ctx: dict, spec: dict) -> dict:
    """The trivial route of a bare Flask app under this server: the ceiling of the server."""
    args, before = ctx["args"], wait_quiet(ctx["args"])
    server = Server(spec, ctx["env"], args.port, ctx["work"], bare=True)
    try:
        run_wrk(server, ctx["bare_lua"], args, ctx["wrk_log"], duration=2)  # warm-up
        result = run_wrk(server, ctx["bare_lua"], args, ctx["wrk_log"])
        memory = [peak_mb(p) for p in server.worker_pids()]
    finally:
        server.stop()
    log(
        f"\n== {server.label} ==   (load average {before:.2f}): GET /healthz {result['rps']:.0f}"
        f" req/s, p99 {result['p99_us'] / 1000:.1f} ms, {result['errors']} errors,"
        f" {result['cpu_ms']:.2f} ms CPU a request, workers {max(memory):.0f} MB"
    )
    return {"label": server.label, "results": {"healthz": result}, "memory": {"workers": memory}}


def measure(ctx: dict, spec: dict, scripts: dict[str, Path]) -> dict:
    """Every route and the mixed run on one server configuration, with lateness and memory."""
    args, before = ctx["args"], wait_quiet(ctx["args"])
    server = Server(spec, ctx["env"], args.port, ctx["work"])
    log(f"\n== {server.label} ==   (load average {before:.2f}, {os.getloadavg()[0]:.2f} now)")
    log(
        f"{'route':<28}{'req/s':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
        f"{'% trivial':>10}{'cpu ms/req':>11}{'workers':>8}{'disp':>6}{'wrk':>6}"
    )
    labels = ROUTES | {"mixed": "mixed " + "/".join(map(str, MIX.values()))}
    try:
        run_wrk(server, scripts["mixed"], args, ctx["wrk_log"], duration=3)  # warm-up
        probe = Probe(ctx["db"], ctx["subscribed"], args.probe_rate)
        since = len(ctx["timed"].messages())
        probe.start()
        results = {}
        for key in [*ROUTES, "mixed"]:
            forget_posted(ctx["db"], ctx["baseline"])
            results[key] = run_wrk(server, scripts[key], args, ctx["wrk_log"])
            print_run(labels[key], results[key], results["healthz"]["rps"])
        probe.stop()
        arrived = {}
        for _, row_id, _, at in ctx["timed"].messages(since):
            if row_id in probe.due:
                arrived.setdefault(row_id, at)
        lateness = [at - probe.due[i] for i, at in arrived.items()]
        memory = {
            "master": peak_mb(server.proc.pid),
            "dispatcher": peak_mb(server.dispatcher_pid()),
        }
        memory["workers"] = [peak_mb(p) for p in server.worker_pids()]
        # Then concurrent practitioner sign-ins: each password check is scrypt (32 MiB while it
        # runs), one per busy thread.
        burst = min(16, 2 * spec["workers"] * spec["threads"])
        body = {"email": ctx["emails"][0], "password": scale.PASSWORD}
        with ThreadPoolExecutor(burst) as pool:
            login = f"{server.base}/api/auth/login"
            list(pool.map(lambda _: requests.post(login, json=body, timeout=60), range(burst)))
        memory["after_login"] = [peak_mb(p) for p in server.worker_pids()]
    finally:
        server.stop()
    out = {"label": server.label, "results": results, "lateness": lateness, "memory": memory}
    out |= {"probes": len(probe.due), "missing": len(probe.due) - len(arrived)}
    log(
        f"dispatcher lateness: {out['probes']} reminders due at {args.probe_rate:g}/s through the"
        f" runs: p50 {percentile(lateness, 50):.3f} s, p99 {percentile(lateness, 99):.3f} s;"
        f" {out['missing']} not received\npeak memory (VmHWM): master {memory['master']:.0f} MB,"
        f" workers {'/'.join(f'{mb:.0f}' for mb in memory['workers'])} MB"
        f" ({max(memory['after_login']):.0f} MB after {burst} concurrent scrypt sign-ins),"
        f" dispatcher {memory['dispatcher']:.0f} MB"
    )
    return out


def print_run(label: str, r: dict, trivial: float) -> None:
    ms = "".join(f"{r[k] / 1000:>9.1f}" for k in ("p50_us", "p99_us", "max_us"))
    cores = "".join(f"{r['cores'][k]:>6.2f}" for k in ("workers", "disp", "wrk"))
    log(
        f"{label:<28}{r['rps']:>7.0f}{ms}{r['errors']:>8}{100 * r['rps'] / trivial:>9.0f}%"
        f"{r['cpu_ms']:>11.2f}{cores}" + (f"   error statuses: {r['codes']}" if r["codes"] else "")
    )


def print_summary(runs: list[dict]) -> None:
    """One row per run (in the order run), then the targets per configuration, on the median
    of its rounds."""
    keys = [*ROUTES, "mixed"]
    head = "".join(f"{k[:9]:>17}" for k in keys)
    log(
        f"\nreq/s and p99 ms{'':<22}{head}{'errors':>8}{'late p99':>9}{'worker MB':>10}{'+login':>7}"
    )
    for run in runs:
        r, mem = run["results"], run["memory"]
        cells = "".join(
            f"{r[k]['rps']:>9.0f}{r[k]['p99_us'] / 1000:>8.1f}" if k in r else f"{'':>17}"
            for k in keys
        )
        late = f"{percentile(run['lateness'], 99):>9.3f}" if "lateness" in run else f"{'':>9}"
        login = f"{max(mem['after_login']):>7.0f}" if "after_login" in mem else f"{'':>7}"
        errors = sum(x["errors"] for x in r.values())
        log(f"{run['label']:<38}{cells}{errors:>8}{late}{max(mem['workers']):>10.0f}{login}")

    def median(label: str, key: str, field: str = "rps") -> float:
        values = [x["results"][key][field] for x in runs if x["label"] == label]
        return sorted(values)[len(values) // 2] if values else math.nan

    bare, t = median("bare gunicorn 2x1", "healthz"), TARGETS
    for label in dict.fromkeys(x["label"] for x in runs if not x["label"].startswith("bare")):
        mine = [x for x in runs if x["label"] == label]
        rps = {k: median(label, k) for k in keys}
        p99 = median(label, "checkin", "p99_us") / 1000
        errors = sum(v["errors"] for x in mine for v in x["results"].values())
        late = max(percentile(x["lateness"], 99) for x in mine)
        missing = sum(x["missing"] for x in mine)
        mb = max(mb for x in mine for mb in x["memory"]["after_login"])
        chk, share = rps["checkin"], rps["checkin"] / bare
        checks = [
            (f"check-in POST >= {t['checkin']} req/s", f"{chk:.0f}", chk >= t["checkin"]),
            (f"check-in POST p99 < {t['p99_ms']} ms", f"{p99:.1f}", p99 < t["p99_ms"]),
            (f"client home >= {t['home']} req/s", f"{rps['home']:.0f}", rps["home"] >= t["home"]),
            (
                "check-in >= 50% of bare gunicorn's trivial",
                f"{share:.0%} of {bare:.0f}",
                share >= 0.5,
            ),
            ("zero errors", str(errors), errors == 0),
            (
                "dispatcher lateness p99 < 2 s, none lost",
                f"{late:.3f} s, {missing} lost",
                late < 2 and not missing,
            ),
            (f"peak memory < {t['mb']} MB a worker (+ sign-ins)", f"{mb:.0f} MB", mb < t["mb"]),
        ]
        for k in [k for k in ROUTES if k != "healthz"]:
            part = rps[k] / rps["healthz"]
            checks.append((f"{ROUTES[k]} >= 50% of trivial", f"{part:.0%}", part >= 0.5))
        log(f"\ntargets, {label} (median of {len(mine)} round(s)):")
        for name, value, ok in checks:
            log(f"  {'met   ' if ok else 'MISSED'}  {name:<52} {value}")


# -- main ---------------------------------------------------------------------------------------


def parse_specs(text: str) -> list[dict]:
    """`NAME[:WORKERSxTHREADS][@SOURCE]` items, e.g. `gunicorn,granian:2x1,gunicorn@/tmp/before`."""
    specs = []
    for item in filter(None, text.split(",")):
        item, _, source = item.partition("@")
        name, _, shape = item.partition(":")
        workers, _, threads = (shape or "2x1").partition("x")
        label = f"{name} {workers}x{threads or 1}" + (f" @{source}" if source else "")
        specs.append(dict(server=name, workers=int(workers), threads=int(threads or 1), src=source))
        specs[-1]["label"] = label
    return specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="/tmp/companion-scale.sqlite3", help="made by scale.py")
    parser.add_argument("--scale", type=float, default=1.0, help="to generate a missing --db")
    parser.add_argument("--work", default="/tmp/companion-load", help="working folder")
    parser.add_argument("--reuse", action="store_true", help="keep the working copy of --db")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--servers", default="gunicorn,granian", help="NAME[:WxT][@SRC],...")
    parser.add_argument("--bare", default="gunicorn,granian", help="servers of a bare Flask app")
    parser.add_argument("--rounds", type=int, default=2, help="every configuration, interleaved")
    parser.add_argument("--clients", type=int, default=2000, help="signed-in clients")
    parser.add_argument("--devices", type=int, default=200, help="clients with a timed device")
    parser.add_argument("--probe-rate", type=float, default=20, help="reminders due per second")
    parser.add_argument("--checkin-rate-per-hour", type=int, default=100_000, help="0: the app's")
    parser.add_argument("--wait-quiet", type=float, default=120, help="s to wait for load < 1.5")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=None, help="choice of clinics and clients")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    work = Path(args.work)
    (work / "instance").mkdir(parents=True, exist_ok=True)
    db = prepare_db(args.db, work, args.reuse, args.scale)
    os.environ.update(COMPANION_INSTANCE_PATH=str(work / "instance"), COMPANION_DATABASE=str(db))
    env = os.environ | {
        "COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS": "1",
        "COMPANION_VAPID_SUBJECT": SUBJECT,
    }
    if args.checkin_rate_per_hour:
        env["COMPANION_CHECKIN_RATE_PER_HOUR"] = str(args.checkin_rate_per_hour)
    app = create_app()  # makes the instance's secrets (session key, VAPID keys) on first run
    migrate(app)
    baseline = last_rows(args.db if Path(args.db).exists() else db)
    gone = forget_posted(db, baseline)
    conn = sqlite3.connect(db)
    tables = ("clinics", "clients", "treatment_sessions", "checkins", "notifications")
    sizes = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    log(
        f"Database {db} ({db.stat().st_size / 2**30:.2f} GiB): "
        + ", ".join(f"{n:,} {t}" for t, n in sizes.items())
        + (f" (deleted {gone:,} check-ins earlier runs posted)" if gone else "")
    )
    specs, bare = parse_specs(args.servers), parse_specs(args.bare)
    key = app.config["VAPID_PUBLIC_KEY"]
    with (
        ReceiverProcess(application_server_key=key, decrypt=False, seed="load-bg") as background,
        ReceiverProcess(application_server_key=key, seed="load-timed") as timed,
    ):
        # Every stored push endpoint -> the local background receiver: nothing leaves the host.
        with closing(conn), conn:
            sql = "UPDATE push_subscriptions SET endpoint = :base || '/push/b' || id"
            sql += " WHERE endpoint NOT LIKE :base || '/%'"
            moved = conn.execute(sql, {"base": background.base_url}).rowcount
        log(f"Push endpoints: {moved:,} stored subscriptions pointed at {background.base_url}")
        seed = args.seed if args.seed is not None else int(time.time())
        chosen, emails = choose_people(db, args.clients, random.Random(seed))
        # Sign in on a server of its own, so that every measured configuration has served the
        # same requests (sign-in's scrypt would otherwise raise the first one's peak memory).
        setup = Server(specs[0], env, args.port, work)
        try:
            client_cookies, prac_cookies = sign_in(setup.base, chosen, emails)
            subscribe(setup.base, timed, chosen[: args.devices], client_cookies[: args.devices])
        finally:
            setup.stop()
        log(
            f"Signed in {len(prac_cookies)} practitioners and {len(client_cookies)} clients of"
            f" {len(emails)} clinics (seed {seed}); {min(args.devices, len(chosen))} devices on"
            f" {timed.base_url}; wrk: {args.wrk_threads} threads, {args.connections} connections,"
            f" {args.duration:g} s a run; {os.cpu_count()} cores; {args.rounds} round(s) of"
            f" {', '.join(s['label'] for s in bare + specs)}"
        )
        folder = Path(tempfile.mkdtemp(prefix="companion-load-lua-"))
        ctx = dict(args=args, work=work, db=db, baseline=baseline, env=env, timed=timed)
        ctx |= dict(emails=list(emails.values()), subscribed=chosen[: args.devices])
        ctx |= dict(
            wrk_log=work / "wrk.log", bare_lua=write_scripts(folder / "b", ["x"], ["x"])["healthz"]
        )
        runs, n = [], args.rounds * len(specs)
        for r in range(args.rounds):  # A, B, A, B: the host's noise falls on every side alike
            runs += [measure_bare(ctx, spec) for spec in bare]
            for i, spec in enumerate(specs):
                # Each run gets its own clients: check-ins add to a session's history.
                cookies = client_cookies[r * len(specs) + i :: n]
                scripts = write_scripts(folder / f"{r}-{i}", cookies, prac_cookies)
                runs.append(measure(ctx, spec, scripts))
        shutil.rmtree(folder)
    print_summary(runs)
    log(f"\nload average at the end: {os.getloadavg()[0]:.2f}; wrk output in {ctx['wrk_log']}")


if __name__ == "__main__":
    main()
