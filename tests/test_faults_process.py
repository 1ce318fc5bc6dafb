"""Process faults with real `companion serve` processes: two on one database, SIGTERM under load.

The larger versions (5,000 reminders, kill -9 of a real worker, a push-service outage)
are in benchmarks/faults.py; a killed dispatcher is tested in test_dispatch.py.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

import pytest

from companion.accounts import clinics
from companion.db import connect, utcnow, write
from testkit import processes
from testkit.load import Load
from testkit.processes import COMPANION, free_port, sign_in_client, wait_for_health
from testkit.reminders import due_now, populate, states

SUBJECT = "mailto:ops@clinic-tests.net"
env_for = partial(
    processes.env_for,
    COMPANION_VAPID_SUBJECT=SUBJECT,
    COMPANION_PUSH_ALLOW_PRIVATE_ENDPOINTS="1",
)
PASSWORD = "correct horse battery"


def serve(instance: str, port: int, *args: str, **env: str) -> subprocess.Popen:
    """`companion serve` on `port`, its output in the instance folder's serve-PORT.log."""
    log = Path(instance) / f"serve-{port}.log"
    return processes.spawn(["serve", "--port", str(port), *args], env_for(instance, **env), log)


def devices_and_reminders(app, receiver, clinic_id: int, clients: int, title: str) -> set:
    """Clients with one device each (every fifth has two), one reminder each due a second ago.

    Returns the (device, reminder) pairs that must each be delivered once.
    """
    db = connect(app.config["DATABASE"])
    try:
        _, devices = populate(db, receiver, clients, second_every=5, clinic_id=clinic_id)
        return due_now(db, clinic_id, devices, clients, title)
    finally:
        db.close()


def statuses(app, title: str) -> Counter:
    db = connect(app.config["DATABASE"])
    try:
        return states(db, title)
    finally:
        db.close()


def new_clinic(app) -> int:
    db = connect(app.config["DATABASE"])
    try:
        with write(db):
            return clinics.create_clinic(db, "Clinic One", "Europe/London", None, utcnow())
    finally:
        db.close()


def test_two_serve_instances_on_one_database_send_each_reminder_once(app, receiver):
    instance = app.instance_path
    ports = [free_port(), free_port()]
    # Batches of 2 and a slow push service: each dispatcher needs seconds for the lot,
    # so both are claiming at the same time.
    receiver.set_delay(None, 100)
    servers = [
        serve(instance, port, "--workers", "1", "--threads", "2", COMPANION_DISPATCH_BATCH="2")
        for port in ports
    ]
    try:
        for port, proc in zip(ports, servers, strict=True):
            wait_for_health(port, proc)
        pairs = devices_and_reminders(app, receiver, new_clinic(app), 40, "Two serves")
        assert len(pairs) == 48
        db = connect(app.config["DATABASE"])
        owners = set()
        try:
            deadline = time.monotonic() + 30
            while db.conn.execute(
                "SELECT count(*) FROM notifications WHERE status IN ('pending', 'leased')"
            ).fetchone()[0]:
                assert time.monotonic() < deadline, statuses(app, "Two serves")
                owners.update(
                    r[0]
                    for r in db.conn.execute(
                        "SELECT DISTINCT lease_owner FROM notifications WHERE status = 'leased'"
                    )
                )
                time.sleep(0.02)
            twice = db.conn.execute(
                "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE outcome = 'delivered'"
                " GROUP BY notification_id, subscription_id HAVING count(*) > 1)"
            ).fetchone()[0]
        finally:
            db.close()
        for proc in servers:
            proc.send_signal(signal.SIGTERM)
        assert [proc.wait(timeout=40) for proc in servers] == [0, 0]
    finally:
        for proc in servers:
            processes.stop(proc, signal.SIGKILL)
    assert len(owners) == 2, owners  # both dispatchers claimed rows
    counts = Counter((m.subscription_id, m.payload["id"]) for m in receiver.received)
    assert set(counts) == pairs and set(counts.values()) == {1}
    assert all(m.payload["tag"] == f"companion-{m.payload['id']}" for m in receiver.received)
    assert twice == 0 and statuses(app, "Two serves") == Counter({"sent": 40})


