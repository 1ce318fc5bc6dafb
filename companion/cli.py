"""The `companion` command: run, serve, worker, demo, init-db, create-practitioner,
reset-two-factor, doctor.

Past 300 lines on purpose: every command's options, help and operator messages in one file, the
CLI's whole contract at a glance (serve's machinery is serve.py, doctor's checks doctor.py).
"""

import signal
import sqlite3
import sys
from pathlib import Path

import click
from werkzeug.serving import make_server

from companion import audit, create_app, migrations, twofactor
from companion import demo as demo_data
from companion.accounts import clinics, passwords
from companion.accounts.models import SetupInput
from companion.backup import backup as make_backup
from companion.config import ConfigError
from companion.contract import parse
from companion.db import connect, get_db, iso, utcnow, write
from companion.doctor import doctor as check_installation
from companion.doctor import make_owner_only, unreadable_database
from companion.errors import DomainError
from companion.review import erasure
from companion.serve import die_with_parent
from companion.serve import serve as serve_production

PORT = click.IntRange(0, 65535)  # 0: any free port; 99999 was bound as 34463 without a word


def _app(**config):
    try:
        return create_app(config or None)
    except ConfigError as e:  # a bad setting or damaged secrets: say which, no traceback
        raise click.ClickException(str(e)) from None


def migrate(app) -> list[str]:
    """Apply pending migrations; return the names applied."""
    try:
        db = connect(app.config["DATABASE"])
    except sqlite3.DatabaseError as e:
        raise click.ClickException(unreadable_database(app.config["DATABASE"], e)) from None
    try:
        if newer := migrations.from_a_newer_version(db):  # a rollback after an upgrade
            raise click.ClickException(f"{app.config['DATABASE']}: {newer}.")
        pending = [m.name for m in migrations.migrations.pending(db)]
        with app.app_context():  # m014 encrypts with the app's TOTP_KEY
            migrations.apply(db)
        if pending:
            # What a migration replaced (m014: two-factor secrets in clear) must not stay in
            # the WAL's old frames.
            erasure.clear_old_frames(db)
        # Files an older version (or a copy made without umask 077) left readable by others.
        if opened := make_owner_only(app.config, Path(app.instance_path)):
            click.echo(
                "Made owner-only (other users of this machine could read them): "
                + ", ".join(p.name for p in opened[:5])
                + (f" and {len(opened) - 5} more" if len(opened) > 5 else "")
                + ".",
                err=True,
            )
        return pending
    finally:
        db.close()


@click.group(
    help="Companion: aftercare reminders, recovery check-ins and flagged recoveries.\n\n"
    "The instance folder (database, secrets, photos) is COMPANION_INSTANCE_PATH, "
    "default ./instance."
)
def main() -> None:
    pass


@main.command("init-db", help="Create or upgrade the database (apply pending migrations).")
def init_db() -> None:
    app = _app()
    applied = migrate(app)
    click.echo(
        f"Database {app.config['DATABASE']}: "
        + (f"applied {', '.join(applied)}." if applied else "already up to date.")
    )


