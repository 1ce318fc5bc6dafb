"""Load: `companion serve` on a full-size database, driven over HTTP by wrk.

    .venv/bin/python benchmarks/load.py [--db PATH] [--reuse] [--duration 10] [--connections 32]
                                        [--workers 2] [--threads 1] [--configs 3x1,2x4]
                                        [--clients 2000] [--probe-rate 20] [--profile auto]

What it does, all on 127.0.0.1:

1. Database: a working copy of the scale generator's file (--db, default
   /tmp/companion-scale.sqlite3: 100,000 clients, 2,000,000 check-ins; generated there with
   `scale.generate(path, scale=1.0)` when missing), copied with SQLite's online backup API into
   --work (default /tmp/companion-load). --reuse keeps the working copy of an earlier run;
   either way, the check-ins (and their flags) that earlier runs posted are deleted before
   every run, so each run starts from the generated data.
   Every stored push endpoint is pointed at a local push receiver first (the generated ones
   name fcm.googleapis.com): nothing leaves the machine.
2. Serves it with `companion serve --host 127.0.0.1 --workers W --threads T` (gunicorn, plus the
   one dispatcher child), in a temporary instance folder (COMPANION_INSTANCE_PATH,
   COMPANION_DATABASE), with COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS=1 and
   COMPANION_VAPID_SUBJECT=mailto:ops@clinic-bench.net.
3. Signs in through the real API: the first practitioner of each chosen clinic
   (POST /api/auth/login), and --clients clients with a session in the last 21 days
   (POST /api/clients/{id}/invites, then POST /api/invites/{token}/redeem: the `session` and
   `remember_token` cookies). --devices of them subscribe a device
   (POST /api/push/subscriptions) on a push receiver in another process that checks VAPID,
   decrypts and records when each message arrived.
4. For each worker configuration: one wrk run per route, --duration seconds each (wrk's own
   -d bound; --timeout 10s), then a mixed run: GET /healthz (the trivial ceiling), GET /
   (client home), POST /api/checkins (a new UUID v4 each, taken_at now), GET /api/aftercare,
   GET /api/flags (practitioner queue). Lua rotates the signed-in cookies and counts every
   status >= 300 as an error. Meanwhile a thread adds --probe-rate reminder rows a second for
   the subscribed devices, each due one to two seconds later; the dispatcher's lateness is the
   receiver's arrival time minus the due time.
5. Prints per route: requests/s, p50/p99 latency, errors, % of the trivial endpoint's rate,
   the workers' CPU ms per request; the peak RSS (VmHWM) of the gunicorn master, each worker
   and the dispatcher; the lateness; a comparison of the configurations; the targets.
6. --profile: py-spy samples every worker during an extra run of a route (auto: of the check-in
   POST and the client home when their targets are missed; on: of every app route) and prints
   where the time goes.

The 2-core host may be shared: before each configuration it waits (up to 2 minutes) for the
load average to fall to 1.5, and before each run it measures the CPU that other processes use
(cores busy outside this benchmark's processes) and prints it beside the figures.
"""

import argparse
import atexit
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

import requests  # noqa: E402

SUBJECT = "mailto:ops@clinic-bench.net"
SOURCE_DB = "/tmp/companion-scale.sqlite3"
ROUTES = [  # (key, label)
    ("healthz", "GET /healthz (trivial)"),
    ("home", "GET / (client home)"),
    ("checkin", "POST /api/checkins"),
    ("aftercare", "GET /api/aftercare"),
    ("flags", "GET /api/flags (queue)"),
]
MIX = [("home", 35), ("aftercare", 25), ("checkin", 25), ("flags", 15)]
TARGETS = {
    "checkin_rps": 1000,
    "checkin_p99_ms": 50,
    "home_rps": 1500,
    "share": 0.20,
    "lateness_p99_s": 2.0,
    "worker_mb": 150,
}

PROFILED = ("checkin", "home")  # the routes with targets of their own


def missed_target(res: dict, key: str) -> bool:
    if key == "checkin":
        return (
            res["rps"] < TARGETS["checkin_rps"] or res["p99_us"] / 1000 >= TARGETS["checkin_p99_ms"]
        )
    return res["rps"] < TARGETS["home_rps"]


_cleanup: list = []  # callables run at exit, newest first


def cleanup() -> None:
    while _cleanup:
        try:
            _cleanup.pop()()
        except Exception as e:  # keep cleaning up
            print(f"cleanup: {e!r}", file=sys.stderr)


def log(*args) -> None:
    print(*args, flush=True)


# -- the machine ------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is missing: apt-get install -y wrk")
    if subprocess.run(["apt-get", "install", "-y", "wrk"], stdout=subprocess.DEVNULL).returncode:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def loadavg() -> float:
    return os.getloadavg()[0]


def wait_for_quiet(limit: float = 1.5, patience: float = 120) -> tuple[float, float]:
    """Wait (up to patience seconds) for the 1-minute load average to fall to limit."""
    started = time.monotonic()
    before = loadavg()
    while loadavg() > limit and time.monotonic() - started < patience:
        time.sleep(5)
    return before, loadavg()


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError):
        return 0


def _machine_ticks() -> tuple[int, int]:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts[:8]), idle


def snapshot(ours: list[int]) -> tuple[int, int, int]:
    """(machine jiffies, idle jiffies, jiffies of our processes) now."""
    total, idle = _machine_ticks()
    return total, idle, sum(_cpu_ticks(p) for p in ours)


