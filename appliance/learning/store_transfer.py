"""Export and import of taught classes: the export is itself a class-store SQLite file.

One self-describing file: the schema version, the embedding model identity, every class with its
samples and thumbnails. `sqlite3 export.db .dump` reads it without this program. This module works on
SQLite connections and files; ClassStore.export / import_ call it and merge what it reads, so it never
needs the store's insides.
"""

import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.errors import StoreError
from appliance.learning import store_schema
from appliance.learning.labels import validate_label
from appliance.learning.model_identity import base_name, same_model


@dataclass(frozen=True)
class ExportedClass:
    """One class as an export holds it, ready to merge by label."""

    label: str
    created: float
    embeddings: np.ndarray  # (n, D) float32, oldest first; (0, 0) without samples
    thumbnails: list[bytes]  # JPEG, oldest first


def write_export(conn: sqlite3.Connection, store_path: Path, path: Path) -> None:
    """Snapshot the store open on `conn` into `path` atomically (VACUUM INTO a temporary file, fsync,
    rename). The caller holds the store's lock: the connection is not in a transaction."""
    if path.resolve() == store_path.resolve():
        raise StoreError(f"cannot export the class store {path} onto itself", "give another file name")
    if not path.parent.is_dir():
        raise StoreError(f"cannot export to {path}: the folder {path.parent} does not exist",
                         "create the folder first or give another path")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        conn.execute("VACUUM INTO ?", (str(tmp),))
        out = sqlite3.connect(tmp, isolation_level=None)
        try:
            out.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
        finally:
            out.close()
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except sqlite3.Error as exc:
        raise store_schema.store_error(exc, store_path, f"exporting to {path}") from exc
    except OSError as exc:
        raise StoreError(f"cannot write the export {path}: {exc}", "check the folder is writable") from exc
    finally:
        tmp.unlink(missing_ok=True)


def read_export(path: Path, embedding_model: str, store_path: Path) -> list[ExportedClass]:
    """The classes exported in `path`, checked and read from a temporary copy (opening may migrate it or
    set WAL: the user's file is never touched). Refuses an export taught with another embedding model
    than the store at `store_path` uses."""
    if not path.is_file():
        raise StoreError(f"the export file {path} does not exist",
                         "give the file written by `appliance classes export`")
    with tempfile.TemporaryDirectory(prefix="appliance-import-") as tmpdir:
        copy = Path(tmpdir) / "import.db"
        shutil.copyfile(path, copy)
        wal = path.with_name(path.name + "-wal")
        if wal.is_file():  # a live store given as the export: its latest commits may be in the WAL
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        conn = store_schema.connect(copy, path, time.time())
        try:
            return _read_classes(conn, path, embedding_model, store_path)
        except sqlite3.Error as exc:
            raise store_schema.store_error(exc, path, "reading its classes") from exc
        finally:
            conn.close()


def _read_classes(conn: sqlite3.Connection, path: Path, embedding_model: str,
                  store_path: Path) -> list[ExportedClass]:
    classes = conn.execute("SELECT id, label, created FROM classes ORDER BY id").fetchall()
    row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()
    source_model = embedding_model if row is None else str(row[0])
    if classes and not same_model(source_model, embedding_model):
        raise StoreError(
            f"the export {path} was taught with the embedding model {base_name(source_model)!r} "
            f"({source_model}), but the class store {store_path} uses "
            f"{base_name(embedding_model)!r} ({embedding_model})",
            f"import it into a store for that model (--model {base_name(source_model)}), "
            "or teach the classes again with the current model")
    dim_row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_dim'").fetchone()
    dim = int(dim_row[0]) if dim_row else 0
    out = []
    for class_id, label, created in classes:
        blobs = conn.execute("SELECT embedding FROM samples WHERE class_id = ? ORDER BY id",
                             (class_id,)).fetchall()
        X = np.frombuffer(b"".join(b for (b,) in blobs), dtype="<f4").reshape(len(blobs), dim)
        thumbs = conn.execute("SELECT jpeg FROM thumbnails WHERE class_id = ? ORDER BY id", (class_id,))
        out.append(ExportedClass(validate_label(label), float(created), X.astype(np.float32),
                                 [bytes(j) for (j,) in thumbs]))
    return out


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
