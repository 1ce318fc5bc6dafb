"""`companion backup`: a consistent copy of the database while Companion runs, made with
SQLite's online backup API (what the sqlite3 tool's `.backup` does, without that tool, which a
minimal server lacks), owner-only from its first byte."""

import os
import sqlite3
from pathlib import Path

from companion.db import utcnow


def backup(database: str, dest: Path) -> Path:
    """Copy `database` to `dest` (a file, or a folder to name one in); return the copy's path.

    Raises ValueError for what the operator must change: no database, a copy already there,
    a folder that cannot be written."""
    if not Path(database).is_file():
        raise ValueError(f"there is no database at {database} (run companion init-db first)")
    if dest.is_dir():
        dest = dest / f"companion-{utcnow():%Y-%m-%dT%H%M%SZ}.sqlite3"
    if dest.exists():
        raise ValueError(f"{dest} exists: give another name (a backup is never written over)")
    partial = dest.with_name(dest.name + ".partial")
    try:
        # Health data: created 0600 whatever the umask, before SQLite writes a page of it.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    except OSError as e:
        raise ValueError(f"{dest} cannot be written ({e.strerror})") from None
    source, copy = sqlite3.connect(database, timeout=30), sqlite3.connect(partial)
    try:
        # One step: one read transaction, so the copy is one moment of the database (in WAL
        # mode writers go on meanwhile; a copy made in steps would restart on each write).
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")  # a plain file: no -wal to carry along
    except sqlite3.Error:
        copy.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
        copy.close()
    partial.replace(dest)
    return dest
