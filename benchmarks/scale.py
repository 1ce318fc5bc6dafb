"""Generate a large clinic network in one SQLite file, then time the practitioner review paths.

Generation writes rows straight into SQLite (executemany, one transaction per chunk of clinics,
secondary indexes built after the load) in the schema of the app's own migrations, and the rows
are what the app itself writes: check-ins scored by triage.assess, flags opened and escalated by
triage.reconcile, reminders planned by planning.plan. Other scripts reuse `generate()`.

The timings go through the real app (Flask's test client, signed in as the clinic's
practitioner): the queue (JSON and page), a client's timeline page, the client export, erasure.
"""

import argparse
import base64
import functools
import gc
import hashlib
import json
import math
import multiprocessing
import os
import random
import re
import resource
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from itertools import count, islice
from pathlib import Path
from zoneinfo import ZoneInfo

from tabulate import tabulate
from werkzeug.security import generate_password_hash

from companion import migrations
from companion.accounts.clients import get_client
from companion.checkins import triage
from companion.clinical import SYMPTOMS, WARNING_SIGNS
from companion.db import connect, get_db
from companion.reminders.planning import plan
from companion.reminders.protocol import DEFAULT_STEPS
from companion.review import charts, exports
from companion.review.queue import counts, queue
from companion.review.timeline import timeline
from testkit import bench
from testkit.bench import host_load, percentile

PASSWORD = "benchmark-practitioner-password"  # every generated practitioner's password
FULL = {"clinics": 1000, "clients": 100_000, "sessions": 300_000, "checkins": 2_000_000}
NOTIFY_DAYS = 366  # plan reminders (15 rows a session) for sessions this recent: all of them
SESSIONS_PER_CHUNK = 4000
TIMEZONES = {"Europe/London": 30, "Europe/Dublin": 3, "Europe/Paris": 8, "Europe/Berlin": 8}
TIMEZONES |= {"Europe/Madrid": 5, "America/New_York": 15, "America/Chicago": 8}
TIMEZONES |= {"America/Los_Angeles": 10, "America/Toronto": 4, "Australia/Sydney": 6}
TIMEZONES |= {"Pacific/Auckland": 2, "Asia/Singapore": 1}
# Hours after the session when clients answer: the protocol's check-ins first, then extras.
ANCHOR_HOURS = (24, 48, 72, 120, 168, 4, 96, 240, 10, 336)
ANSWER_DELAY_H = 6.0
DEPTHS = {0.25: 10, 0.5: 30, 0.75: 10, 1.0: 20, 1.5: 15, 2.0: 10, 2.5: 5}
AREAS = ("face", "forehead", "cheeks", "under eyes", "neck", "décolletage", "scalp", "scars")
PRODUCTS = ("hyaluronic serum", "peptide serum", "growth factor serum", "PRP", "vitamin C serum")
FIRST = (
    "Amelia Olivia Isla Ava Mia Sophia Grace Lily Emily Chloe Zoe Hannah Noah Liam James Lucas"
    " Ethan Maya Priya Aisha Sofia Elena Camille Lea Yuki Mei Fatima Nora Ruth Ines"
)
LAST = (
    "Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Khan Garcia Martin Rossi"
    " Müller Dubois Kowalski Nguyen Chen O'Brien Murphy Evans Thomas Roberts Walker Wright Hughes"
)
FIRST, LAST = FIRST.split(), LAST.split()
# Abnormal recoveries (a share of sessions) and how often each kind happens.
ABNORMAL = 0.05
KINDS = {"redness": 25, "worse": 20, "swelling": 12, "pain": 10, "bumps": 10, "patches": 5}
KINDS |= {"bruising": 6, "infection": 7, "blisters": 3, "eye": 2}
NOTES = (
    "Still a bit tight.",
    "Looks better than yesterday.",
    "Some flaking on the chin.",
    "It itches in the evening.",
    "Feels warm to the touch.",
    "Red patch on the left cheek.",
)
RESOLUTIONS = (
    "Called the client; settling as expected.",
    "Reviewed the photo: within normal range.",
    "Advised a cold compress and an antihistamine; follow-up call booked.",
    "Seen in clinic today; healing well.",
    "Referred to GP; antibiotics started.",
    "Client reassured; continue aftercare.",
)
NO_DEVICE = "no subscribed device (shown in the app's inbox)"
ALL_GONE = "every device unsubscribed (shown in the app's inbox)"
ADDRESS = "203.0.113.10"
AGENTS = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Safari/604.1",
)

# Tables in insert order, parents before children. A row is a tuple of the table's columns in
# the migrated schema's order, leaving out the ids SQLite assigns (ASSIGNED_IDS) and the columns
# later migrations appended (they keep their defaults).
TABLES = ("clinics", "protocols", "practitioners", "clients", "invites", "treatment_sessions")
TABLES += ("push_subscriptions", "checkins", "photos", "flags", "flag_events", "notifications")
TABLES += ("deliveries", "audit_log")
ASSIGNED_IDS = {"invites", "flag_events", "deliveries", "audit_log"}