def others_between(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """Cores kept busy by processes other than ours between two snapshots."""
    total0, idle0, mine0 = a
    total1, idle1, mine1 = b
    ncpu = os.cpu_count() or 1
    busy = (total1 - total0) - (idle1 - idle0)  # jiffies summed over cpus
    elapsed = (total1 - total0) / ncpu
    if elapsed <= 0:
        return 0.0
    return max(0.0, (busy - (mine1 - mine0)) / elapsed)


def others_cores(ours: list[int], seconds: float = 2.0) -> float:
    """Cores kept busy by processes other than ours over the next `seconds`."""
    a = snapshot(ours)
    time.sleep(seconds)
    return others_between(a, snapshot(ours))


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def rss_parts(pid: int) -> dict:
    """Current RssAnon, RssFile, RssShmem in MB (what the peak is made of)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                out[key[3:].lower()] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def peak_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# -- the database -----------------------------------------------------------------------------


def prepare_db(source: str, work: Path, reuse: bool) -> Path:
    path = work / "companion.sqlite3"
    if reuse and path.exists():
        log(f"Reusing the working copy {path}")
        return path
    if not Path(source).exists():
        import scale

        log(f"{source} is missing: generating it at scale 1.0 (about 10 minutes) ...")
        scale.generate(source, scale=1.0, seed=1, log=log)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    log(f"Copying {source} to {path} (SQLite online backup) ...")
    started = time.perf_counter()
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(str(path))
    src.backup(dst, pages=65536)
    dst.close()
    src.close()
    log(f"  copied in {time.perf_counter() - started:.0f} s")
    return path


def baselines(source: str, work_db: Path) -> dict:
    """The last generated check-in and flag rows: any row after them a load run posted."""
    path = source if Path(source).exists() else work_db
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            t: conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {t}").fetchone()[0]
            for t in ("checkins", "flags")
        }
    finally:
        conn.close()


def forget_posted(path: Path, base: dict) -> int:
    """Delete the check-ins (and the flags they raised) that earlier runs posted.

    Each run then starts from the generated data: otherwise the signed-in clients pile up
    dozens of check-ins per session, which no real client has, and every later run pays for
    them (the home page charts each one).
    """
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        gone = conn.execute("DELETE FROM checkins WHERE rowid > ?", (base["checkins"],)).rowcount
        conn.execute("DELETE FROM flags WHERE id > ?", (base["flags"],))
        conn.execute("COMMIT")
        return gone
    finally:
        conn.close()


def counts(path: Path) -> dict:
    conn = sqlite3.connect(str(path))
    try:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in (
                "clinics",
                "clients",
                "treatment_sessions",
                "checkins",
                "flags",
                "notifications",
                "push_subscriptions",
            )
        }
    finally:
        conn.close()


def point_endpoints_at(path: Path, base: str) -> int:
    """Every stored push endpoint -> the local background receiver (nothing leaves the host)."""
    from companion.db import connect, write

    db = connect(str(path))
    try:
        with write(db):
            return db.conn.execute(
                "UPDATE push_subscriptions SET endpoint = ? || '/push/b' || id"
                " WHERE endpoint NOT LIKE ?",
                (base, base + "/%"),
            ).rowcount
    finally:
        db.close()


def choose_people(path: Path, n: int, rng: random.Random) -> tuple[list[dict], dict[int, str]]:
    """Clients with a session in the last 21 days, few recent check-ins, from whole clinics."""
    conn = sqlite3.connect(str(path))
    try:
        now = datetime.now(UTC)
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        recent = conn.execute(
            "SELECT s.client_id, c.clinic_id FROM treatment_sessions s JOIN clients c"
            " ON c.id = s.client_id WHERE s.performed_at >= ? AND s.performed_at <= ?"
            " GROUP BY s.client_id",
            ((now - timedelta(days=21)).strftime(fmt), now.strftime(fmt)),
        ).fetchall()
        # Earlier runs' clients (many check-ins received lately) go last: a real client
        # sends a handful per session, and triage reads the session's whole history.
        busy = {
            cid
            for (cid,) in conn.execute(
                "SELECT client_id FROM checkins WHERE received_at > ? GROUP BY client_id"
                " HAVING count(*) > 3",
                ((now - timedelta(days=2)).strftime(fmt),),
            )
        }
        by_clinic: dict[int, list[int]] = {}
        for client_id, clinic_id in recent:
            if client_id not in busy:
                by_clinic.setdefault(clinic_id, []).append(client_id)
        clinics = sorted(by_clinic)
        rng.shuffle(clinics)
        chosen: list[dict] = []
        for clinic_id in clinics:
            for client_id in by_clinic[clinic_id]:
                chosen.append({"id": client_id, "clinic_id": clinic_id})
            if len(chosen) >= n:
                break
        chosen = chosen[:n]
        emails = {}
        for clinic_id in sorted({c["clinic_id"] for c in chosen}):
            emails[clinic_id] = conn.execute(
                "SELECT email FROM practitioners WHERE clinic_id = ? AND active = 1 ORDER BY id"
                " LIMIT 1",
                (clinic_id,),
            ).fetchone()[0]
        return chosen, emails
    finally:
        conn.close()


# -- the server -------------------------------------------------------------------------------


class Server:
    """`companion serve` in its own process group; knows its master, workers and dispatcher."""

    def __init__(self, env: dict, port: int, workers: int, threads: int, logfile: Path):
        self.env, self.port, self.workers, self.threads = env, port, workers, threads
        self.logfile = logfile
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def kind(self) -> str:
        return "gthread" if self.threads > 1 else "sync"

    def start(self) -> "Server":
        out = open(self.logfile, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *(
                    self.env["LOAD_SERVE_WRAPPER"].split()
                    if self.env.get("LOAD_SERVE_WRAPPER")
                    else ["-m", "companion.cli"]
                ),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
            ],
            env=self.env,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd=str(ROOT),
        )
        out.close()
        _cleanup.append(self.stop)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"companion serve exited with {self.proc.returncode}; see {self.logfile}")
            try:
                ok = requests.get(self.base + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            if ok and len(self.worker_pids()) == self.workers and self.dispatcher_pid():
                return self
            time.sleep(0.3)
        sys.exit(f"companion serve did not become ready; see {self.logfile}")

    def worker_pids(self) -> list[int]:
        return [p for p in children(self.proc.pid) if "companion.cli worker" not in cmdline(p)]

    def dispatcher_pid(self) -> int | None:
        found = [p for p in children(self.proc.pid) if "companion.cli worker" in cmdline(p)]
        return found[0] if found else None

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def memory(self) -> dict:
        return {
            "master": peak_mb(self.proc.pid),
            "workers": [(p, peak_mb(p)) for p in self.worker_pids()],
            "parts": {p: rss_parts(p) for p in self.pids()},
            "dispatcher": peak_mb(self.dispatcher_pid() or -1),
        }

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # graceful: the dispatcher releases its leases
        try:
            self.proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Anything left in its group (nothing, normally).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


# -- signing in -------------------------------------------------------------------------------


def cookie_header(jar) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items() if k in ("session", "remember_token"))


def sign_in(
    base: str, chosen: list[dict], emails: dict[int, str], password: str
) -> tuple[list, list]:
    """Return (client cookies, practitioner cookies) signed in through the real API."""

    def login(email: str) -> str:
        r = requests.post(
            base + "/api/auth/login", json={"email": email, "password": password}, timeout=60
        )
        r.raise_for_status()
        return cookie_header(r.cookies)

    with ThreadPoolExecutor(4) as pool:
        prac = dict(zip(emails, pool.map(login, emails.values()), strict=True))

    def client(c: dict) -> str:
        r = requests.post(
            f"{base}/api/clients/{c['id']}/invites",
            json={},
            headers={"Cookie": prac[c["clinic_id"]]},
            timeout=60,
        )
        r.raise_for_status()
        r = requests.post(f"{base}/api/invites/{r.json()['token']}/redeem", json={}, timeout=60)
        r.raise_for_status()
        cookies = cookie_header(r.cookies)
        if "remember_token" not in cookies:
            raise RuntimeError(f"no remember_token for client {c['id']}")
        return cookies

    with ThreadPoolExecutor(8) as pool:
        client_cookies = list(pool.map(client, chosen))
    return client_cookies, list(prac.values())


def subscribe(base: str, receiver, chosen: list[dict], cookies: list[str]) -> None:
    def one(pair) -> None:
        c, cookie = pair
        sub = receiver.new_subscription(f"lat{c['id']}")
        r = requests.post(
            base + "/api/push/subscriptions",
            json=sub.to_json(),
            headers={"Cookie": cookie},
            timeout=60,
        )
        if r.status_code != 201:
            raise RuntimeError(f"subscribe {c['id']}: {r.status_code} {r.text[:200]}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, zip(chosen, cookies, strict=True)))


# -- the dispatcher's lateness ----------------------------------------------------------------


class Probe(threading.Thread):
    """Add `rate` reminder rows a second for the subscribed clients, each due 1-2 s later."""

    def __init__(self, path: Path, clients: list[dict], rate: float):
        super().__init__(daemon=True)
        self.path, self.clients, self.rate = path, clients, rate
        self.due: dict[int, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        from companion.db import connect, iso, write

        db = connect(str(self.path))
        k = 0
        body = "Keep your skin clean and dry tonight; use only the serum your clinic gave you."
        next_at = time.time()
        try:
            while not self._halt.is_set():
                start = datetime.now(UTC) + timedelta(seconds=1)
                count = int(self.rate)
                with write(db):
                    for j in range(count):
                        c = self.clients[k % len(self.clients)]
                        k += 1
                        due = start + timedelta(seconds=j / self.rate)
                        row_id = db.conn.execute(
                            "INSERT INTO notifications (owner_kind, owner_id, clinic_id, client_id,"
                            " kind, title, body, url, due_at, expires_at, next_attempt_at,"
                            " created_at) VALUES ('client', ?, ?, ?, 'instruction',"
                            " 'Evening aftercare', ?, '/reminders', ?, ?, ?, ?)",
                            (
                                c["id"],
                                c["clinic_id"],
                                c["id"],
                                body,
                                iso(due),
                                iso(due + timedelta(hours=12)),
                                iso(due),
                                iso(datetime.now(UTC)),
                            ),
                        ).lastrowid
                        self.due[row_id] = due.timestamp()
                next_at += 1.0
                self._halt.wait(max(0.0, next_at - time.time()))
        finally:
            db.close()

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def settle(self, timeout: float = 30) -> int:
        """Wait until none of the probe rows is pending or leased; return how many still are."""
        conn = sqlite3.connect(str(self.path), timeout=30)
        try:
            ids = sorted(self.due)
            deadline = time.monotonic() + timeout
            while True:
                left = (
                    conn.execute(
                        "SELECT count(*) FROM notifications WHERE id BETWEEN ? AND ? AND status IN"
                        " ('pending', 'leased') AND title = 'Evening aftercare'",
                        (ids[0], ids[-1]),
                    ).fetchone()[0]
                    if ids
                    else 0
                )
                if not left or time.monotonic() > deadline:
                    return left
                time.sleep(0.5)
        finally:
            conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


# -- wrk --------------------------------------------------------------------------------------


LUA = r"""
local clients = { %(clients)s }
local practitioners = { %(practitioners)s }
local mode = "%(mode)s"
local mix = { %(mix)s }
local mix_total = 0
for _, m in ipairs(mix) do mix_total = mix_total + m[2] end
local threads = {}
local seed_base = %(seed)d

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
  thread:set("seed", seed_base + #threads * 7919)
end

function init(args)
  math.randomseed(seed)
  for _ = 1, 20 do math.random() end
  ci = ((tid - 1) * 7717) %% #clients
  pi = (tid - 1) %% #practitioners
  errors, replays, codes = 0, 0, ""
  n_home, n_aftercare, n_checkin, n_flags, n_healthz = 0, 0, 0, 0, 0
end

local function next_client()
  ci = ci %% #clients + 1
  return clients[ci]
end

local function next_practitioner()
  pi = pi %% #practitioners + 1
  return practitioners[pi]
end

local hex = "0123456789abcdef"
local function uuid4()
  local out = {}
  for i = 1, 36 do
    if i == 9 or i == 14 or i == 19 or i == 24 then out[i] = "-"
    elseif i == 15 then out[i] = "4"
    elseif i == 20 then local v = math.random(9, 12); out[i] = hex:sub(v, v)
    else local v = math.random(1, 16); out[i] = hex:sub(v, v) end
  end
  return table.concat(out)
end

-- Scores as clients in their first three weeks report them: mostly settling skin, so most
-- check-ins match the expected course and some open or update a flag (and alert).
local REDNESS = { 70, 25, 5 }  -- percent for 0, 1, 2
local SWELLING = { 80, 18, 2 }
local PAIN = { 60, 30, 10 }
local function pick(weights)
  local r = math.random(1, 100)
  for i, w in ipairs(weights) do
    if r <= w then return i - 1 end
    r = r - w
  end
  return 0
end

local function build(kind)
  if kind == "healthz" then
    n_healthz = n_healthz + 1
    return wrk.format("GET", "/healthz")
  elseif kind == "home" then
    n_home = n_home + 1
    return wrk.format("GET", "/", { ["Cookie"] = next_client() })
  elseif kind == "aftercare" then
    n_aftercare = n_aftercare + 1
    return wrk.format("GET", "/api/aftercare", { ["Cookie"] = next_client() })
  elseif kind == "flags" then
    n_flags = n_flags + 1
    return wrk.format("GET", "/api/flags", { ["Cookie"] = next_practitioner() })
  else
    n_checkin = n_checkin + 1
    local body = string.format(
      '{"id":"%%s","taken_at":"%%s","redness":%%d,"swelling":%%d,"pain":%%d}',
      uuid4(), os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ"), pick(REDNESS), pick(SWELLING), pick(PAIN))
    return wrk.format("POST", "/api/checkins",
      { ["Cookie"] = next_client(), ["Content-Type"] = "application/json" }, body)
  end
end

function request()
  if mode ~= "mixed" then return build(mode) end
  local r = math.random(1, mix_total)
  for _, m in ipairs(mix) do
    if r <= m[2] then return build(m[1]) end
    r = r - m[2]
  end
end

function response(status, headers, body)
  if status >= 300 then
    errors = errors + 1
    if #codes < 400 then codes = codes .. status .. " " end
  elseif status == 200 and mode == "checkin" then
    replays = replays + 1  -- a check-in answered 200 is a replay of an existing id
  end
end

function done(summary, latency, requests)
  local e, r, c = 0, 0, ""
  local n = { healthz = 0, home = 0, aftercare = 0, checkin = 0, flags = 0 }
  for _, t in ipairs(threads) do
    e = e + t:get("errors")
    r = r + t:get("replays")
    c = c .. t:get("codes")
    n.healthz = n.healthz + t:get("n_healthz")
    n.home = n.home + t:get("n_home")
    n.aftercare = n.aftercare + t:get("n_aftercare")
    n.checkin = n.checkin + t:get("n_checkin")
    n.flags = n.flags + t:get("n_flags")
  end
  local s = summary.errors
  io.write(string.format(
    "RESULT requests=%%d duration_us=%%d p50_us=%%d p90_us=%%d p99_us=%%d max_us=%%d http_errors=%%d replays=%%d"
    .. " connect=%%d read=%%d write=%%d status=%%d timeout=%%d"
    .. " n_healthz=%%d n_home=%%d n_aftercare=%%d n_checkin=%%d n_flags=%%d codes=%%s\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e, r, s.connect, s.read, s.write, s.status, s.timeout,
    n.healthz, n.home, n.aftercare, n.checkin, n.flags, c:gsub(" ", ",")))
end
"""


def lua_list(items: list[str]) -> str:
    return ", ".join(json.dumps(i) for i in items)


def write_script(folder: Path, mode: str, clients: list[str], practitioners: list[str]) -> Path:
    path = folder / f"{mode}.lua"
    path.write_text(
        LUA
        % {
            "clients": lua_list(clients),
            "practitioners": lua_list(practitioners),
            "mode": mode,
            "mix": ", ".join(f'{{"{k}", {w}}}' for k, w in MIX),
            "seed": random.SystemRandom().randrange(1, 2**30),
        }
    )
    return path


def run_wrk(
    wrk: str,
    base: str,
    script: Path,
    duration: float,
    connections: int,
    threads: int,
    raw_log: Path,
    ours=None,
) -> dict:
    """One bounded wrk run; `ours` (a callable giving our pids) also measures others' CPU."""
    cmd = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        base,
    ]
    before = snapshot(ours()) if ours else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    guard = threading.Timer(duration + 30, proc.kill)  # wrk's own -d bounds it; this is a backstop
    guard.start()
    out = proc.stdout.read()
    after = snapshot(ours()) if ours else None
    # Reap it ourselves to get its CPU time (wrk is ours: it shares the 2 cores).
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    guard.cancel()
    wrk_cpu = usage.ru_utime + usage.ru_stime
    with open(raw_log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n{out}\n")
    match = re.search(r"^RESULT (.*)$", out, re.M)
    if not match:
        raise RuntimeError(f"wrk printed no RESULT line:\n{out}")
    res = {}
    for part in match.group(1).split():
        key, _, value = part.partition("=")
        res[key] = value if key == "codes" else int(value)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    res["rps"] = float(rps.group(1)) if rps else res["requests"] / (res["duration_us"] / 1e6)
    res["wrk_cores"] = wrk_cpu / (res["duration_us"] / 1e6)
    if before is not None:
        total0, idle0, mine0 = before
        total1, idle1, mine1 = after
        mine1 += round(wrk_cpu * os.sysconf("SC_CLK_TCK"))
        res["others_during"] = others_between(before, (total1, idle1, mine1))
    res["errors"] = (
        res["http_errors"] + res["connect"] + res["read"] + res["write"] + res["timeout"]
    )
    return res


def drive(ctx: dict, server: "Server", script: Path, duration: float, ours=None) -> dict:
    """run_wrk against this server with the run's wrk settings, logged to wrk.log."""
    args = ctx["args"]
    return run_wrk(
        ctx["wrk"],
        server.base,
        script,
        duration,
        args.connections,
        args.wrk_threads,
        ctx["work"] / "wrk.log",
        ours=ours,
    )


# -- profiling --------------------------------------------------------------------------------


def profile_stacks(files: list[Path]) -> tuple[list, list, int]:
    """Aggregate py-spy raw output: (self, inclusive, total samples), by function."""
    frame = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            names = []
            for f in stack.split(";"):
                m = frame.match(f.strip())
                if m:
                    fname = m.group(2)
                    short = fname.split("site-packages/")[-1].split("/work/main/")[-1]
                    short = re.sub(r"^.*/lib/python3\.\d+/", "", short)
                    names.append(f"{m.group(1)} ({short})")
                else:
                    names.append(f.strip())
            if not names:
                continue
            own[names[-1]] = own.get(names[-1], 0) + n
            for name in set(names):
                incl[name] = incl.get(name, 0) + n
    return (
        sorted(own.items(), key=lambda kv: -kv[1]),
        sorted(incl.items(), key=lambda kv: -kv[1]),
        total,
    )


# -- one configuration ------------------------------------------------------------------------


def measure_config(ctx: dict, workers: int, threads: int, profile: list[str], index: int) -> dict:
    """Measure every route on one worker configuration; py-spy the routes in `profile`."""
    args = ctx["args"]
    label = f"{'gthread' if threads > 1 else 'sync'} workers={workers} threads={threads}"
    before, after = wait_for_quiet()
    log(
        f"\n== {label}  (load average {before:.2f} before"
        + (f", waited to {after:.2f}" if after != before else "")
        + ") =="
    )
    server = Server(ctx["env"], args.port, workers, threads, ctx["work"] / "serve.log").start()
    scripts = ctx["slices"][index]
    ours = lambda: [os.getpid(), *server.pids(), *ctx["receiver_pids"]]  # noqa: E731
    # Warm up every route (not counted): imports, templates, SQLite's page cache.
    drive(ctx, server, scripts["mixed"], 3)
    drive(ctx, server, scripts["healthz"], 1)
    probe = Probe(ctx["db"], ctx["subscribed"], args.probe_rate)
    since = ctx["timed"].stats()["received"]
    probe.start()
    results = {}
    for key in [k for k, _ in ROUTES] + (["mixed"] if not args.no_mixed else []):
        tries = []
        for _attempt in range(1 + args.reruns):
            others = others_cores(ours())
            waited = 0.0
            while others > 0.5 and waited < 60:  # another session's job: give it a minute
                time.sleep(8)
                waited += 10
                others = others_cores(ours())
            forget_posted(ctx["db"], ctx["baseline"])
            load1 = loadavg()
            w0 = {p: _cpu_ticks(p) for p in server.worker_pids()}
            dispatcher = server.dispatcher_pid()
            d0 = _cpu_ticks(dispatcher)
            res = drive(ctx, server, scripts[key], args.duration, ours=ours)
            worker_cpu = sum(_cpu_ticks(p) - t for p, t in w0.items()) / os.sysconf("SC_CLK_TCK")
            secs = res["duration_us"] / 1e6
            res["cores"] = {
                "workers": worker_cpu / secs,
                "dispatcher": (_cpu_ticks(dispatcher) - d0) / os.sysconf("SC_CLK_TCK") / secs,
            }
            res.update(
                load1=load1,
                others=others,
                cpu_ms=worker_cpu * 1000 / max(1, res["requests"]),
            )
            tries.append(res)
            if res["others_during"] <= 0.3:
                break
            log(
                f"  ({key}: other processes used {res['others_during']:.2f} cores during the"
                f" run ({res['rps']:.0f} req/s); running it again)"
            )
        # The run least disturbed by other processes on the shared host.
        results[key] = min(tries, key=lambda r: r["others_during"])
        results[key]["tries"] = len(tries)
    probe.stop()
    left = probe.settle()
    arrived: dict[int, float] = {}
    for row_id, at in ctx["timed"].times(since):
        if row_id in probe.due and row_id not in arrived:
            arrived[row_id] = at
    lateness = [arrived[i] - probe.due[i] for i in arrived]
    profiles = [profile_route(ctx, server, ctx["slices"][-1], key) for key in profile]
    memory = server.memory()
    # Then a burst of practitioner sign-ins: each password check is scrypt (werkzeug's
    # default, n=2**15, r=8: 32 MiB of memory while it runs), one per busy thread.
    burst = min(16, 2 * workers * threads)
    emails = [ctx["emails"][i % len(ctx["emails"])] for i in range(burst)]
    with ThreadPoolExecutor(burst) as pool:
        statuses = list(
            pool.map(
                lambda e: (
                    requests.post(
                        server.base + "/api/auth/login",
                        json={"email": e, "password": ctx["password"]},
                        timeout=60,
                    ).status_code
                ),
                emails,
            )
        )
    memory["login_burst"] = burst
    memory["login_ok"] = statuses.count(200)
    memory["after_login"] = [(p, peak_mb(p)) for p in server.worker_pids()]
    server.stop()
    _cleanup.remove(server.stop)
    out = {
        "label": label,
        "workers": workers,
        "threads": threads,
        "results": results,
        "lateness": lateness,
        "probes": len(probe.due),
        "missing": len(probe.due) - len(arrived),
        "unsettled": left,
        "memory": memory,
        "profiles": profiles,
    }
    print_config(out, args)
    return out


def profile_route(ctx: dict, server: Server, scripts: dict, key: str) -> dict:
    """py-spy every worker through an extra wrk run of one route."""
    args = ctx["args"]
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    files, spies = [], []
    for pid in server.worker_pids():
        path = ctx["work"] / f"profile-{key}-{pid}.txt"
        path.unlink(missing_ok=True)
        files.append(path)
        spies.append(
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    f"{int(args.duration)}",
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--function",
                    "--nonblocking",
                    "--output",
                    str(path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    time.sleep(0.5)
    forget_posted(ctx["db"], ctx["baseline"])
    res = drive(ctx, server, scripts[key], args.duration)
    for s in spies:
        try:
            s.wait(timeout=30)
        except subprocess.TimeoutExpired:
            s.send_signal(signal.SIGINT)
            s.wait(timeout=10)
    own, incl, total = profile_stacks(files)
    return {
        "route": key,
        "result": res,
        "self": own,
        "inclusive": incl,
        "samples": total,
        "files": [str(f) for f in files],
    }


# -- printing ---------------------------------------------------------------------------------


def print_config(out: dict, args) -> None:
    results = out["results"]
    trivial = results["healthz"]["rps"]
    log(
        f"{'route':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
        f"{'% trivial':>10}{'cpu ms/req':>11}{'workers':>8}{'disp':>6}{'wrk':>6}{'load1':>7}"
        f"{'others':>13}"
    )
    labels = dict(ROUTES, mixed="mixed " + "/".join(str(w) for _, w in MIX))
    for key, res in results.items():
        log(
            f"{labels[key]:<26}{res['rps']:>9.0f}{res['p50_us'] / 1000:>9.1f}"
            f"{res['p99_us'] / 1000:>9.1f}{res['max_us'] / 1000:>9.1f}{res['errors']:>8}"
            f"{100 * res['rps'] / trivial:>9.0f}%{res['cpu_ms']:>11.2f}"
            f"{res['cores']['workers']:>8.2f}{res['cores']['dispatcher']:>6.2f}"
            f"{res['wrk_cores']:>6.2f}{res['load1']:>7.2f}"
            f"{res['others']:>7.2f}/{res.get('others_during', 0):<5.2f}"
        )
        if res["codes"]:
            log(f"    error statuses: {res['codes'][:200]}")
        if res["replays"]:
            log(f"    check-ins answered 200 (replayed ids): {res['replays']}")
    log(
        "    (cpu ms/req: the workers' CPU per request; workers, disp, wrk: cores the gunicorn"
        " workers, the dispatcher and the load generator used; load1: load average before the"
        " run; others: cores busy in other processes, before/during the run)"
    )
    mixed = results.get("mixed")
    if mixed:
        secs = mixed["duration_us"] / 1e6
        log(
            "    mixed, per route: "
            + ", ".join(f"{k} {mixed['n_' + k] / secs:.0f}/s" for k, _ in MIX)
        )
    lat = out["lateness"]
    log(
        f"dispatcher lateness: {out['probes']} reminders due at {args.probe_rate:g}/s through the"
        f" runs: p50 {percentile(lat, 0.5):.3f} s, p99 {percentile(lat, 0.99):.3f} s,"
        f" max {max(lat) if lat else float('nan'):.3f} s; {out['missing']} not received"
        + (f", {out['unsettled']} still pending" if out["unsettled"] else "")
    )
    mem = out["memory"]
    log(
        f"peak memory (VmHWM): master {mem['master']:.0f} MB, "
        + ", ".join(f"worker {pid} {mb:.0f} MB" for pid, mb in mem["workers"])
        + f", dispatcher {mem['dispatcher']:.0f} MB"
    )
    log(
        f"    after {mem['login_burst']} concurrent practitioner sign-ins"
        f" ({mem['login_ok']} answered 200; scrypt password checks): "
        + ", ".join(f"worker {pid} peak {mb:.0f} MB" for pid, mb in mem["after_login"])
    )
    worker = mem["workers"][0][0] if mem["workers"] else None
    if worker in mem["parts"]:
        part = mem["parts"][worker]
        log(
            f"    worker {worker} at the end: {part.get('anon', 0):.0f} MB private (anon),"
            f" {part.get('file', 0):.0f} MB file-backed (libraries, shared with the master),"
            f" {part.get('shmem', 0):.0f} MB shared memory (SQLite's -shm index)"
        )
    for prof in out["profiles"]:
        log("")
        print_profile(prof)


def combine(outs: list[dict], configs: list[tuple[int, int]]) -> list[dict]:
    """One entry per configuration (in configs' order): medians over its rounds."""
    combined = []
    for w, t in configs:
        mine = [o for o in outs if (o["workers"], o["threads"]) == (w, t)]
        if len(mine) == 1:
            combined.append(mine[0])
            continue
        first = mine[0]
        results = {}
        for key in first["results"]:
            runs = [o["results"][key] for o in mine]
            merged = dict(runs[0])
            for field in ("rps", "p50_us", "p99_us", "max_us"):
                merged[field] = statistics.median(r[field] for r in runs)
            merged["errors"] = sum(r["errors"] for r in runs)
            results[key] = merged
        memory = dict(first["memory"])
        memory["workers"] = [(0, max(mb for o in mine for _, mb in o["memory"]["workers"]))]
        memory["after_login"] = [(0, max(mb for o in mine for _, mb in o["memory"]["after_login"]))]
        combined.append(
            dict(
                first,
                results=results,
                memory=memory,
                label=f"{first['label']} x{len(mine)}",
                lateness=[x for o in mine for x in o["lateness"]],
                missing=sum(o["missing"] for o in mine),
            )
        )
    return combined


def print_summary(configs: list[dict], args) -> None:
    log("\n== configurations compared (same data, same run of this script) ==")
    log(
        f"{'configuration':<30}{'trivial':>9}{'home':>7}{'checkin':>9}{'chk p99':>9}"
        f"{'aftercare':>10}{'flags':>7}{'mixed':>7}{'min %':>7}{'late p99':>9}{'worker MB':>10}{'+sign-ins':>10}"
    )
    for c in configs:
        r = c["results"]
        trivial = r["healthz"]["rps"]
        share = min(r[k]["rps"] / trivial for k, _ in ROUTES[1:])
        worker_mb = max((mb for _, mb in c["memory"]["workers"]), default=float("nan"))
        login_mb = max((mb for _, mb in c["memory"]["after_login"]), default=float("nan"))
        log(
            f"{c['label']:<30}{trivial:>9.0f}{r['home']['rps']:>7.0f}{r['checkin']['rps']:>9.0f}"
            f"{r['checkin']['p99_us'] / 1000:>9.1f}{r['aftercare']['rps']:>10.0f}"
            f"{r['flags']['rps']:>7.0f}{r.get('mixed', {}).get('rps', float('nan')):>7.0f}"
            f"{100 * share:>6.0f}%{percentile(c['lateness'], 0.99):>9.3f}{worker_mb:>10.0f}{login_mb:>10.0f}"
        )

    def score(c):
        # Geometric mean of the app routes' rates (and the mixed run's): no route may sink.
        rates = [v["rps"] for k, v in c["results"].items() if k != "healthz"]
        return math.prod(rates) ** (1 / len(rates))

    for c in configs:
        worst = max(v["p99_us"] for k, v in c["results"].items() if k != "healthz") / 1000
        log(
            f"  {c['label']:<28} geometric mean of the app routes' req/s {score(c):6.0f},"
            f" worst p99 {worst:6.1f} ms"
        )

    best = max(configs, key=score)
    primary = configs[0]
    log(
        f"best by measurement (geometric mean of the app routes' req/s): {best['label']}"
        + ("" if best is primary else f"  (the default serve configuration is {primary['label']})")
    )
    log("\n== targets, " + primary["label"] + " ==")
    r = primary["results"]
    trivial = r["healthz"]["rps"]
    worker_mb = max(mb for _, mb in primary["memory"]["workers"])
    login_mb = max(mb for _, mb in primary["memory"]["after_login"])
    errors = sum(x["errors"] for x in r.values())
    checks = [
        (
            f"check-in POST >= {TARGETS['checkin_rps']} req/s",
            f"{r['checkin']['rps']:.0f}",
            r["checkin"]["rps"] >= TARGETS["checkin_rps"],
        ),
        (
            f"check-in POST p99 < {TARGETS['checkin_p99_ms']} ms",
            f"{r['checkin']['p99_us'] / 1000:.1f}",
            r["checkin"]["p99_us"] / 1000 < TARGETS["checkin_p99_ms"],
        ),
        (
            f"client home >= {TARGETS['home_rps']} req/s",
            f"{r['home']['rps']:.0f}",
            r["home"]["rps"] >= TARGETS["home_rps"],
        ),
        *[
            (
                f"{label} >= 20% of trivial",
                f"{100 * r[k]['rps'] / trivial:.0f}%",
                r[k]["rps"] >= TARGETS["share"] * trivial,
            )
            for k, label in ROUTES[1:]
        ],
        ("zero errors", str(errors), errors == 0),
        (
            f"dispatcher lateness p99 < {TARGETS['lateness_p99_s']:g} s",
            f"{percentile(primary['lateness'], 0.99):.3f} s",
            percentile(primary["lateness"], 0.99) < TARGETS["lateness_p99_s"]
            and not primary["missing"],
        ),
        (
            f"peak memory < {TARGETS['worker_mb']} MB a worker",
            f"{worker_mb:.0f} MB",
            worker_mb < TARGETS["worker_mb"],
        ),
        (
            f"  ... and after {primary['memory']['login_burst']} concurrent sign-ins",
            f"{login_mb:.0f} MB",
            login_mb < TARGETS["worker_mb"],
        ),
    ]
    for name, value, ok in checks:
        log(f"  {'met   ' if ok else 'MISSED'}  {name:<44} {value}")
    # The CPU bound: what the workers spend on a request caps the rate the cores allow.
    cores = os.cpu_count() or 1
    log(
        f"  CPU ceilings on {cores} cores (even with no load generator, dispatcher or kernel work):"
    )
    for key, target in (("checkin", TARGETS["checkin_rps"]), ("home", TARGETS["home_rps"])):
        ms = r[key]["cpu_ms"]
        log(
            f"    {dict(ROUTES)[key]:<24} {ms:.2f} ms of worker CPU a request: at most"
            f" {cores * 1000 / ms:,.0f} req/s; {target:,} req/s needs <= {cores * 1000 / target:.2f}"
            f" ms (the trivial endpoint takes {r['healthz']['cpu_ms']:.2f} ms)"
        )


# -- main -------------------------------------------------------------------------------------


def parse_configs(text: str, workers: int, threads: int) -> list[tuple[int, int]]:
    out = [(workers, threads)]
    for part in filter(None, (p.strip() for p in text.split(","))):
        w, _, t = part.partition("x")
        pair = (int(w), int(t or 1))
        if pair not in out:
            out.append(pair)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db",
        default=SOURCE_DB,
        help="full-size database made by scale.py (generated at scale 1.0 when missing)",
    )
    parser.add_argument("--work", default="/tmp/companion-load", help="working folder")
    parser.add_argument("--reuse", action="store_true", help="keep the working copy of --db")
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="the primary configuration")
    parser.add_argument("--threads", type=int, default=1, help="1: sync workers (serve's default)")
    parser.add_argument(
        "--configs",
        default="3x1,2x4",
        help="more WORKERSxTHREADS to compare after the primary ('' for none)",
    )
    parser.add_argument("--clients", type=int, default=2000, help="signed-in clients")
    parser.add_argument("--devices", type=int, default=200, help="clients with a timed device")
    parser.add_argument("--probe-rate", type=float, default=20, help="reminders due per second")
    parser.add_argument(
        "--checkin-rate-per-hour",
        type=int,
        default=100_000,
        help="COMPANION_CHECKIN_RATE_PER_HOUR for the server (0: the app's 60)",
    )
    parser.add_argument(
        "--profile",
        choices=("auto", "on", "off"),
        default="auto",
        help="py-spy the workers during an extra run of a route (auto: the check-in POST and"
        " client home when their targets are missed; on: every app route)",
    )
    parser.add_argument("--no-mixed", action="store_true")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every configuration this many times (alternating the order); the"
        " comparison shows medians",
    )
    parser.add_argument(
        "--reruns",
        type=int,
        default=2,
        help="run a route again (up to this many times) when other processes used more than"
        " 0.3 cores during it; the least disturbed run is reported",
    )
    parser.add_argument(
        "--serve-wrapper",
        help="a Python file to run instead of `-m companion.cli` (it must end by calling"
        " companion.cli.main()): to measure a patched server against the same load",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=None, help="choice of clinics and clients")
    args = parser.parse_args()

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    wrk = ensure_wrk()
    work = Path(args.work)
    (work / "instance").mkdir(parents=True, exist_ok=True)
    (work / "wrk.log").unlink(missing_ok=True)
    for old in work.glob("profile-*.txt"):  # of an earlier run
        old.unlink()
    db = prepare_db(args.db, work, args.reuse)
    env = dict(
        os.environ,
        COMPANION_INSTANCE_PATH=str(work / "instance"),
        COMPANION_DATABASE=str(db),
        COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS="1",
        COMPANION_VAPID_SUBJECT=SUBJECT,
    )
    if args.serve_wrapper:
        env["LOAD_SERVE_WRAPPER"] = str(Path(args.serve_wrapper).resolve())
        log(f"Serving through {args.serve_wrapper} (a patched server, not the code as it is)")
    if args.checkin_rate_per_hour:
        env["COMPANION_CHECKIN_RATE_PER_HOUR"] = str(args.checkin_rate_per_hour)
    os.environ.update({k: env[k] for k in ("COMPANION_INSTANCE_PATH", "COMPANION_DATABASE")})

    import scale
    from dispatch import TimedReceiver

    from companion import create_app
    from companion.cli import migrate

    app = create_app()  # makes the instance's secrets (session key, VAPID keys) on first run
    migrate(app)
    baseline = baselines(args.db, db)
    gone = forget_posted(db, baseline)
    if gone:
        log(f"Deleted {gone:,} check-ins that earlier load runs posted")
    sizes = counts(db)
    log(
        f"Database {db} ({db.stat().st_size / 2**30:.2f} GiB): "
        + ", ".join(f"{n:,} {t}" for t, n in sizes.items())
    )
    meta = Path(args.db + ".meta.json")
    made = json.loads(meta.read_text())["counts"] if meta.exists() else {}
    if made:
        log(
            f"  as generated by scale.py: {made['clients']:,} clients,"
            f" {made['checkins']:,} check-ins (erasure runs of scale.py remove a few clients;"
            " earlier load runs add check-ins)"
        )
    if made.get("clients", sizes["clients"]) < 100_000 or sizes["checkins"] < 1_000_000:
        log("WARNING: smaller than the target size (100,000 clients, 1,000,000 check-ins)")

    pub = app.config["VAPID_PUBLIC_KEY"]
    background = TimedReceiver(application_server_key=pub, decrypt=False, seed="load-bg").start()
    _cleanup.append(background.stop)
    timed = TimedReceiver(application_server_key=pub, seed="load-timed").start()
    _cleanup.append(timed.stop)
    moved = point_endpoints_at(db, background.base_url)
    log(
        f"Push endpoints: {moved:,} stored subscriptions pointed at a local receiver"
        f" ({background.base_url}); timed devices on {timed.base_url}"
    )

    seed = args.seed if args.seed is not None else int(time.time())
    chosen, emails = choose_people(db, args.clients, random.Random(seed))
    if len(chosen) < args.clients:
        log(f"WARNING: only {len(chosen)} eligible clients")
    scripts_dir = Path(tempfile.mkdtemp(prefix="companion-load-lua-"))
    _cleanup.append(lambda: shutil.rmtree(scripts_dir, ignore_errors=True))
    configs = parse_configs(args.configs, args.workers, args.threads)
    ctx = {
        "args": args,
        "wrk": wrk,
        "work": work,
        "db": db,
        "baseline": baseline,
        "env": env,
        "timed": timed,
        "receiver_pids": [background._process.pid, timed._process.pid],
        "slices": [],
        "emails": list(emails.values()),
        "password": scale.PASSWORD,
        "subscribed": chosen[: args.devices],
    }

    def on_start(server: Server) -> None:
        if ctx["slices"]:
            return
        started = time.perf_counter()
        client_cookies, prac_cookies = sign_in(server.base, chosen, emails, scale.PASSWORD)
        subscribe(server.base, timed, ctx["subscribed"], client_cookies[: args.devices])
        log(
            f"Signed in {len(prac_cookies)} practitioners (POST /api/auth/login) and"
            f" {len(client_cookies)} clients (invite + redeem) of {len(emails)} clinics, seed"
            f" {seed}; {len(ctx['subscribed'])} clients subscribed a device on the timed receiver"
            f" ({time.perf_counter() - started:.0f} s)"
        )
        # Each configuration (and the profile run) gets its own clients: check-ins add to a
        # session's history, which triage reads on every check-in; no run inherits another's.
        n = len(configs) * args.rounds + (args.profile != "off")
        for i in range(n):
            folder = scripts_dir / f"slice{i}"
            folder.mkdir()
            ctx["slices"].append(
                {
                    key: write_script(folder, key, client_cookies[i::n], prac_cookies)
                    for key in [k for k, _ in ROUTES] + ["mixed"]
                }
            )
        log(
            f"  {n} disjoint sets of {len(client_cookies) // n} clients: one per configuration"
            + (" and one for the profile run" if args.profile != "off" else "")
        )

    # Sign in on a server of its own, so that every measured configuration has served the
    # same requests (sign-in's scrypt would otherwise raise the first one's peak memory).
    setup = Server(env, args.port, 2, 1, work / "serve.log").start()
    on_start(setup)
    setup.stop()
    _cleanup.remove(setup.stop)
    log(
        f"wrk: {args.wrk_threads} threads, {args.connections} connections, {args.duration:g} s a"
        f" run; check-in rate limit "
        + (
            f"COMPANION_CHECKIN_RATE_PER_HOUR={args.checkin_rate_per_hour} (the benchmark's"
            f" clients post far more than a phone would)"
            if args.checkin_rate_per_hour
            else "the app's default"
        )
        + f"; host: {os.cpu_count()} cores, load average {loadavg():.2f}"
    )
    results = []
    order = [c for r in range(args.rounds) for c in (configs if r % 2 == 0 else configs[::-1])]
    for i, (w, t) in enumerate(order):
        if args.rounds > 1 and i % len(configs) == 0:
            log(f"\n-- round {i // len(configs) + 1} of {args.rounds} --")
        profile = [k for k, _ in ROUTES[1:]] if args.profile == "on" and i == 0 else []
        out = measure_config(ctx, w, t, profile, i)
        missed = [key for key in PROFILED if missed_target(out["results"][key], key)]
        if i == 0 and args.profile == "auto" and missed:
            log(
                f"\n(targets missed on {', '.join(missed)}: measuring the primary configuration"
                " again with py-spy on its workers)"
            )
            out["profiles"] = measure_profile_only(ctx, w, t, ctx["slices"][-1], missed)
            for prof in out["profiles"]:
                print_profile(prof)
        results.append(out)
    print_summary(combine(results, configs), args)
    log(
        f"\nload average at the end: {loadavg():.2f}; wrk output in {work / 'wrk.log'},"
        f" server log in {work / 'serve.log'}"
    )


def measure_profile_only(
    ctx: dict, workers: int, threads: int, scripts: dict, keys: list[str]
) -> list[dict]:
    wait_for_quiet()
    server = Server(
        ctx["env"], ctx["args"].port, workers, threads, ctx["work"] / "serve.log"
    ).start()
    drive(ctx, server, scripts["mixed"], 3)
    try:
        return [profile_route(ctx, server, scripts, key) for key in keys]
    finally:
        server.stop()
        _cleanup.remove(server.stop)


def print_profile(prof: dict) -> None:
    res = prof["result"]
    log(
        f"profile (py-spy, 200 Hz, every worker, non-idle threads) of an extra run of"
        f" {dict(ROUTES)[prof['route']]}:"
        f" {res['rps']:.0f} req/s, p99 {res['p99_us'] / 1000:.1f} ms, {prof['samples']} samples"
    )
    log("  self time:")
    for name, n in prof["self"][:18]:
        log(f"    {100 * n / prof['samples']:5.1f}%  {name}")
    log("  inclusive, the app's own functions and the layers it calls into:")
    shown = 0
    for name, n in prof["inclusive"]:
        if shown >= 30:
            break
        if not any(
            s in name
            for s in (
                "(companion/",
                "(flask_login/",
                "(jinja2/environment",
                "(flask/app.py",
                "(itsdangerous/",
                "(gunicorn/http/wsgi",
                "(gunicorn/util",
            )
        ):
            continue
        log(f"    {100 * n / prof['samples']:5.1f}%  {name}")
        shown += 1
    log(
        "  (self time of one()/rows()/write()/connect() in companion/db.py is time inside"
        " SQLite's C code, called from them)"
    )


if __name__ == "__main__":
    main()
