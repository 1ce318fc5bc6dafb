"""Named, append-only schema migrations (sqlite-utils Migrations). Never edit one that shipped.

Past 300 lines on purpose: append-only means every step since the first release stays here, in order.
"""

import json
import re
import sqlite3

import sqlite_utils
from sqlite_utils.migrations import Migrations

from companion import twofactor
from companion.db import write
from companion.reminders.default_protocol import DEFAULT_STEPS

migrations = Migrations("companion")


def _run(db: sqlite_utils.Database, script: str) -> None:
    """Execute a script statement by statement, inside the migration's transaction."""
    # executescript() would COMMIT first and break the migration's atomicity.
    statement = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""


@migrations()
def m001_accounts(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    CREATE TABLE clinics (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        phone TEXT,
        timezone TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE practitioners (
        id INTEGER PRIMARY KEY,
        clinic_id INTEGER NOT NULL REFERENCES clinics(id),
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        alert_severities TEXT NOT NULL DEFAULT 'urgent',
        created_at TEXT NOT NULL
    );
    CREATE INDEX practitioners_clinic ON practitioners(clinic_id);
    CREATE TABLE clients (
        id INTEGER PRIMARY KEY,
        clinic_id INTEGER NOT NULL REFERENCES clinics(id),
        name TEXT NOT NULL,
        email TEXT,
        phone TEXT,
        timezone TEXT NOT NULL,
        quiet_start TEXT DEFAULT '21:00',
        quiet_end TEXT DEFAULT '08:00',
        discreet INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX clients_clinic ON clients(clinic_id, name);
    CREATE TABLE invites (
        id INTEGER PRIMARY KEY,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        token_hash TEXT NOT NULL UNIQUE,
        created_by INTEGER REFERENCES practitioners(id),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT,
        revoked_at TEXT
    );
    CREATE INDEX invites_client ON invites(client_id);
    -- Server-side sign-in sessions: revocable, unlike a bare signed cookie.
    CREATE TABLE auth_sessions (
        id TEXT PRIMARY KEY,
        user_kind TEXT NOT NULL CHECK (user_kind IN ('practitioner', 'client')),
        user_id INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE INDEX auth_sessions_user ON auth_sessions(user_kind, user_id);
    CREATE TABLE login_failures (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL,
        address TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX login_failures_email ON login_failures(email, at);
    CREATE INDEX login_failures_address ON login_failures(address, at);
    -- No foreign keys: the record of an erasure outlives the client it names.
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor_kind TEXT NOT NULL,
        actor_id INTEGER,
        clinic_id INTEGER,
        client_id INTEGER,
        action TEXT NOT NULL,
        detail TEXT,
        address TEXT
    );
    CREATE INDEX audit_clinic ON audit_log(clinic_id, at);
    CREATE INDEX audit_client ON audit_log(client_id, at);
    """,
    )


@migrations()
def m002_sessions_and_protocols(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    CREATE TABLE protocols (
        id INTEGER PRIMARY KEY,
        clinic_id INTEGER NOT NULL REFERENCES clinics(id),
        version INTEGER NOT NULL,
        steps TEXT NOT NULL,
        created_by INTEGER REFERENCES practitioners(id),
        created_at TEXT NOT NULL,
        UNIQUE (clinic_id, version)
    );
    CREATE TABLE treatment_sessions (
        id INTEGER PRIMARY KEY,
        clinic_id INTEGER NOT NULL REFERENCES clinics(id),
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        practitioner_id INTEGER REFERENCES practitioners(id),
        protocol_id INTEGER REFERENCES protocols(id),
        performed_at TEXT NOT NULL,
        areas TEXT NOT NULL,
        needle_depth_mm REAL NOT NULL,
        device TEXT NOT NULL,
        products TEXT NOT NULL,
        notes TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX sessions_client ON treatment_sessions(client_id, performed_at);
    CREATE INDEX sessions_clinic ON treatment_sessions(clinic_id, performed_at);
    """,
    )


@migrations()
def m003_push_outbox(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    CREATE TABLE push_subscriptions (
        id INTEGER PRIMARY KEY,
        owner_kind TEXT NOT NULL CHECK (owner_kind IN ('practitioner', 'client')),
        owner_id INTEGER NOT NULL,
        endpoint TEXT NOT NULL UNIQUE,
        p256dh TEXT NOT NULL,
        auth TEXT NOT NULL,
        user_agent TEXT,
        created_at TEXT NOT NULL,
        last_success_at TEXT,
        gone_at TEXT
    );
    CREATE INDEX push_subscriptions_owner ON push_subscriptions(owner_kind, owner_id);
    -- The outbox: one row per planned message. Status moves
    -- pending -> leased -> sent | pending (retry) | failed; or skipped / cancelled.
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        owner_kind TEXT NOT NULL,
        owner_id INTEGER NOT NULL,
        clinic_id INTEGER NOT NULL,
        client_id INTEGER REFERENCES clients(id) ON DELETE CASCADE,
        session_id INTEGER REFERENCES treatment_sessions(id) ON DELETE SET NULL,
        flag_id INTEGER,
        step_key TEXT,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        url TEXT NOT NULL DEFAULT '/',
        urgency TEXT NOT NULL DEFAULT 'normal',
        due_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        status_reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        lease_until TEXT,
        lease_owner TEXT,
        sent_at TEXT,
        created_at TEXT NOT NULL
    );
    -- Partial indexes keep the dispatcher's cost proportional to what is due or
    -- leased, not to everything stored.
    CREATE INDEX notifications_due ON notifications(next_attempt_at) WHERE status = 'pending';
    CREATE INDEX notifications_leased ON notifications(lease_until) WHERE status = 'leased';
    CREATE INDEX notifications_session ON notifications(session_id, due_at);
    CREATE INDEX notifications_owner ON notifications(owner_kind, owner_id, due_at);
    CREATE INDEX notifications_checkin_due ON notifications(due_at) WHERE kind = 'checkin';
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        notification_id INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
        subscription_id INTEGER REFERENCES push_subscriptions(id) ON DELETE SET NULL,
        attempt INTEGER NOT NULL,
        at TEXT NOT NULL,
        status_code INTEGER,
        outcome TEXT NOT NULL,
        reason TEXT,
        elapsed_ms REAL
    );
    CREATE INDEX deliveries_notification ON deliveries(notification_id);
    CREATE INDEX deliveries_subscription ON deliveries(subscription_id);
    CREATE TABLE heartbeats (
        name TEXT PRIMARY KEY,
        pid INTEGER,
        at TEXT NOT NULL
    );
    """,
    )


@migrations()
def m004_checkins_and_flags(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    CREATE TABLE checkins (
        id TEXT PRIMARY KEY,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        clinic_id INTEGER NOT NULL,
        session_id INTEGER REFERENCES treatment_sessions(id) ON DELETE SET NULL,
        taken_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        redness INTEGER NOT NULL,
        swelling INTEGER NOT NULL,
        pain INTEGER NOT NULL,
        symptoms TEXT NOT NULL,
        warning_signs TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        assessment TEXT NOT NULL
    );
    CREATE INDEX checkins_client ON checkins(client_id, taken_at);
    CREATE INDEX checkins_session ON checkins(session_id, taken_at);
    CREATE INDEX checkins_clinic ON checkins(clinic_id, taken_at);
    CREATE TABLE photos (
        id TEXT PRIMARY KEY,
        checkin_id TEXT NOT NULL REFERENCES checkins(id) ON DELETE CASCADE,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        filename TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX photos_checkin ON photos(checkin_id);
    CREATE INDEX photos_client ON photos(client_id);
    CREATE TABLE flags (
        id INTEGER PRIMARY KEY,
        clinic_id INTEGER NOT NULL,
        client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        session_id INTEGER REFERENCES treatment_sessions(id) ON DELETE SET NULL,
        checkin_id TEXT,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        reason TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        acknowledged_at TEXT,
        acknowledged_by INTEGER,
        called_at TEXT,
        resolved_at TEXT,
        resolved_by INTEGER,
        note TEXT
    );
    -- One open (or acknowledged) flag per session and rule.
    CREATE UNIQUE INDEX flags_one_open ON flags(session_id, rule) WHERE status != 'resolved';
    CREATE INDEX flags_queue ON flags(clinic_id, status, severity, opened_at);
    CREATE INDEX flags_client ON flags(client_id, opened_at);
    CREATE TABLE flag_events (
        id INTEGER PRIMARY KEY,
        flag_id INTEGER NOT NULL REFERENCES flags(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        actor_kind TEXT NOT NULL,
        actor_id INTEGER,
        action TEXT NOT NULL,
        severity TEXT,
        reason TEXT,
        note TEXT
    );
    CREATE INDEX flag_events_flag ON flag_events(flag_id);
    """,
    )


def apply(db: sqlite_utils.Database) -> None:
    """Apply every pending migration."""
    migrations.apply(db)


def from_a_newer_version(db: sqlite_utils.Database) -> str | None:
    """Say so when the database holds migrations this version does not know: it was upgraded
    by a newer Companion, and this (older) code would run on tables it was not written for."""
    known = {m.name for m in migrations._migrations}
    unknown = [m.name for m in migrations.applied(db) if m.name not in known]
    if not unknown:
        return None
    return (
        f"the database was upgraded by a newer version of Companion ({', '.join(unknown)}"
        " applied, which this version does not know): run that version again, or restore"
        " the backup made before the upgrade (README, Upgrades)"
    )


@migrations()
def m005_review_indexes(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- The timeline reads a client's flags by session; deleting a session sets their
    -- session_id to NULL, which without this index scans every flag (the partial
    -- flags_one_open index cannot serve either).
    CREATE INDEX flags_session ON flags(session_id, opened_at);
    -- Erasing a client cancels and cascades over its notifications by client_id: without
    -- this index each erasure scans the whole outbox (seconds at 4.5 million rows).
    CREATE INDEX notifications_client ON notifications(client_id);
    """,
    )


# Tables whose ids leave the database (URLs, replies, exports, the audit log and its details).
# Check-ins and photos have random UUIDs; sign-in sessions are hashed tokens; deliveries,
# flag events and sign-in failures never show their ids.
NEVER_REUSED = (
    "clinics",
    "practitioners",
    "clients",
    "invites",
    "protocols",
    "treatment_sessions",
    "push_subscriptions",
    "notifications",
    "flags",
    "audit_log",
)
# Ids that only the audit log still remembers (rows erased before this migration) count as
# used: the sequence starts past them.
REMEMBERED = {
    "clinics": ["SELECT max(clinic_id) FROM audit_log"],
    "clients": ["SELECT max(client_id) FROM audit_log"],
    "practitioners": [
        "SELECT max(actor_id) FROM audit_log WHERE actor_kind = 'practitioner'",
        "SELECT max(CAST(substr(detail, 14) AS INTEGER)) FROM audit_log"
        " WHERE detail LIKE 'practitioner=%'",
    ],
    "treatment_sessions": [
        "SELECT max(CAST(substr(detail, 9) AS INTEGER)) FROM audit_log WHERE detail LIKE 'session=%'"
    ],
    "flags": [
        "SELECT max(CAST(substr(detail, 6) AS INTEGER)) FROM audit_log WHERE detail LIKE 'flag=%'"
    ],
}


def _with_autoincrement(db: sqlite_utils.Database, table: str) -> None:
    """Rebuild one table as SQLite's 12-step procedure does, its `id` now AUTOINCREMENT.

    Every row, column, constraint, foreign key (both ways) and index is kept: the new table
    is created from the stored CREATE statement, so columns added by ALTER TABLE come too.
    """
    schema = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name", {"name": table}
    ).fetchone()[0]
    if "AUTOINCREMENT" in schema.upper():
        return  # rebuilt already (a run that stopped before it was recorded)
    new = f"_new_{table}"
    create, found = re.subn(
        rf'^CREATE TABLE\s+"?{table}"?\s*\(', f"CREATE TABLE {new} (", schema, count=1
    )
    create, keyed = re.subn(
        r"\bid\s+INTEGER\s+PRIMARY\s+KEY\b",
        "id INTEGER PRIMARY KEY AUTOINCREMENT",
        create,
        count=1,
        flags=re.IGNORECASE,
    )
    if not (found and keyed):
        raise RuntimeError(f"{table}: no INTEGER PRIMARY KEY id column in {schema!r}")
    indexes = [
        row[0]
        for row in db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :name"
            " AND sql IS NOT NULL ORDER BY name",
            {"name": table},
        )
    ]
    columns = ", ".join(f'"{row[1]}"' for row in db.execute(f"PRAGMA table_info({table})"))
    db.execute(create)
    db.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table} ORDER BY id")
    db.execute(f"DROP TABLE {table}")  # foreign keys are off: no cascade, no SET NULL
    db.execute(f"ALTER TABLE {new} RENAME TO {table}")
    for sql in indexes:
        db.execute(sql)
    used = [db.execute(f"SELECT max(id) FROM {table}").fetchone()[0]]
    used += [db.execute(sql).fetchone()[0] for sql in REMEMBERED.get(table, [])]
    last = max((int(n) for n in used if n is not None), default=0)
    db.execute("DELETE FROM sqlite_sequence WHERE name = :name", {"name": table})
    if last:
        db.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :seq)",
            {"name": table, "seq": last},
        )


# Not transactional in Migrations' sense: foreign keys must be switched off outside any
# transaction (dropping a parent table would otherwise cascade into its children), so the
# migration opens its own transaction, and is safe to run again if it stops before it is
# recorded.
@migrations(transactional=False)
def m006_ids_never_reused(db: sqlite_utils.Database) -> None:
    """Ids are never given twice: an erased client's id, and its audit, go to nobody else."""
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        with write(db):
            for table in NEVER_REUSED:
                _with_autoincrement(db, table)
            broken = db.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise sqlite3.IntegrityError(f"foreign keys broken by the rebuild: {broken[:5]}")
    finally:
        db.execute("PRAGMA foreign_keys = ON")


@migrations()
def m007_roles(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- Two roles per clinic. The first practitioner of each clinic becomes its owner, so
    -- every existing clinic keeps someone who can manage its team.
    ALTER TABLE practitioners ADD COLUMN role TEXT NOT NULL DEFAULT 'practitioner'
        CHECK (role IN ('owner', 'practitioner'));
    UPDATE practitioners SET role = 'owner'
        WHERE id IN (SELECT min(id) FROM practitioners GROUP BY clinic_id);
    """,
    )


@migrations()
def m008_two_factor_and_phones(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- Two-factor sign-in (TOTP): the secret once confirmed, the one being enrolled, and the
    -- last time step used, so a code is never accepted twice.
    ALTER TABLE practitioners ADD COLUMN totp_secret TEXT;
    ALTER TABLE practitioners ADD COLUMN totp_pending TEXT;
    ALTER TABLE practitioners ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE clinics ADD COLUMN two_factor_required INTEGER NOT NULL DEFAULT 0;
    -- Single-use recovery codes, hashed like passwords.
    CREATE TABLE recovery_codes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        practitioner_id INTEGER NOT NULL REFERENCES practitioners(id) ON DELETE CASCADE,
        code_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        used_at TEXT
    );
    CREATE INDEX recovery_codes_practitioner ON recovery_codes(practitioner_id);
    -- Each sign-in is a device the practitioner can see and sign out: a label made from the
    -- User-Agent and an id for URLs (the row's own id is the hash of the cookie's token).
    ALTER TABLE auth_sessions ADD COLUMN device TEXT;
    ALTER TABLE auth_sessions ADD COLUMN device_id TEXT;
    CREATE UNIQUE INDEX auth_sessions_device ON auth_sessions(device_id);
    """,
    )


@migrations()
def m009_email(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- A client's channels: NULL is the default (push where a live device exists, email
    -- where an address exists), else a JSON list of "push" and "email".
    ALTER TABLE clients ADD COLUMN channels TEXT;
    -- What a row is sent by, when the outbox decides it (alerts to owners by email);
    -- NULL: the owner's own channels.
    ALTER TABLE notifications ADD COLUMN channels TEXT;
    -- One deliveries row per attempt and channel: a push device, or an email address.
    ALTER TABLE deliveries ADD COLUMN channel TEXT NOT NULL DEFAULT 'push'
        CHECK (channel IN ('push', 'email'));
    ALTER TABLE deliveries ADD COLUMN address TEXT;
    -- Urgent alerts also go by email to the clinic's owners (an owner's setting).
    ALTER TABLE clinics ADD COLUMN email_alerts INTEGER NOT NULL DEFAULT 0;
    """,
    )


@migrations()
def m010_calendar_and_clinic_settings(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- The clinic's own face: what clients see of it. display_name null means its name.
    ALTER TABLE clinics ADD COLUMN display_name TEXT;
    ALTER TABLE clinics ADD COLUMN address TEXT;
    ALTER TABLE clinics ADD COLUMN booking_url TEXT;
    ALTER TABLE clinics ADD COLUMN accent_color TEXT;
    ALTER TABLE clinics ADD COLUMN opening_hours TEXT;
    ALTER TABLE clinics ADD COLUMN logo_version TEXT;
    -- The logo apart from the clinic row, which is read on every page.
    CREATE TABLE clinic_logos (
        clinic_id INTEGER PRIMARY KEY REFERENCES clinics(id) ON DELETE CASCADE,
        image BLOB NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    -- A client's private calendar feed: the token is the feed's address (a bearer secret,
    -- read-only); rotating it ends the old address. Existing clients get one now.
    ALTER TABLE clients ADD COLUMN calendar_token TEXT;
    UPDATE clients SET calendar_token = lower(hex(randomblob(32)));
    CREATE UNIQUE INDEX clients_calendar_token ON clients(calendar_token);
    """,
    )