# -- the skeleton: who exists and when sessions happened (in the main process, so that every
# chunk knows its ids in advance) ------------------------------------------------------------


def _split(total: int, weights: list[float]) -> list[int]:
    """Split total into len(weights) parts of at least 1, proportional to the weights."""
    scale = (total - len(weights)) / sum(weights)
    parts = [1 + int(w * scale) for w in weights]
    order = sorted(range(len(weights)), key=lambda i: weights[i] * scale % 1, reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _adjust(values: list[int], target: int, lows: list, highs: list, rng: random.Random) -> None:
    """Nudge random entries by one, within their bounds, until they sum to target."""
    diff = max(sum(lows), min(target, sum(highs))) - sum(values)
    while diff:
        i, step = rng.randrange(len(values)), 1 if diff > 0 else -1
        if lows[i] <= values[i] + step <= highs[i]:
            values[i] += step
            diff -= step


def _session_times(rng: random.Random, n: int, zone: ZoneInfo, now: datetime) -> list[datetime]:
    """Spread a client's n sessions 4-6 weeks apart within the last year, in opening hours."""
    gap = rng.uniform(26, 42)
    if n > 1 and (n - 1) * gap > 350:
        gap = 350 / (n - 1)
    start, out = rng.uniform((n - 1) * gap, 364), []
    for i in range(n):
        days_ago = max(0.05, start - i * gap + rng.uniform(-2, 2))
        day = (now - timedelta(days=days_ago)).astimezone(zone).date()
        local = datetime.combine(day, clock(rng.randint(9, 18), rng.choice((0, 15, 30, 45))), zone)
        when = local.astimezone(UTC)
        while when > now - timedelta(minutes=30):
            when -= timedelta(days=1)
        out.append(when)
    return sorted(out)


def skeleton(scale: float, seed: int, now: datetime, notify_days: float) -> list[tuple]:
    """Return clinics as (id, tz, practitioner ids, clients); clients as (id, sub ids, sessions);
    sessions as [id, performed_at timestamp, check-in count, first notification id or None,
    practitioner id]."""
    rng = random.Random(f"{seed}:skeleton")
    n_clinics = max(1, round(FULL["clinics"] * scale))
    n_clients = max(n_clinics, round(FULL["clients"] * scale))
    n_sessions = max(n_clients, round(FULL["sessions"] * scale))
    sizes = _split(n_clients, [math.exp(rng.gauss(0, 0.9)) for _ in range(n_clinics)])
    per_client = [min(12, 1 + int(rng.expovariate(1 / 2.47))) for _ in range(n_clients)]
    _adjust(per_client, n_sessions, [1] * n_clients, [12] * n_clients, rng)
    notify_from = now - timedelta(days=notify_days)
    practitioner_ids, client_ids, session_ids, sub_ids = count(1), count(1), count(1), count(1)
    notifications = 0  # rows planned so far
    clinics, flat, caps = [], [], []
    sizes_iter = iter(per_client)
    for c in range(n_clinics):
        tz = rng.choices(list(TIMEZONES), list(TIMEZONES.values()))[0]
        pracs = [next(practitioner_ids) for _ in range(rng.randint(2, 5))]
        clients = []
        for client_id in islice(client_ids, sizes[c]):
            sessions = []
            for when in _session_times(rng, next(sizes_iter), ZoneInfo(tz), now):
                base = notifications if when >= notify_from else None
                notifications += len(DEFAULT_STEPS) if base is not None else 0
                sessions.append([next(session_ids), when.timestamp(), 0, base, rng.choice(pracs)])
                age_h = (now - when).total_seconds() / 3600
                caps.append(sum(1 for a in ANCHOR_HOURS if a + ANSWER_DELAY_H <= age_h))
            flat.extend(sessions)
            subs = [next(sub_ids) for _ in range(rng.choices((0, 1, 2), (25, 65, 10))[0])]
            clients.append((client_id, subs, sessions))
        clinics.append((c + 1, tz, pracs, clients))
    counts = [min(cap, max(3, min(10, round(rng.gauss(6.67, 1.6))))) for cap in caps]
    _adjust(counts, round(FULL["checkins"] * scale), [0] * len(caps), caps, rng)
    for session, n in zip(flat, counts, strict=True):
        session[2] = n
    return clinics


# -- rows for one chunk of clinics (runs in a worker process) ----------------------------------


def iso(dt: datetime | None) -> str | None:
    """companion.db.iso for the UTC datetimes made here, at a third of strftime's cost."""
    if dt is None:
        return None
    fields = (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % fields  # noqa: UP031 (faster than an f-string)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _b64(rng: random.Random, n: int) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(n)).rstrip(b"=").decode()


@functools.cache
def _flags_json(keys: tuple[str, ...], on: frozenset) -> str:
    """The JSON the app stores for a symptoms or warning_signs object (every key, booleans)."""
    return json.dumps({k: k in on for k in keys})


ELIGIBLE = {  # when in the recovery each abnormal kind can show (hours after the session)
    "blisters": lambda h, depth: 12 <= h < 96,
    "eye": lambda h, depth: h < 48,
    "bumps": lambda h, depth: h >= 72,
    "patches": lambda h, depth: h >= 72 * triage.downtime_hours(depth) / 72,
    "bruising": lambda h, depth: h >= 168,
}


def _abnormal_at(rng: random.Random, kind: str | None, hours: list[float], depth: float) -> dict:
    """Choose which check-ins an abnormal recovery shows in: {index: kind}."""
    eligible = ELIGIBLE.get(kind, lambda h, depth: h >= 44)
    found = [i for i, h in enumerate(hours) if eligible(h, depth)] if kind else []
    if not found:
        return {}
    first = rng.choice(found)
    lasting = kind in ("redness", "bumps", "patches", "infection")
    last = min(first + (rng.randint(0, 2) if lasting else 0), len(hours) - 1)
    return dict.fromkeys(range(first, last + 1), kind)


def _scores(rng: random.Random, hours: list[float], depth: float, kind: str | None) -> list[tuple]:
    """Score each check-in: the expected course, fading, plus any abnormal findings."""
    settle = triage.downtime_hours(depth) * rng.uniform(0.7, 1.1)
    r0, s0 = rng.choice((2, 3, 3, 3, 4)), rng.choice((1, 1, 2, 2, 3))
    p0 = rng.choice((0, 1, 2, 2, 3, 4))
    special = _abnormal_at(rng, kind, hours, depth)
    pr, ps, pp, out = 4, 4, 10, []
    for i, h in enumerate(hours):
        band = triage.expected_band(h, depth)
        r = min(band["redness"], pr, round(r0 * max(0.0, 1 - h / settle)))
        s = min(band["swelling"], ps, round(s0 * max(0.0, 1 - h / (settle * 0.8))))
        p = min(pp, round(p0 * max(0.0, 1 - h / 72)))
        symptoms, warnings = set(), set()
        if h < 24 and rng.random() < 0.2:
            symptoms.add("oozing")
        if 24 <= h <= 200 and rng.random() < 0.25:
            symptoms.add(rng.choice(("peeling", "itching")))
        if h < 120 and rng.random() < 0.04:
            symptoms.add("bruising")
        what = special.get(i)
        if what == "redness":
            r = min(4, band["redness"] + 1)
        elif what == "worse":
            r = min(4, pr + 1) if pr < 4 else r
            s = min(4, s + 1) if r == 4 else s
        elif what == "swelling":
            s = min(4, max(ps + 1, band["swelling"] + 1))
        elif what == "pain":
            p = rng.randint(7, 9)
        elif what == "infection":
            warnings.add(rng.choice(("spreading_redness", "pus", "fever")))
            r = max(r, 3)
        elif what == "eye":
            warnings.add("eye_or_breathing")
            s = max(s, 3)
        elif what == "blisters":
            warnings.add("blisters")
        elif what in ("bumps", "patches", "bruising"):
            symptoms.add(what)
        pr, ps, pp = r, s, p
        out.append((r, s, p, frozenset(symptoms), frozenset(warnings), bool(what)))
    return out


class Chunk:
    """Build every row of a chunk of clinics; flag ids are chunk-local (the loader offsets them)."""

    def __init__(self, index: int, seed: int, now: datetime):
        self.rng, self.now = random.Random(f"{seed}:chunk:{index}"), now
        self.rows = {table: [] for table in TABLES}
        self.flag_ids = count()

    def add(self, table: str, *values) -> None:
        self.rows[table].append(values)

    def audit(self, at: datetime, actor: int, client: dict, action: str, detail=None) -> None:
        where = (client["clinic_id"], client["id"], action, detail, ADDRESS)
        self.add("audit_log", iso(at), "practitioner", actor, *where)

    def client(self, client: dict, pracs: list[int], sub_ids: list[int], sessions: list) -> None:
        rng, client_id = self.rng, client["id"]
        first = datetime.fromtimestamp(sessions[0][1], UTC)
        created = first - timedelta(days=rng.uniform(0, 14))
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        email = f"client{client_id}@mail.example.net" if rng.random() < 0.8 else None
        client["quiet"] = ("21:00", "08:00") if rng.random() < 0.85 else ("22:00", "07:00")
        mobile, discreet = f"+44 7700 {client_id % 1000000:06d}", int(rng.random() < 0.1)
        row = (client_id, client["clinic_id"], name, email, mobile, client["tz"], *client["quiet"])
        self.add("clients", *row, discreet, iso(created), iso(created))
        by = rng.choice(pracs)
        token = hashlib.sha256(f"invite:{client_id}".encode()).hexdigest()
        week, used = iso(first + timedelta(days=7)), iso(first + timedelta(minutes=10))
        self.add("invites", client_id, token, by, iso(first), week, used, None)
        self.audit(created, by, client, "client_created")
        self.audit(first, by, client, "invite_issued")
        subs = []
        for k, sub_id in enumerate(sub_ids):
            made = first + timedelta(minutes=12)
            if k:
                made = datetime.fromtimestamp(rng.choice(sessions)[1], UTC) + timedelta(minutes=30)
            gone = made + timedelta(days=rng.uniform(10, 300)) if rng.random() < 0.08 else None
            subs.append({"id": sub_id, "created": made, "gone_after": gone})
        for session in sessions:
            self.session(client, pracs, session, subs)
        for k, s in enumerate(subs):
            endpoint = f"https://fcm.googleapis.com/fcm/send/bench-{s['id']}:{_b64(rng, 24)}"
            keys = (_b64(rng, 65), _b64(rng, 16))
            seen = (s["created"], s.get("last_success"), s.get("gone_at"))
            row = (s["id"], "client", client_id, endpoint, *keys, AGENTS[k % 2], *map(iso, seen))
            self.add("push_subscriptions", *row)

    def session(self, client: dict, pracs: list[int], session: list, subs: list[dict]) -> None:
        rng = self.rng
        session_id, stamp, n_checkins, notif_base, practitioner_id = session
        performed = datetime.fromtimestamp(stamp, UTC)
        recorded = min(self.now, performed + timedelta(minutes=rng.uniform(5, 90)))
        depth = rng.choices(list(DEPTHS), list(DEPTHS.values()))[0]
        areas = rng.sample(AREAS[:5], rng.randint(1, 3)) if rng.random() < 0.9 else ["scars"]
        products = json.dumps(rng.sample(PRODUCTS, rng.randint(0, 2)))
        notes = "Tolerated well." if rng.random() < 0.3 else ""
        device = rng.choice(("pen", "pen", "pen", "roller"))
        who = (session_id, client["clinic_id"], client["id"], practitioner_id, client["clinic_id"])
        what = (iso(performed), json.dumps(areas), depth, device, products, notes)
        self.add("treatment_sessions", *who, *what, iso(recorded), iso(recorded))
        self.audit(recorded, practitioner_id, client, "session_created", f"session={session_id}")
        self.checkins(client, pracs, session_id, performed, depth, n_checkins)
        if notif_base is not None:
            self.notifications(client, session_id, performed, recorded, notif_base, subs)

    def checkins(self, client, pracs, session_id, performed, depth, n) -> None:
        rng, now = self.rng, self.now
        age_h = (now - performed).total_seconds() / 3600
        chosen = [a for a in ANCHOR_HOURS if a + ANSWER_DELAY_H <= age_h][:n]
        hours = sorted(a + rng.uniform(0, ANSWER_DELAY_H) for a in chosen)
        odds = rng.random() < ABNORMAL
        kind = rng.choices(list(KINDS), list(KINDS.values()))[0] if odds else None
        triage_session = {"performed_at": performed, "needle_depth_mm": depth}
        who = (client["id"], client["clinic_id"], session_id)
        history, held, flags = [], {}, []
        for h, score in zip(hours, _scores(rng, hours, depth, kind), strict=True):
            r, s, p, symptoms, warnings, odd = score
            checkin_id, taken = _uuid(rng), performed + timedelta(hours=h)
            late = rng.uniform(300, 6 * 3600) if rng.random() < 0.04 else rng.uniform(0.3, 20)
            received = min(now, taken + timedelta(seconds=late))
            history.append({"id": checkin_id, "taken_at": taken, "redness": r, "swelling": s})
            history[-1].update(pain=p, symptoms=dict.fromkeys(symptoms, True))
            history[-1]["warning_signs"] = dict.fromkeys(warnings, True)
            assessment = triage.assess(triage_session, history, client["phone"])
            note = rng.choice(NOTES) if rng.random() < (0.4 if odd else 0.04) else ""
            stored = (_flags_json(SYMPTOMS, symptoms), _flags_json(WARNING_SIGNS, warnings), note)
            at, verdict = (iso(taken), iso(received)), json.dumps(assessment)
            self.add("checkins", checkin_id, *who, *at, r, s, p, *stored, verdict)
            if rng.random() < (0.4 if assessment["flags"] else 0.025):
                for _ in range(1 if rng.random() < 0.8 else 2):
                    photo_id = _uuid(rng)
                    size = rng.choice(((1280, 960), (960, 1280), (1600, 1200)))
                    row = (photo_id, checkin_id, client["id"], f"{client['id']}/{photo_id}.jpg")
                    self.add("photos", *row, *size, rng.randint(90_000, 420_000), iso(received))
            # What the app does with the findings: one open flag per session and rule.
            for action in triage.reconcile(list(held.values()), assessment["flags"]):
                rule, severity, reason = action["rule"], action["severity"], action["reason"]
                if action["action"] == "open":
                    held[rule] = {"id": next(self.flag_ids), "rule": rule, "opened": received}
                    held[rule]["events"] = []
                    flags.append(held[rule])
                flag = held[rule]
                flag.update(severity=severity, reason=reason, updated=received)
                flag["checkin_id"] = checkin_id
                event = (received, "triage", None, action["action"], severity, reason)
                flag["events"].append(event)
        for flag in flags:
            self.handle(client, pracs, session_id, flag)

    def handle(self, client: dict, pracs: list[int], session_id: int, flag: dict) -> None:
        """Play out the practitioner's side of a flag: acknowledge, call, resolve (or not yet)."""
        rng, now, events = self.rng, self.now, flag["events"]
        severity, opened = flag["severity"], flag["opened"]
        # (all three delays are drawn, so that a seed keeps giving the same data)
        ack_h = {"urgent": rng.uniform(0.1, 1.5), "review": rng.uniform(0.5, 10)}
        ack_h = ack_h.get(severity, rng.uniform(2, 48))
        by = rng.choice(pracs)
        ack = opened + timedelta(hours=ack_h)
        status, called, resolved, note = "open", None, None, None
        forgotten = rng.random()
        if ack <= now and forgotten > 0.01:  # 1% never acknowledged, 4% never resolved
            status = "acknowledged"
            events.append((ack, "practitioner", by, "acknowledge", None, None))
            if severity == "urgent":
                called = ack + timedelta(minutes=rng.uniform(1, 30))
                if called <= now:
                    events.append((called, "practitioner", by, "called", None, None))
                else:
                    called = None
            done = max(ack, flag["updated"]) + timedelta(hours=rng.uniform(2, 72))
            if done <= now and forgotten > 0.05:
                status, resolved, note = "resolved", done, rng.choice(RESOLUTIONS)
                events.append((resolved, "practitioner", by, "resolve", None, None))
        fid, who = flag["id"], (client["clinic_id"], client["id"], session_id, flag["checkin_id"])
        what = (flag["rule"], severity, status, flag["reason"], iso(opened))
        acked = (iso(ack), by) if status != "open" else (None, None)
        closed = (iso(called), iso(resolved), by if resolved else None, note)
        updated = iso(max(e[0] for e in events))
        self.add("flags", fid, *who, *what, updated, *acked, *closed)
        for at, actor_kind, actor, action, sev, reason in sorted(events, key=lambda e: e[0]):
            text = note if action == "resolve" else None
            self.add("flag_events", fid, iso(at), actor_kind, actor, action, sev, reason, text)
            if actor_kind == "practitioner":
                self.audit(at, actor, client, f"flag_{action}", f"flag={fid}")

    def notifications(self, client, session_id, performed, recorded, base, subs) -> None:
        """Plan the session's reminders as the app does, and settle those already due as the
        dispatcher would (sent, skipped with why, a few retried or gone)."""
        rng, now, deliver = self.rng, self.now, self.rows["deliveries"].append
        ms = rng.uniform  # a delivery's elapsed_ms
        planned = plan(performed, DEFAULT_STEPS, client["tz"], *client["quiet"], recorded)
        for k, row in enumerate(planned):
            nid, due, status = base + k + 1, row["due_at"], row["status"]
            reason, attempts, sent, next_at = row["skip_reason"], 0, None, due
            if status == "pending" and due <= now:
                attempts, delivered = 1, 0
                live = [s for s in subs if s["created"] <= due and not s.get("gone_at")]
                retry = rng.random() < 0.02
                for s in live:
                    at = due + timedelta(seconds=rng.uniform(0.2, 3))
                    if s["gone_after"] and due >= s["gone_after"]:
                        s["gone_at"] = at
                        deliver((nid, s["id"], 1, iso(at), 410, "gone", "HTTP 410", ms(60, 300)))
                        continue
                    if retry:
                        deliver((nid, s["id"], 1, iso(at), 503, "retry", "HTTP 503", ms(60, 300)))
                        at += timedelta(seconds=rng.uniform(30, 60))
                        attempts = 2
                    took = ms(60, 400)
                    deliver((nid, s["id"], attempts, iso(at), 201, "delivered", "", took))
                    s["last_success"] = max(s.get("last_success") or at, at)
                    delivered, sent = delivered + 1, at
                if delivered:
                    status, next_at = "sent", (sent if attempts == 2 else due)
                else:
                    status, reason, sent = "skipped", ALL_GONE if live else NO_DEVICE, None
            url = f"/checkin?session={session_id}" if row["kind"] == "checkin" else "/reminders"
            owner = ("client", client["id"], client["clinic_id"], client["id"], session_id, None)
            text = (row["step_key"], row["kind"], row["title"], row["body"], url, "normal")
            when = (iso(due), iso(row["expires_at"]), status, reason, attempts, iso(next_at))
            leased_sent = (None, None, iso(sent), iso(recorded))
            self.add("notifications", nid, *owner, *text, *when, *leased_sent)


def build_chunk(args: tuple) -> dict:
    """Worker entry point: all rows of a chunk of clinics."""
    index, seed, now_ts, clinics = args
    chunk = Chunk(index, seed, datetime.fromtimestamp(now_ts, UTC))
    for clinic_id, tz, pracs, clients in clinics:
        phone = f"+44 20 7946 {clinic_id % 10000:04d}"
        for client_id, sub_ids, sessions in clients:
            client = {"id": client_id, "clinic_id": clinic_id, "tz": tz, "phone": phone}
            chunk.client(client, pracs, sub_ids, sessions)
    return chunk.rows


# -- loading ------------------------------------------------------------------------------------


def _chunks(clinics: list[tuple]) -> list[list[tuple]]:
    out, current, n = [], [], 0
    for clinic in clinics:
        current.append(clinic)
        n += sum(len(c[2]) for c in clinic[3])
        if n >= SESSIONS_PER_CHUNK:
            out.append(current)
            current, n = [], 0
    return out + ([current] if current else [])


def _insert(db, rows: dict, counts: dict) -> None:
    with db.conn:
        for table in TABLES:
            if rows.get(table):
                columns = [c.name for c in db[table].columns]
                if table in ASSIGNED_IDS:
                    columns.remove("id")
                columns = columns[: len(rows[table][0])]
                values = ", ".join("?" * len(columns))
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"
                db.conn.executemany(sql, rows[table])
                counts[table] += len(rows[table])


def generate(path: str, scale=1.0, seed=1, *, notify_days=NOTIFY_DAYS, workers=None, log=print):
    """Write a clinic network of the given scale into a new SQLite file at path; return
    describe(path) with the generation's settings, time and row counts."""
    started = time.perf_counter()
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    now = datetime.now(UTC)
    clinics = skeleton(scale, seed, now, notify_days)
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    # Fork the workers before opening the database: no connection crosses a fork.
    pool = multiprocessing.get_context("fork").Pool(workers) if workers else None
    db = connect(path)
    migrations.apply(db)
    conn = db.conn
    conn.execute("PRAGMA foreign_keys = OFF")  # ids are consistent by construction
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    # Build the secondary indexes once, after the load, from the migrations' own SQL.
    indexes = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    indexes = conn.execute(indexes).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    password_hash = generate_password_hash(PASSWORD)  # once: scrypt is slow on purpose
    rng, steps = random.Random(f"{seed}:clinics"), json.dumps(DEFAULT_STEPS)
    opened = iso(now - timedelta(days=400))
    head = {t: [] for t in ("clinics", "protocols", "practitioners")}
    for clinic_id, tz, pracs, _ in clinics:
        phone = f"+44 20 7946 {clinic_id % 10000:04d}"
        name = f"{rng.choice(LAST)} Skin Clinic {clinic_id}"
        head["clinics"].append((clinic_id, name, phone, tz, opened))
        head["protocols"].append((clinic_id, clinic_id, 1, steps, None, opened))
        for k, pid in enumerate(pracs):
            name = f"Dr {rng.choice(FIRST)} {rng.choice(LAST)}"
            email = f"practitioner{k + 1}@clinic{clinic_id}.example.net"
            who = (pid, clinic_id, email, name, password_hash, 1)
            head["practitioners"].append((*who, "urgent" if k else "urgent,review", opened))
    counts = dict.fromkeys(TABLES, 0)
    _insert(db, head, counts)
    jobs = [(i, seed, now.timestamp(), chunk) for i, chunk in enumerate(_chunks(clinics))]
    # In order, as the workers finish them (building a chunk takes far longer than inserting it,
    # so finished chunks do not pile up in memory).
    built, next_flag = pool.imap(build_chunk, jobs) if pool else map(build_chunk, jobs), 1
    for done, rows in enumerate(built, 1):
        # Flag ids are chunk-local: shift them into the global sequence.
        rows["flags"] = [(f[0] + next_flag, *f[1:]) for f in rows["flags"]]
        rows["flag_events"] = [(e[0] + next_flag, *e[1:]) for e in rows["flag_events"]]
        next_flag += len(rows["flags"])
        _insert(db, rows, counts)
        if done % 10 == 0 or done == len(jobs):
            took = time.perf_counter() - started
            log(f"  chunk {done}/{len(jobs)}: {counts['checkins']:,} check-ins, {took:.0f} s")
    if pool:
        pool.close()
        pool.join()
    t_index = time.perf_counter()
    for _, sql in indexes:
        conn.execute(sql)
    log(f"  indexes built in {time.perf_counter() - t_index:.0f} s")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    meta = {"scale": scale, "seed": seed, "generated_at": iso(now), "notify_days": notify_days}
    meta |= {"seconds": round(time.perf_counter() - started, 1), "counts": counts}
    meta["cpu_seconds"] = round(sum(u.ru_utime + u.ru_stime for u in usage), 1)
    Path(path + ".meta.json").write_text(json.dumps(meta, indent=2))
    return dict(describe(path), **meta)


def describe(path: str) -> dict:
    """Read back what other scripts need: practitioners, client ids per clinic, busy clinics."""
    db = connect(path)
    sql = "SELECT clinic_id, email FROM practitioners ORDER BY clinic_id, id"
    practitioners = [tuple(p) for p in db.conn.execute(sql)]
    clients: dict[int, list[int]] = {}
    for clinic_id, client_id in db.conn.execute("SELECT clinic_id, id FROM clients ORDER BY id"):
        clients.setdefault(clinic_id, []).append(client_id)
    history: dict[int, list[int]] = {}  # a year of history: 8+ sessions spanning 300+ days
    for clinic_id, client_id in db.conn.execute(
        "SELECT min(clinic_id), client_id FROM treatment_sessions GROUP BY client_id HAVING"
        " count(*) >= 8 AND julianday(max(performed_at)) - julianday(min(performed_at)) >= 300"
    ):
        history.setdefault(clinic_id, []).append(client_id)
    db.close()
    return {
        "path": path,
        "password": PASSWORD,
        "practitioners": practitioners,
        "clients_by_clinic": clients,
        "history_clients_by_clinic": history,
        "busy_clinics": sorted(clients, key=lambda c: len(clients[c]), reverse=True),
    }


# -- measuring ----------------------------------------------------------------------------------


@contextmanager
def timer(timings: dict, name: str, record: bool = True):
    """Wall-clock and this thread's CPU milliseconds: the host may be shared, CPU time is not."""
    wall, cpu = time.perf_counter(), time.thread_time()
    yield
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    if record:
        timings.setdefault(name, []).append((wall * 1000, cpu * 1000))


PAGES = {
    "GET /api/flags (queue JSON)": "/api/flags",
    "GET /clinic/ (queue page)": "/clinic/",
    "GET /clinic/clients/<id> (timeline page)": "/clinic/clients/{c}",
    "GET /api/clients/<id>/export (JSON)": "/api/clients/{c}/export",
    "GET /api/clients/<id>/export?format=csv": "/api/clients/{c}/export?format=csv",
}
SQL, CHARTS = "  of which review.timeline() (SQL)", "  of which charts.chart_for()"


def measure(app, info: dict, samples: int, erase: int) -> dict[str, list[tuple]]:
    """Time the review paths through the app for random busy clinics and year-long clients,
    then `erase` DELETE /api/clients/<id> (the data is really erased)."""
    rng = random.Random(f"{info['seed']}:measure")
    emails = dict(reversed(info["practitioners"]))  # each clinic's first practitioner
    history = info["history_clients_by_clinic"]
    # Busy: the fifth of clinics with the most clients (and a client with a year of history).
    busy = info["busy_clinics"][: max(1, len(info["busy_clinics"]) // 5)]
    busy = [c for c in busy if c in history]
    picks = rng.sample(busy, samples) if len(busy) >= samples else rng.choices(busy, k=samples)
    names = [*PAGES][:3] + [SQL, CHARTS] + [*PAGES][3:]
    timings: dict[str, list[tuple]] = {name: [] for name in names}

    def signed_in(clinic_id: int):
        http = app.test_client()
        r = http.post("/api/auth/login", json={"email": emails[clinic_id], "password": PASSWORD})
        assert r.status_code == 200, r.get_data(as_text=True)
        return http

    warmup = 3  # not counted
    for n, clinic_id in enumerate(picks[:warmup] + picks):
        http, client_id, counted = signed_in(clinic_id), rng.choice(history[clinic_id]), n >= warmup
        for name, url in PAGES.items():
            with timer(timings, name, counted):
                r = http.get(url.format(c=client_id))
            assert r.status_code == 200, (url, r.status_code)
        # Where the timeline page's time goes: its queries, and its charts (as the view draws them;
        # in a request context, as templates' context processors read the signed-in user).
        with app.test_request_context():
            db = get_db()
            client = get_client(db, client_id, clinic_id)
            with timer(timings, SQL, counted):
                record = timeline(db, client)
            with timer(timings, CHARTS, counted):
                for s in [s for s in record["sessions"] if s["checkins"]]:
                    flagged = {f["checkin_id"] for f in s["flags"] if f["checkin_id"]}
                    charts.chart_for(s["raw"], s["checkins"], flagged)
    for clinic_id in rng.sample(busy, min(erase, len(busy))):
        http, client_id = signed_in(clinic_id), rng.choice(info["clients_by_clinic"][clinic_id])
        with timer(timings, "DELETE /api/clients/<id> (erasure)"):
            r = http.delete(f"/api/clients/{client_id}")
        assert r.status_code == 204, r.get_data(as_text=True)
    return timings


BIG = set(TABLES) - {"clinics", "protocols", "practitioners"}
NOT_ALIAS = {"WHERE", "JOIN", "LEFT", "ON", "ORDER", "GROUP", "LIMIT"}


def full_scans(sql: str, steps: list[str]) -> list[str]:
    """Plan steps that read a whole big table, or the whole of an index on one."""
    names = {}
    for table, alias in re.findall(r"(?:FROM|JOIN)\s+(\w+)(?:\s+(?:AS\s+)?(\w+))?", sql, re.I):
        names[table] = table
        if alias and alias.upper() not in NOT_ALIAS:
            names[alias] = table
    return [s for s in steps if s.startswith("SCAN ") and names.get(s.split()[1]) in BIG]


def print_plans(info: dict) -> None:
    """EXPLAIN QUERY PLAN every distinct statement the review functions run, as they run it,
    marking the full scans of big tables."""
    db = connect(info["path"])
    history, clients = info["history_clients_by_clinic"], info["clients_by_clinic"]
    clinic_id = max(history, key=lambda c: len(clients[c]))
    client = get_client(db, history[clinic_id][0], clinic_id)
    resolved = {"statuses": ("resolved",), "severity": "review", "practitioner_id": 1}
    seen: dict[str, tuple[str, str]] = {}  # by shape: the statement with its literals as ?
    for label, call in (
        ("queue", lambda: queue(db, clinic_id)),
        ("queue", lambda: queue(db, clinic_id, **resolved)),
        ("counts", lambda: counts(db, clinic_id)),
        ("timeline", lambda: timeline(db, client)),
        ("export", lambda: exports.client_bundle(db, client)),
        ("export csv", lambda: exports.client_checkin_rows(db, client)),
    ):
        ran: list[str] = []
        db.conn.set_trace_callback(ran.append)
        call()
        db.conn.set_trace_callback(None)
        for sql in [s for s in ran if s.lstrip().upper().startswith("SELECT")]:
            shape = re.sub(r"'[^']*'|\b\d+(\.\d+)?\b", "?", sql)
            shape = re.sub(r"\?(, ?\?)+", "?", " ".join(shape.split()))
            seen.setdefault(shape, (label, sql))
    print("\nQuery plans (EXPLAIN QUERY PLAN of each statement the review code runs):")
    problems = 0
    for what, sql in seen.values():
        steps = [r[3] for r in db.conn.execute("EXPLAIN QUERY PLAN " + sql)]
        sql = " ".join(sql.split())
        print(f"\n[{what}] {sql[:300]}{' ...' if len(sql) > 300 else ''}")
        scans = full_scans(sql, steps)
        problems += len(scans)
        for s in steps:
            print(f"    {s}{'   <-- FULL SCAN of a big table' if s in scans else ''}")
    db.close()
    sorts = "USE TEMP B-TREE lines sort a handful of already-selected rows"
    print(f"\nFull scans of big tables: {problems} ({sorts})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="/tmp/companion-scale.sqlite3")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--reuse", action="store_true", help="use the file if it exists")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--erase", type=int, default=5, help="erase this many clients (really)")
    parser.add_argument("--notify-days", type=float, default=NOTIFY_DAYS, help="plan reminders")
    args = parser.parse_args()
    meta_path = Path(args.db + ".meta.json")
    if args.reuse and Path(args.db).exists() and meta_path.exists():
        info = dict(describe(args.db), **json.loads(meta_path.read_text()))
        print(f"Reusing {args.db} (generated {info['generated_at']} in {info['seconds']} s)")
    else:
        print(f"Generating scale {args.scale} into {args.db} ...")
        info = generate(args.db, args.scale, notify_days=args.notify_days)
        cpu = f"{info['cpu_seconds']} s of CPU in all processes"
        print(f"Generated in {info['seconds']} s ({cpu}; {host_load()} now)")
    db = connect(args.db)
    pending = [m.name for m in migrations.migrations.pending(db)]
    if pending:  # a file made by older code: bring its schema up to date, as an upgrade would
        t = time.perf_counter()
        migrations.apply(db)
        print(f"Applied {', '.join(pending)} in {time.perf_counter() - t:.0f} s")
    by_status = db.conn.execute("SELECT status, count(*) FROM flags GROUP BY status").fetchall()
    db.close()
    size = sum(Path(args.db + s).stat().st_size for s in ("", "-wal") if Path(args.db + s).exists())
    reminders = f"reminders for sessions of the last {info['notify_days']:g} days"
    print(f"\nDatabase: {size / 2**30:.2f} GiB, scale {info['scale']}, {reminders}")
    for table, n in info["counts"].items():
        print(f"  {table:<20} {n:>12,}")
    print("  flags by status:    ", ", ".join(f"{s} {n:,}" for s, n in by_status))

    print_plans(info)

    print(f"\nTiming {args.samples} samples (busy clinics, clients with a year of history) ...")
    t = time.perf_counter()
    # The instance's own connection stays open during the timing, as the dispatcher's does in
    # `companion run`/`serve`: without one, each request's close would checkpoint the WAL.
    with bench.instance({"DATABASE": args.db, "LOGIN_MAX_FAILURES": 10**6}) as (app, _):
        # This process holds the generator's lists of 100,000 clients, which no server does:
        # frozen, Python's full collections skip them (one took ~50 ms here, inside a request).
        gc.freeze()
        timings = measure(app, info, args.samples, args.erase)
    print(f"done in {time.perf_counter() - t:.0f} s\n")
    table = []
    for name, values in timings.items():
        wall, cpu = zip(*values, strict=True)
        p50, p99 = percentile(wall, 50), percentile(wall, 99)
        table.append([name, p50, p99, max(wall), percentile(cpu, 50), percentile(cpu, 99)])
    header = ["request", "p50 ms", "p99 ms", "max ms", "p50 cpu", "p99 cpu"]
    # preserve_whitespace: the "  of which" rows stay indented under their page
    print(tabulate(table, header, "plain", floatfmt=".1f", preserve_whitespace=True))
    print(f"\n(ms of wall clock; cpu: this thread's CPU ms. At the end: {host_load()})")


if __name__ == "__main__":
    main()