def test_sigterm_during_load_answers_no_500_and_leaves_no_row_leased(app, receiver):
    port = free_port()
    receiver.set_delay(None, 200)  # a batch takes the dispatcher over a second
    proc = serve(
        app.instance_path,
        port,
        "--workers",
        "2",
        "--threads",
        "4",
        COMPANION_CHECKIN_RATE_PER_HOUR="100000",
    )
    load = None
    try:
        wait_for_health(port, proc)
        phone = sign_in_client(port, "dr@clinic-one.net", PASSWORD)[0].cookie_header()
        clinic_id = connect_one(app, "SELECT id FROM clinics")
        load = Load(port, phone)
        # The load is under way (check-ins being stored) before the reminders fall due.
        deadline = time.monotonic() + 10
        while not load.answers[201] and time.monotonic() < deadline:
            time.sleep(0.01)
        pairs = devices_and_reminders(app, receiver, clinic_id, 300, "Under load")
        # SIGTERM once the dispatcher is sending: it gets its own SIGTERM mid-batch.
        assert receiver.wait_for(1, timeout=20), "the dispatcher sent nothing"
        during = sum(load.answers.values())
        proc.send_signal(signal.SIGTERM)
        load.gone.set()
        assert proc.wait(timeout=60) == 0
        load.join()
    finally:
        if load is not None:
            load.gone.set()
            load.join()
        processes.stop(proc, signal.SIGKILL)
    assert during > 0 and load.answers[201] > 0, (load.answers, load.errors)
    assert not [s for s in load.answers if s >= 500], (load.answers, load.errors)
    stored = {r[0] for r in connect_rows(app, "SELECT id FROM checkins")}
    assert load.acked <= stored  # every check-in answered 201/200 was kept
    left = statuses(app, "Under load")
    assert "leased" not in left and set(left) <= {"sent", "pending"}, left
    assert connect_one(app, "SELECT count(*) FROM notifications WHERE status = 'leased'") == 0
    # Sent rows reached every device of their owner, once.
    sent = {
        r[0]
        for r in connect_rows(
            app, "SELECT id FROM notifications WHERE title = 'Under load' AND status = 'sent'"
        )
    }
    counts = Counter((m.subscription_id, m.payload["id"]) for m in receiver.received)
    assert {p for p in pairs if p[1] in sent} <= set(counts) <= pairs
    assert set(counts.values()) <= {1}


def connect_rows(app, sql: str) -> list[tuple]:
    db = connect(app.config["DATABASE"])
    try:
        return [tuple(r) for r in db.conn.execute(sql)]
    finally:
        db.close()


def connect_one(app, sql: str):
    return connect_rows(app, sql)[0][0]


def test_doctor_finds_database_files_left_read_only(app):
    """SQLite makes -wal/-shm with the database file's mode: fixing the file alone is not enough."""
    prefix = []
    if os.geteuid() == 0:  # root writes anything: drop the capability so modes apply
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv to run as root without CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    database = Path(app.config["DATABASE"])
    database.chmod(0o444)  # read-only for a while (a backup tool, a wrong chown)
    # Any process that reads it now leaves -wal/-shm files as read-only as it was.
    subprocess.run(
        [
            *prefix,
            sys.executable,
            "-c",
            "import sqlite3, sys; sqlite3.connect("
            "sys.argv[1]).execute('SELECT count(*) FROM sqlite_master').fetchone()",
            str(database),
        ],
        check=True,
        timeout=60,
    )
    database.chmod(0o644)  # the operator fixes the file...

    def doctor() -> list[str]:
        out = subprocess.run(
            [*prefix, COMPANION, "doctor"],
            env=env_for(app.instance_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        return [line for line in out.stdout.splitlines() if "database files" in line]

    [line] = doctor()  # ...but not the others
    assert line.startswith("PROBLEM  read-only database files:") and "-shm" in line, line
    for path in database.parent.glob("companion.sqlite3*"):
        path.chmod(0o644)
    assert doctor() == ["ok       database files are writable"]