@main.command(
    "create-practitioner",
    help="Create a practitioner, and their clinic if no clinic has that name.",
)
@click.option("--email", required=True, help="Sign-in email.")
@click.option("--name", required=True, help="The practitioner's name.")
@click.option("--clinic", "clinic_name", required=True, help="Clinic name (created if new).")
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    help="Time zone of a new clinic (IANA name); clients default to it (an owner can change it later on the Clinic page).",
)
@click.option("--phone", default=None, help="Phone number of a new clinic, shown to clients.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (no terminal needed).",
)
def create_practitioner(email, name, clinic_name, timezone, phone, password_stdin) -> None:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        except click.Abort:  # no terminal and nothing on stdin said only "Aborted!"
            if sys.stdin.isatty():
                raise
            raise click.UsageError(
                "No terminal to ask for the password: pass it on standard input with"
                " --password-stdin (e.g. from a file or a secret store)."
            ) from None
    app = _app()
    migrate(app)
    try:
        person = parse(
            SetupInput,
            {
                "email": email,
                "name": name,
                "password": password,
                "clinic_name": clinic_name,
                "timezone": timezone,
                "clinic_phone": phone,
            },
        )
        passwords.require_good(password, (email, name, clinic_name))
    except DomainError as e:
        raise click.ClickException(
            "; ".join(f"{k}: {v}" for k, v in e.fields.items()) or e.message
        ) from None
    with app.app_context():
        db = connect(app.config["DATABASE"])
        now = utcnow()
        try:
            with write(db):
                row = clinics.find_clinic_by_name(db, clinic_name)
                clinic_id = (
                    row["id"]
                    if row
                    else clinics.create_clinic(db, clinic_name, timezone, phone, now)
                )
                pid = clinics.create_practitioner(
                    db, clinic_id, person["email"], name, password, now
                )
        except DomainError as e:
            raise click.ClickException(e.message) from None
        finally:
            db.close()
    click.echo(
        f"Created practitioner {pid} ({person['email']}) in clinic {clinic_id} ({clinic_name})."
    )


@main.command(
    "reset-two-factor",
    help="Turn a practitioner's two-factor sign-in off (a lost phone and no recovery codes);"
    " their sessions end and they sign in with their password, then set it up again.",
)
@click.option("--email", required=True)
def reset_two_factor(email) -> None:
    app = _app()
    with app.app_context():
        db = get_db()  # the connection audit.record writes on too
        with write(db):
            row = clinics.find_practitioner_by_email(db, email)
            if row is None:
                raise click.ClickException(f"No practitioner has the email {email}.")
            was_on = twofactor.enabled(row)
            twofactor.turn_off(db, row["id"])  # also a set-up begun and never confirmed
            if was_on:
                ended = db.conn.execute(
                    "UPDATE auth_sessions SET revoked_at = :now WHERE user_kind = 'practitioner'"
                    " AND user_id = :id AND revoked_at IS NULL",
                    {"now": iso(utcnow()), "id": row["id"]},
                ).rowcount
                audit.record(
                    "two_factor_reset",
                    actor_kind="operator",
                    clinic_id=row["clinic_id"],
                    detail=f"practitioner={row['id']}",
                )
    if not was_on:
        click.echo(
            f"Two-factor sign-in was not on for {row['email']}: nothing to reset; their"
            " sessions go on and they sign in with their password."
        )
        return
    sessions = {0: "no session of theirs was open", 1: "their 1 session ended"}.get(
        ended, f"their {ended} sessions ended"
    )
    click.echo(f"Two-factor sign-in is off for {row['email']}; {sessions}.")


def _serve_embedded(app, host: str, port: int, dispatch: bool) -> None:
    # Imported here, not at the top: the worker brings aiohttp and pywebpush, which add about
    # 40% to the command's start-up (measured: 2.5 s -> 3.6 s, mean of 5, on a busy 2-core
    # host), and init-db, create-practitioner, doctor and --help never send a push.
    from companion.reminders import worker as scheduler

    server = make_server(host, port, app, threaded=True)
    # Links in emails point here unless PUBLIC_URL says where the installation is reached;
    # known once the port is bound, so the dispatcher starts after it.
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    app.config.setdefault("LOCAL_URL", f"http://{shown}:{server.port}")
    if dispatch:
        scheduler.start(app)
    click.echo(f"Companion on http://{host}:{server.port}/ (Ctrl+C to stop)")

    def on_sigterm(*_):
        # Leave like Ctrl+C does, so the dispatcher finishes its batch and gives back leases.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if dispatch:
            scheduler.stop(app)


@main.command(
    help="Run the embedded default: the web app and the reminder dispatcher in one process."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=PORT)
