"""Production serving and the doctor, as an operator runs them."""

import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import time

import pytest

from testkit.processes import COMPANION, children, env_for, free_port, wait_for_health


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_doctor_reports_problems_then_passes(tmp_path):
    instance = tmp_path / "instance"
    bad = subprocess.run(
        [COMPANION, "doctor"], env=env_for(instance), capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert (
        "PROBLEM  VAPID subject" in bad.stdout
        and "PROBLEM  the database is not initialised: run companion init-db" in bad.stdout
    )
    subprocess.run([COMPANION, "init-db"], env=env_for(instance), check=True, capture_output=True)
    conn = sqlite3.connect(instance / "companion.sqlite3")
    conn.execute(
        "INSERT INTO heartbeats (name, pid, at) VALUES ('dispatcher', 1,"
        " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
    )
    conn.commit()
    conn.close()
    good = subprocess.run(
        [COMPANION, "doctor"],
        capture_output=True,
        text=True,
        env=env_for(instance, COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net"),
    )
    assert good.returncode == 0, good.stdout
    assert "journal mode wal" in good.stdout and "PROBLEM" not in good.stdout
    # Unset PUBLIC_URL is a warning: it does not fail the check.
    assert "WARNING  PUBLIC_URL is not set" in good.stdout
    with_url = subprocess.run(
        [COMPANION, "doctor"],
        capture_output=True,
        text=True,
        env=env_for(
            instance,
            COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net",
            COMPANION_PUBLIC_URL="https://aftercare.clinic-real.net",
        ),
    )
    assert with_url.returncode == 0 and "WARNING" not in with_url.stdout, with_url.stdout


def test_serve_runs_workers_and_one_dispatcher_and_stops_on_sigterm(tmp_path):
    port = free_port()
    instance = tmp_path / "instance"
    log = tmp_path / "serve.log"
    with log.open("w") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [COMPANION, "serve", "--port", str(port), "--workers", "2"],
            env=env_for(instance, COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net"),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for_health(port, proc)
        # The first worker may answer before the second has started: wait for granian's word
        # that both have (a worker still importing the app when SIGTERM comes is given the
        # whole grace period, which a loaded host turned into 34 s of this test).
        deadline = time.monotonic() + 60
        while log.read_text().count("Started worker-") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        kids = children(proc.pid)
        assert sum("companion.cli worker" in k for k in kids.values()) == 1, kids
        assert len(kids) == 3, kids  # two granian workers and one dispatcher
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        assert not any(alive(pid) for pid in kids)
        conn = sqlite3.connect(instance / "companion.sqlite3")
        leased = conn.execute(
            "SELECT count(*) FROM notifications WHERE status = 'leased'"
        ).fetchone()[0]
        conn.close()
        assert leased == 0
        # Its first line says what runs, from which files, and whether reminders can go out.
        first = log.read_text().splitlines()[0]
        assert first == (
            f"Companion: instance {instance}, database {instance / 'companion.sqlite3'};"
            f" http://127.0.0.1:{port}/ by 2 granian workers and one dispatcher;"
            " push as mailto:ops@clinic-real.net; email off"
        ), first
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("server", ["gunicorn", "granian"])
def test_serve_replaces_a_dead_worker_and_dispatcher_finishes_requests_at_sigterm_no_token(
    tmp_path, server
):
    port = free_port()
    log = tmp_path / "access.log"
    env = env_for(
        tmp_path / "instance",
        COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net",
        COMPANION_ACCESS_LOG=str(log),
    )
    proc = subprocess.Popen(
        [COMPANION, "serve", "--server", server, "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(port, proc)

        def workers() -> set[int]:
            return {
                pid
                for pid, args in children(proc.pid).items()
                if "companion.cli worker" not in args and "multiprocessing" not in args
            }

        def dispatchers() -> set[int]:
            return {p for p, args in children(proc.pid).items() if "companion.cli worker" in args}

        # The dispatcher dies (out of memory, a crash): serve starts exactly one again.
        deadline = time.monotonic() + 15
        while not (killed := dispatchers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(killed) == 1, killed
        os.kill(next(iter(killed)), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not dispatchers() - killed and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(dispatchers() - killed) == 1, "no new dispatcher"
        time.sleep(1.5)  # and no second one after the restart pause
        assert len(dispatchers() - killed) == 1

        deadline = time.monotonic() + 15
        while not (first := workers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        dead = first.pop()
        os.kill(dead, signal.SIGKILL)  # a worker dies (out of memory, a crash)
        deadline = time.monotonic() + 30
        while not workers() - {dead} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers() - {dead}, "no new worker"
        wait_for_health(port, proc)  # and it serves
        # A phone's request half sent when the operator stops the server: its body arrives
        # after the SIGTERM, and it still gets its answer.
        body = json.dumps({"device": "phone"}).encode()
        head = (
            "POST /api/invites/Secret-Invite-Token-123/redeem HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=30) as phone:
            phone.sendall(head.encode() + body[:4])
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            phone.sendall(body[4:])
            reply = b""
            while chunk := phone.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 404"), reply[:200]  # no such invite, answered
        assert b'"error"' in reply
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "/api/invites/[token]/redeem" in text and "Secret-Invite" not in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600  # addresses and record ids: owner-only


@pytest.mark.parametrize(
    "command", ["run", "worker", "serve", "demo", "doctor", "init-db", "create-practitioner"]
)
def test_every_command_has_help(command):
    r = subprocess.run([COMPANION, command, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "Usage:" in r.stdout and len(r.stdout.splitlines()) > 3


def test_run_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [COMPANION, "run", "--port", str(port)],
        env=env_for(tmp_path / "instance", COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0  # not killed by the signal (-15): it shut down
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("server", ["gunicorn", "granian"])
def test_forwarded_headers_are_believed_only_with_proxy_fix_hops(tmp_path, server):
    """Without COMPANION_PROXY_FIX_HOPS a request's X-Forwarded-Proto is anyone's word (any
    local process, or a client when no proxy strips it): no Secure cookie, no HSTS. gunicorn's
    own default trusted it from 127.0.0.1."""
    import urllib.request

    def login_page_headers(port: int):
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/clinic/login", headers={"X-Forwarded-Proto": "https"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.headers

    for hops, secure in (("0", False), ("1", True)):
        port = free_port()
        log = tmp_path / f"serve-{hops}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [COMPANION, "serve", "--server", server, "--port", str(port), "--workers", "1"],
                env=env_for(
                    tmp_path / "instance",
                    COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net",
                    COMPANION_PROXY_FIX_HOPS=hops,
                ),
                stdout=out,
                stderr=out,
            )
        try:
            wait_for_health(port, proc)
            headers = login_page_headers(port)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=40)
        # An operator reads the start-up lines: no warning about a feature WSGI has not got.
        assert "Websockets are not supported" not in log.read_text(), log.read_text()
        cookie = headers["Set-Cookie"]
        assert ("Secure" in cookie) is secure, (hops, cookie)
        assert ("Strict-Transport-Security" in headers) is secure, (hops, dict(headers))


def test_serve_on_a_port_in_use_says_so_without_a_traceback(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [COMPANION, "serve", "--port", str(port), "--workers", "1"],
            env=env_for(
                tmp_path / "instance", COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net"
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 1, r.stderr
    assert f"Not starting: cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr
    assert "Traceback" not in r.stderr and "backtrace" not in r.stderr.lower(), r.stderr


def test_a_second_serve_on_the_port_of_a_running_one_refuses_to_start(tmp_path):
    """granian listens with SO_REUSEPORT: a second serve on a running one's port started as
    well, and the kernel shared the requests between two installations (or two versions)."""
    port = free_port()
    running = subprocess.Popen(
        [COMPANION, "serve", "--port", str(port), "--workers", "1", "--no-dispatch"],
        env=env_for(tmp_path / "one", COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_health(port, running)
        for server in ("granian", "gunicorn"):
            started = time.monotonic()
            r = subprocess.run(
                [COMPANION, "serve", "--server", server, "--port", str(port), "--workers", "1"],
                env=env_for(tmp_path / "two", COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net"),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert r.returncode == 1, (server, r.stderr)
            said = f"Not starting: cannot listen on 127.0.0.1:{port}: Address already in use."
            assert said in r.stderr, (server, r.stderr)
            assert f"`ss -ltnp 'sport = :{port}'` names it" in r.stderr
            # One line, at once: no server started, no retries (gunicorn's took 5 s).
            assert "Listening" not in r.stderr and "Traceback" not in r.stderr, r.stderr
            assert "Starting" not in r.stderr, r.stderr
            assert time.monotonic() - started < 30
        assert running.poll() is None
    finally:
        running.send_signal(signal.SIGTERM)
        running.wait(timeout=40)


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_a_serve_killed_with_9_leaves_no_worker_or_dispatcher_behind(tmp_path, server):
    """kill -9 (or the out-of-memory killer) on serve's main process left its granian workers
    on the port, answering with the old code (gunicorn's for up to 30 s), and its dispatcher
    sending: a new serve could not listen, or shared the port with them."""
    port = free_port()
    env = env_for(tmp_path / "instance", COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net")
    args = [COMPANION, "serve", "--server", server, "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kids: dict[int, str] = {}
    try:
        wait_for_health(port, proc)
        deadline = time.monotonic() + 60
        while len(kids := children(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sum("companion.cli worker" in k for k in kids.values()) == 1, kids
        time.sleep(1)  # the second worker past its start-up
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in kids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in kids if alive(pid)], kids
        again = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_health(port, again)
        finally:
            again.send_signal(signal.SIGTERM)
            again.wait(timeout=40)
    finally:
        for pid in [proc.pid, *kids]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_serve_takes_a_host_name_and_refuses_one_that_does_not_resolve(tmp_path):
    from companion.serve import listen_address

    assert listen_address("localhost") in ("127.0.0.1", "::1")  # granian takes addresses only
    assert listen_address("0.0.0.0") == "0.0.0.0"
    r = subprocess.run(
        [COMPANION, "serve", "--host", "999.1.1.1", "--port", str(free_port()), "--workers", "1"],
        env=env_for(tmp_path / "instance", COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "--host '999.1.1.1' is neither an IP address nor a name" in r.stderr


def test_serve_with_an_access_log_it_cannot_write_says_so(tmp_path):
    log = tmp_path / "no-such-folder" / "access.log"
    r = subprocess.run(
        [COMPANION, "serve", "--port", str(free_port()), "--workers", "1"],
        env=env_for(
            tmp_path / "instance",
            COMPANION_VAPID_SUBJECT="mailto:ops@clinic-real.net",
            COMPANION_ACCESS_LOG=str(log),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"COMPANION_ACCESS_LOG='{log}' cannot be written" in r.stderr
