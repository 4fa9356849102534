"""The class store's SQLite file: opening, creation, version checks, migrations, errors named for the user.

The schema version lives in PRAGMA user_version (read before anything else) and in the meta table (for
people reading the file with other tools). A file written by a newer schema is refused, never rewritten.
"""

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from appliance.errors import StorageError, StorageFullError, StoreError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE classes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL,
    label_key TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    batch INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX samples_by_class ON samples(class_id, id);
CREATE TABLE thumbnails (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    jpeg BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX thumbnails_by_class ON thumbnails(class_id, id);
"""

# MIGRATIONS[n] upgrades a schema-n store to n + 1 inside the opening transaction.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


def corrupt_fix(path: Path) -> str:
    return (f"move the file aside (mv {path} {path}.broken) and import your last export with "
            f"`appliance classes --store {path} import FILE`, or start a new store")


def store_error(exc: sqlite3.Error | OSError, path: Path, doing: str) -> StoreError:
    """Turn an SQLite error into the StoreError a user can act on (a StorageError: the disk's fault)."""
    text = str(exc)
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return StorageError(f"the class store {path} is corrupt ({text}) while {doing}", corrupt_fix(path))
    if "locked" in lowered or "busy" in lowered:
        return StorageError(f"the class store {path} stayed locked by another process while {doing}",
                            "stop the other appliance process using this store, or retry")
    if "full" in lowered or "no space" in lowered:
        return StorageFullError(f"the disk holding the class store {path} is full while {doing}",
                                "free some disk space (df -h shows where) and retry; nothing was changed")
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered \
            or "permission" in lowered:
        return StorageError(f"cannot write the class store {path} ({text}) while {doing}",
                            "check that the disk is mounted read-write and the folder is writable by this "
                            "user (journalctl -k shows disk errors)")
    if "disk i/o" in lowered:
        return StorageError(f"the disk holding the class store {path} failed ({text}) while {doing}",
                            "check the disk or SD card (journalctl -k shows its errors), then restart")
    return StorageError(f"the class store {path} failed while {doing}: {text}", corrupt_fix(path))


def connect(path: Path, shown: Path, now: float,
            check: Callable[[sqlite3.Connection], None] | None = None) -> sqlite3.Connection:
    """Open the class store at `path` (created if missing) for WAL and synchronous=FULL writes: checked,
    then migrated in one transaction, with `check` (the embedding-model check) in it too. `shown` is the
    name errors give: an import opens a temporary copy of the user's file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for the class store {shown}: {exc}",
                         "choose a --store path in a writable folder") from exc
    if path.is_dir():
        raise StoreError(f"the class store path {shown} is a folder",
                         "give the path of a file, e.g. classes.db inside that folder")
    refuse_foreign_file(path, shown)
    if not path.exists():
        create_atomically(path, shown, now)
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise store_error(exc, shown, "opening it") from exc
    try:
        for pragma in ("busy_timeout = 30000", "journal_mode = WAL", "synchronous = FULL",
                       "foreign_keys = ON"):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            problem = integrity_problem(conn)
            if problem:
                raise StoreError(f"the class store {shown} is corrupt: {problem}", corrupt_fix(shown))
            prepare(conn, shown, now)
            if check is not None:
                check(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        conn.close()
        raise store_error(exc, shown, "opening it") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def create_atomically(path: Path, shown: Path, now: float) -> None:
    """Make a new, empty class store at `path` all at once: built beside it, then linked into place only
    if nothing is there yet. A kill or power cut while it is made leaves no file at `path` (never a
    0-byte one, which refuse_foreign_file would rightly refuse), just a stray file beside it."""
    building = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    try:
        conn = sqlite3.connect(building, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            prepare(conn, shown, now)
            conn.execute("COMMIT")
        finally:
            conn.close()
        with open(building, "rb") as f:
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs stands
            os.link(building, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except (OSError, sqlite3.Error) as exc:
        raise store_error(exc, shown, "creating it") from exc
    finally:
        for leftover in (building, building.with_name(building.name + "-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink()


def refuse_foreign_file(path: Path, shown: Path) -> None:
    """A file that exists but is empty or not SQLite is refused: only a file we create starts empty.

    SQLite would take a 0-byte file as a new database and the classes it once held would be gone without
    a word. A 0-byte main file beside a non-empty -wal is a store whose changes are all still in its WAL.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot read the class store {shown}: {exc}",
                           "check that the file is readable by this user and the disk works") from exc
    if size == 0:
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            return
        raise StorageError(f"the class store {shown} is an empty file (0 bytes), not a class store",
                           f"if you expected classes there: {corrupt_fix(shown)}; to start with no classes, "
                           f"delete the empty file (rm {shown})")
    if head != b"SQLite format 3\x00":
        raise StorageError(f"the class store {shown} is not an SQLite database (it starts with {head[:8]!r})",
                           corrupt_fix(shown))


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows if not name.startswith("sqlite_")}


def prepare(conn: sqlite3.Connection, path: Path, now: float) -> bool:
    """Create the schema in an empty file or migrate an older one; True when the file was new.

    Runs inside the caller's write transaction. Raises StoreError for a newer or a foreign file.
    """
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = _tables(conn)
    if user_version > SCHEMA_VERSION:
        raise StoreError(
            f"the class store {path} has schema version {user_version}, written by a newer appliance; "
            f"this one reads up to version {SCHEMA_VERSION}",
            "upgrade appliance, or export the classes with the newer version and import them here")
    if user_version == 0:
        if tables:
            raise StoreError(f"{path} is an SQLite file but not a class store (tables: "
                             f"{', '.join(sorted(tables))})",
                             "give --store a new file name, or the class store you exported")
        for statement in SCHEMA.split(";"):  # not executescript: that would COMMIT the caller's transaction
            if statement.strip():
                conn.execute(statement)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                         [("schema_version", SCHEMA_VERSION), ("version", 0), ("created", now)])
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return True
    if not {"meta", "classes", "samples", "thumbnails"} <= tables:
        raise StoreError(f"the class store {path} is missing tables", corrupt_fix(path))
    for version in range(user_version, SCHEMA_VERSION):
        MIGRATIONS[version](conn)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version + 1,))
        conn.execute(f"PRAGMA user_version = {version + 1}")
    return False


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    """None when SQLite's quick_check passes, else its first complaint."""
    rows = conn.execute("PRAGMA quick_check").fetchall()
    return None if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:3])
