"""Export and import of taught classes: the export is itself a class-store SQLite file.

One self-describing file: the schema version, the embedding model identity, every class with its
samples and thumbnails. `sqlite3 export.db .dump` reads it without this program.
"""

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from appliance.errors import StoreError
from appliance.learning import store_schema
from appliance.learning.labels import label_key, validate_label
from appliance.learning.model_identity import base_name, same_model

if TYPE_CHECKING:
    from appliance.learning.store import ClassInfo, ClassStore


def export_store(store: "ClassStore", path: Path) -> None:
    """Snapshot the store into `path` atomically (VACUUM INTO a temporary file, fsync, rename)."""
    from appliance.learning.store import fsync_dir

    if path.resolve() == store.path.resolve():
        raise StoreError(f"cannot export the class store {path} onto itself", "give another file name")
    if not path.parent.is_dir():
        raise StoreError(f"cannot export to {path}: the folder {path.parent} does not exist",
                         "create the folder first or give another path")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        store._conn.execute("VACUUM INTO ?", (str(tmp),))
        out = sqlite3.connect(tmp, isolation_level=None)
        try:
            out.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
        finally:
            out.close()
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except sqlite3.Error as exc:
        raise store_schema.store_error(exc, store.path, f"exporting to {path}") from exc
    except OSError as exc:
        raise StoreError(f"cannot write the export {path}: {exc}", "check the folder is writable") from exc
    finally:
        tmp.unlink(missing_ok=True)


def import_store(store: "ClassStore", path: Path) -> list["ClassInfo"]:
    """Merge the classes exported in `path` into `store`, in one transaction.

    A class whose label matches an existing one (ignoring case) gets the imported samples appended (past
    max_samples the oldest are dropped, so imported samples win) and its thumbnails; other classes are
    created with their label and creation time. Refuses an export taught with another embedding model.
    """
    from appliance.learning.store import ClassStore, stored_embedding_model

    if not path.is_file():
        raise StoreError(f"the export file {path} does not exist",
                         "give the file written by `appliance classes export`")
    with tempfile.TemporaryDirectory(prefix="appliance-import-") as tmpdir:
        copy = Path(tmpdir) / "import.db"
        shutil.copyfile(path, copy)  # opening may migrate or set WAL: never touch the user's file
        wal = path.with_name(path.name + "-wal")
        if wal.is_file():  # a live store given as the export: its latest commits may be in the WAL
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        source_model = stored_embedding_model(copy) or store.embedding_model
        with ClassStore(copy, source_model, max_samples=10**9, max_thumbnails=10**9,
                        _display_path=path) as source:
            snap = source.snapshot()
            if snap.classes and not same_model(source_model, store.embedding_model):
                raise StoreError(
                    f"the export {path} was taught with the embedding model {base_name(source_model)!r} "
                    f"({source_model}), but the class store {store.path} uses "
                    f"{base_name(store.embedding_model)!r} ({store.embedding_model})",
                    f"import it into a store for that model (--model {base_name(source_model)}), "
                    "or teach the classes again with the current model")
            thumbs = {c.id: source.thumbnails(c.id)[::-1] for c in snap.classes}  # oldest first
    now = time.time()
    merged: list[int] = []
    with store._transaction(f"importing {path}", write=True) as conn:
        for info in snap.classes:
            X = store._embeddings(conn, snap.X[snap.y == info.id]) if info.samples else np.empty((0, 0))
            label = validate_label(info.label)
            row = conn.execute("SELECT id FROM classes WHERE label_key = ?", (label_key(label),)).fetchone()
            class_id = row[0] if row else store._create(conn, label, info.created, now)
            store._add(conn, class_id, X, thumbs[info.id], now)
            merged.append(class_id)
        return [store._info(conn, class_id) for class_id in merged]