@click.option("--no-dispatch", is_flag=True, help="Do not send reminders from this process.")
def run(host: str, port: int, no_dispatch: bool) -> None:
    app = _app()
    migrate(app)
    _serve_embedded(app, host, port, not no_dispatch)


@main.command(help="Run only the reminder dispatcher (beside web servers that don't dispatch).")
def worker() -> None:
    from companion.reminders import worker as scheduler  # start-up cost: see _serve_embedded

    app = _app()
    die_with_parent()  # when serve started it
    migrate(app)
    click.echo("Companion dispatcher running (Ctrl+C to stop)")
    scheduler.run_forever(app)


@main.command(
    help="Seed a demo clinic, practitioner and clients at different days of recovery, then run."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=PORT)
@click.option("--seed-only", is_flag=True, help="Seed the data and exit without running the app.")
def demo(host: str, port: int, seed_only: bool) -> None:
    app = _app()
    migrate(app)
    if others := demo_data.other_clinics(app):  # a production instance, by a slip at 3 am
        raise click.ClickException(
            f"{app.config['DATABASE']} holds other clinics ({', '.join(others[:3])}"
            f"{', ...' if len(others) > 3 else ''}): the demo would add its clinic, sample"
            " clients and an owner whose password it prints. Give it a folder of its own:"
            " COMPANION_INSTANCE_PATH=./demo-instance companion demo"
        )
    with app.app_context():
        email, password = demo_data.seed(app)
    click.echo(f"Demo practitioner: {email} / password: {password}")
    click.echo(f"Sign in at http://{host}:{port}/clinic/login")
    if not seed_only:
        _serve_embedded(app, host, port, True)


@main.command(help="Run production: granian (or gunicorn) workers plus exactly one dispatcher.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=PORT)
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(min=1), help="Worker processes."
)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Request threads per worker (granian's blocking threads, gunicorn's gthread); 1"
    " (default, fastest by benchmarks/load.py) serves one request at a time per worker.",
)
@click.option(
    "--server",
    type=click.Choice(["gunicorn", "granian"]),
    default="granian",
    show_default=True,
    help="The WSGI server of the workers: granian (faster by benchmarks/load.py) or gunicorn.",
)
@click.option("--no-dispatch", is_flag=True, help="Run no dispatcher (one runs elsewhere).")
@click.option(
    "--without-push",
    is_flag=True,
    help="Start even without a usable VAPID contact (COMPANION_VAPID_SUBJECT); no reminder"
    " can then go out by push.",
)
def serve(
    host: str,
    port: int,
    workers: int,
    threads: int,
    server: str,
    no_dispatch: bool,
    without_push: bool,
) -> None:
    app = _app()
    migrate(app)  # once, before any worker starts
    serve_production(host, port, workers, threads, not no_dispatch, without_push, app, server)


@main.command(
    help="Copy the database while Companion runs (SQLite's online backup API) to DEST, a file"
    " or a folder to name one in (companion-<UTC time>.sqlite3); the copy is owner-only."
)
@click.argument("dest", type=click.Path(path_type=Path))
def backup(dest: Path) -> None:
    app = _app()
    try:
        made = make_backup(app.config["DATABASE"], dest)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    except sqlite3.DatabaseError as e:
        raise click.ClickException(unreadable_database(app.config["DATABASE"], e)) from None
    size = made.stat().st_size / 2**20
    click.echo(f"Backed up {app.config['DATABASE']} to {made} ({size:.1f} MB).")
    click.echo(
        f"Keep {Path(app.instance_path) / 'secrets.json'} and {app.config['PHOTOS_DIR']} with it"
        " (README, Backups)."
    )


@main.command(help="Check an installation: secrets, VAPID contact, database, dispatcher, backlog.")
def doctor() -> None:
    findings = check_installation(_app())
    for ok, message in findings:
        label = "WARNING  " if ok is None else "ok       " if ok else "PROBLEM  "
        click.echo(label + message)
    if any(ok is False for ok, _ in findings):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