@migrations()
def m011_client_language(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- The language the client reads their app, reminders and emails in (companion/i18n.py).
    -- No CHECK: shipping a language must not need a table rebuild; the API checks it.
    ALTER TABLE clients ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
    """,
    )


@migrations()
def m012_default_protocol_in_spanish(db: sqlite_utils.Database) -> None:
    """Stored protocols get the default steps' Spanish where a text is still the default's
    English, word for word (an owner's own words are left alone); the English is unchanged.

    Reads today's default protocol: a later change of its English matches nothing stored
    before, so running this later can only add less, never alter an owner's text.
    """
    known = {
        (name, step[name]["en"]): step[name] for step in DEFAULT_STEPS for name in ("title", "body")
    }
    for row in db.execute("SELECT id, steps FROM protocols").fetchall():
        steps = json.loads(row[1])
        for step in steps:
            for name in ("title", "body"):
                if isinstance(step.get(name), str):
                    step[name] = known.get((name, step[name]), step[name])
        if steps != json.loads(row[1]):
            db.execute("UPDATE protocols SET steps = ? WHERE id = ?", [json.dumps(steps), row[0]])


@migrations()
def m013_emergency_number(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- The number for emergency services where the clinic is (112, 999, 911, 000...), shown as a
    -- call button beside the U4 advice; NULL: the urgent screen names the common ones.
    ALTER TABLE clinics ADD COLUMN emergency_number TEXT;
    """,
    )


@migrations()
def m014_totp_secrets_encrypted(db: sqlite_utils.Database) -> None:
    """Two-factor secrets were stored in clear: encrypt them with the instance's TOTP_KEY
    (secrets.json; `companion.cli.migrate` runs migrations in the app's context)."""
    found = db.execute(
        "SELECT id, totp_secret, totp_pending FROM practitioners"
        " WHERE totp_secret IS NOT NULL OR totp_pending IS NOT NULL"
    ).fetchall()
    for practitioner_id, secret, pending in found:
        db.execute(
            "UPDATE practitioners SET totp_secret = ?, totp_pending = ? WHERE id = ?",
            [
                twofactor.seal(secret) if secret else None,
                twofactor.seal(pending) if pending else None,
                practitioner_id,
            ],
        )


@migrations()
def m015_photo_upload_digest(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- The SHA-256 of a photo's uploaded bytes: the same photo sent again to the same check-in
    -- (a retry whose answer was lost) is answered with the stored one, not stored twice.
    -- Photos stored before have none (NULL), and NULLs never collide in a UNIQUE index.
    ALTER TABLE photos ADD COLUMN upload_sha256 TEXT;
    CREATE UNIQUE INDEX photos_checkin_upload ON photos(checkin_id, upload_sha256);
    """,
    )


@migrations()
def m016_names_without_direction_controls(db: sqlite_utils.Database) -> None:
    """Names are stored without the invisible controls that reorder text (contract.Name, since
    b7b426b); remove them from the names stored before, trimmed as a new name would be. A name
    made of nothing else keeps its controls' place as "?" (a name is never empty)."""
    controls = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
    glob = "*[" + "".join(map(chr, controls)) + "]*"
    for table, columns in (("clients", ["name"]), ("practitioners", ["name"]),
                           ("clinics", ["name", "display_name"])):  # fmt: skip
        for column in columns:
            found = db.execute(
                f"SELECT id, {column} FROM {table} WHERE {column} GLOB ?",
                [glob],
            ).fetchall()
            for row_id, value in found:
                clean = value.translate(controls).strip() or (
                    None if column == "display_name" else "?"
                )
                db.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", [clean, row_id])


@migrations()
def m018_clinic_client_defaults(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- What a new client of the clinic starts with (each client keeps and changes their own):
    -- quiet hours (equal start and end: none) and the language of their app, reminders and
    -- emails. Existing clinics keep the defaults every client had until now.
    ALTER TABLE clinics ADD COLUMN quiet_start TEXT NOT NULL DEFAULT '21:00';
    ALTER TABLE clinics ADD COLUMN quiet_end TEXT NOT NULL DEFAULT '08:00';
    ALTER TABLE clinics ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
    """,
    )


@migrations()
def m020_push_subscription_sign_in(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
    -- The client's sign-in (auth_sessions.id) a push subscription was posted under: signing
    -- that phone out forgets its subscription, so a lost phone stops getting reminders and
    -- they fall back to email. Subscriptions stored before know none (signing every phone of
    -- the client out forgets them).
    ALTER TABLE push_subscriptions ADD COLUMN session_id TEXT;
    """,
    )
