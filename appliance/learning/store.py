"""ClassStore: the taught classes in one SQLite file, so nothing taught is lost to a kill or a power cut.

WAL journal + synchronous=FULL: a change is on disk when its method returns, and a crash at any moment
leaves the last committed state. Each public method is one transaction. One connection guarded by a lock
makes the store safe to share between the web server's threads and the GPIO thread; other processes may
open the same file (SQLite locks it; `version` is persisted so they see each other's changes).
"""

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from appliance.errors import ConflictError, NotFoundError, StoreError
from appliance.learning import store_schema, store_transfer
from appliance.learning.labels import label_key, validate_label
from appliance.learning.model_identity import base_name, same_model

DEFAULT_MAX_SAMPLES = 200  # Coral's documented maximum per class for imprinting
DEFAULT_MAX_THUMBNAILS = 4
MAX_THUMBNAIL_BYTES = 512 * 1024


@dataclass(frozen=True)
class ClassInfo:
    id: int
    label: str
    samples: int
    created: float
    updated: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Snapshot:
    """Everything a head needs, read in one transaction so it matches `version`."""

    version: int
    classes: tuple[ClassInfo, ...]
    X: np.ndarray  # (N, D) float32, in class-id then sample order
    y: np.ndarray  # (N,) int64 class ids


@dataclass(frozen=True)
class SampleDelta:
    """What a holder of per-class (count, last sample id) lacks, read in one transaction."""

    version: int
    classes: tuple[ClassInfo, ...]
    counts: dict[int, tuple[int, int]]           # class id -> (samples, last sample id); classes with samples
    rows: dict[int, tuple[bool, np.ndarray]]     # changed class id -> (appended?, float32 rows)


class ClassStore:
    """One SQLite file of taught classes; see the module docstring for the guarantees."""

    def __init__(self, path: str | Path, embedding_model: str, *, max_samples: int = DEFAULT_MAX_SAMPLES,
                 max_thumbnails: int = DEFAULT_MAX_THUMBNAILS) -> None:
        if max_samples < 1:
            raise StoreError(f"max_samples_per_class must be at least 1, not {max_samples}",
                             "set [teach] max_samples_per_class to a number from 1 to 200")
        self.path = Path(path)
        self.embedding_model = str(embedding_model)
        self.max_samples = int(max_samples)
        self.max_thumbnails = max(0, int(max_thumbnails))
        self._lock = threading.RLock()
        self._conn = self._open()

    # ---- opening -------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        return store_schema.connect(self.path, self.path, time.time(), check=self._check_model)

    def _check_model(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()
        has_classes = conn.execute("SELECT EXISTS (SELECT 1 FROM classes)").fetchone()[0]
        if row is None or not has_classes:  # a new or empty store takes the caller's model
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('embedding_model', ?)",
                         (self.embedding_model,))
            if not has_classes:
                conn.execute("DELETE FROM meta WHERE key = 'embedding_dim'")
            return
        if not same_model(row[0], self.embedding_model):
            raise StoreError(
                f"the class store {self.path} was taught with the embedding model {base_name(row[0])!r} "
                f"({row[0]}), not {base_name(self.embedding_model)!r} ({self.embedding_model}): their "
                "embeddings cannot be compared",
                f"use the original model (--model {base_name(row[0])}), or start a new store for the new "
                "model and teach it again (`appliance classes export` keeps the old one)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "ClassStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transactions --------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, doing: str, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                    if write:
                        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise store_schema.store_error(exc, self.path, doing) from exc

    @property
    def version(self) -> int:
        """Bumps on every committed change, by this or another process: cheap enough to poll per frame."""
        with self._lock:
            try:
                return int(self._conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
            except sqlite3.Error as exc:
                raise store_schema.store_error(exc, self.path, "reading its version") from exc

    def peek_version(self) -> int | None:
        """`version`, or None at once when another thread is in a transaction (a poller never waits)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self.version
        finally:
            self._lock.release()

    # ---- reading -------------------------------------------------------------------------------------

    _CLASS_SQL = ("SELECT c.id, c.label, (SELECT COUNT(*) FROM samples s WHERE s.class_id = c.id), "
                  "c.created, c.updated FROM classes c")

    def _info(self, conn: sqlite3.Connection, class_id: int) -> ClassInfo:
        row = conn.execute(self._CLASS_SQL + " WHERE c.id = ?", (int(class_id),)).fetchone()
        if row is None:
            raise NotFoundError(f"there is no class with id {class_id}",
                                "list the classes (`appliance classes list`, or GET /api/classes)")
        return ClassInfo(*row)

    def list_classes(self) -> list[ClassInfo]:
        with self._transaction("listing classes", write=False) as conn:
            return [ClassInfo(*row) for row in conn.execute(self._CLASS_SQL + " ORDER BY c.id")]

    def get(self, class_id: int) -> ClassInfo:
        with self._transaction("reading a class", write=False) as conn:
            return self._info(conn, class_id)

    def find(self, label: str) -> ClassInfo | None:
        key = label_key(validate_label(label))
        with self._transaction("finding a class", write=False) as conn:
            row = conn.execute("SELECT id FROM classes WHERE label_key = ?", (key,)).fetchone()
            return None if row is None else self._info(conn, row[0])

    def thumbnails(self, class_id: int) -> list[bytes]:
        """The class's JPEG thumbnails, newest first."""
        with self._transaction("reading thumbnails", write=False) as conn:
            self._info(conn, class_id)
            rows = conn.execute("SELECT jpeg FROM thumbnails WHERE class_id = ? ORDER BY id DESC",
                                (int(class_id),))
            return [bytes(r[0]) for r in rows]

    def thumbnail(self, class_id: int) -> bytes | None:
        """The newest JPEG thumbnail of the class, or None when it has none."""
        thumbs = self.thumbnails(class_id)
        return thumbs[0] if thumbs else None

    def snapshot(self) -> Snapshot:
        with self._transaction("reading the samples", write=False) as conn:
            version = int(conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
            classes = tuple(ClassInfo(*row) for row in conn.execute(self._CLASS_SQL + " ORDER BY c.id"))
            rows = conn.execute("SELECT class_id, embedding FROM samples ORDER BY class_id, id").fetchall()
            dim_row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_dim'").fetchone()
        dim = int(dim_row[0]) if dim_row else 0
        X = np.empty((len(rows), dim), dtype=np.float32)
        for i, (_, blob) in enumerate(rows):
            X[i] = np.frombuffer(blob, dtype="<f4")
        y = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return Snapshot(version, classes, X, y)

    def sample_delta(self, known: dict[int, tuple[int, int]]) -> SampleDelta:
        """The rows a caller holding `known` (class id -> (count, last id)) lacks: of a class that only grew,
        the rows past its last id; of one that lost rows (trimmed, cleared), all of them. So an incremental
        head reads O(samples added), not the whole store, on each change."""
        with self._transaction("reading the samples", write=False) as conn:
            version = int(conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
            classes = tuple(ClassInfo(*row) for row in conn.execute(self._CLASS_SQL + " ORDER BY c.id"))
            counts = {int(c): (int(n), int(last)) for c, n, last in conn.execute(
                "SELECT class_id, COUNT(*), MAX(id) FROM samples GROUP BY class_id")}
            dim_row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_dim'").fetchone()
            dim = int(dim_row[0]) if dim_row else 0
            rows: dict[int, tuple[bool, np.ndarray]] = {}
            for class_id, (count, last) in counts.items():
                old = known.get(class_id)
                if old == (count, last):
                    continue
                sql = "SELECT embedding FROM samples WHERE class_id = ? AND id > ? ORDER BY id"
                blobs = conn.execute(sql, (class_id, old[1] if old else 0)).fetchall()
                appended = old is not None and old[0] + len(blobs) == count
                if old is not None and not appended:
                    blobs = conn.execute(sql, (class_id, 0)).fetchall()
                X = np.frombuffer(b"".join(b for (b,) in blobs), dtype="<f4").reshape(len(blobs), dim)
                rows[class_id] = (appended, X.astype(np.float32))
        return SampleDelta(version, classes, counts, rows)

    def training_data(self) -> tuple[np.ndarray, np.ndarray]:
        """X (N, D) float32 sample embeddings and y (N,) their class ids."""
        snap = self.snapshot()
        return snap.X, snap.y

    # ---- changing ------------------------------------------------------------------------------------

    def _embeddings(self, conn: sqlite3.Connection, embeddings: object) -> np.ndarray:
        X = np.asarray(embeddings, dtype=np.float32)
        if X.ndim == 1 and X.size:
            X = X[None, :]
        if X.size == 0:
            return np.empty((0, 0), dtype=np.float32)
        if X.ndim != 2:
            raise StoreError(f"embeddings must be one vector or a list of vectors, got shape {X.shape}",
                             "pass the arrays returned by Embedder.embed")
        if not np.all(np.isfinite(X)) or np.any(np.linalg.norm(X, axis=1) == 0):
            raise StoreError("an embedding is zero or not finite",
                             "pass the arrays returned by Embedder.embed")
        row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_dim'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta (key, value) VALUES ('embedding_dim', ?)", (X.shape[1],))
        elif int(row[0]) != X.shape[1]:
            raise StoreError(f"embeddings of size {X.shape[1]} do not fit the class store {self.path}, "
                             f"which holds embeddings of size {row[0]}",
                             "use the embedding model the store was taught with")
        return X

    def _add(self, conn: sqlite3.Connection, class_id: int, X: np.ndarray,
             thumbnails: Iterable[bytes], now: float) -> None:
        batch = int(conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]) + 1
        conn.executemany(
            "INSERT INTO samples (class_id, batch, embedding, created) VALUES (?, ?, ?, ?)",
            [(class_id, batch, row.astype("<f4").tobytes(), now) for row in X[-self.max_samples:]])
        conn.execute("DELETE FROM samples WHERE class_id = ? AND id NOT IN (SELECT id FROM samples "
                     "WHERE class_id = ? ORDER BY id DESC LIMIT ?)", (class_id, class_id, self.max_samples))
        jpegs = [_check_jpeg(t) for t in thumbnails][-self.max_thumbnails:] if self.max_thumbnails else []
        conn.executemany("INSERT INTO thumbnails (class_id, jpeg, created) VALUES (?, ?, ?)",
                         [(class_id, j, now) for j in jpegs])
        conn.execute("DELETE FROM thumbnails WHERE class_id = ? AND id NOT IN (SELECT id FROM thumbnails "
                     "WHERE class_id = ? ORDER BY id DESC LIMIT ?)",
                     (class_id, class_id, self.max_thumbnails))
        conn.execute("UPDATE classes SET updated = ? WHERE id = ?", (now, class_id))

    def _class_id(self, conn: sqlite3.Connection, label: str, created: float, now: float) -> int:
        """The id of the class named `label` (any case), created with `created` if there is none."""
        row = conn.execute("SELECT id FROM classes WHERE label_key = ?", (label_key(label),)).fetchone()
        if row is not None:
            return int(row[0])
        cur = conn.execute("INSERT INTO classes (label, label_key, created, updated) VALUES (?, ?, ?, ?)",
                           (label, label_key(label), created, now))
        return int(cur.lastrowid)

    def teach(self, label: str, embeddings: object, thumbnails: Sequence[bytes] = ()) -> ClassInfo:
        """Add samples to the class named `label` (any case), creating it if needed."""
        label = validate_label(label)
        now = time.time()
        with self._transaction(f"teaching {label!r}", write=True) as conn:
            X = self._embeddings(conn, embeddings)
            class_id = self._class_id(conn, label, now, now)
            self._add(conn, class_id, X, thumbnails, now)
            return self._info(conn, class_id)

    def add_samples(self, class_id: int, embeddings: object, thumbnails: Sequence[bytes] = ()) -> ClassInfo:
        now = time.time()
        with self._transaction("adding samples", write=True) as conn:
            self._info(conn, class_id)
            self._add(conn, int(class_id), self._embeddings(conn, embeddings), thumbnails, now)
            return self._info(conn, class_id)

    def rename(self, class_id: int, label: str) -> ClassInfo:
        label = validate_label(label)
        with self._transaction(f"renaming a class to {label!r}", write=True) as conn:
            self._info(conn, class_id)
            row = conn.execute("SELECT id, label FROM classes WHERE label_key = ?",
                               (label_key(label),)).fetchone()
            if row is not None and row[0] != int(class_id):
                raise ConflictError(f"the label {label!r} is already used by the class {row[1]!r}",
                                    "choose another label, or delete that class first")
            conn.execute("UPDATE classes SET label = ?, label_key = ?, updated = ? WHERE id = ?",
                         (label, label_key(label), time.time(), int(class_id)))
            return self._info(conn, class_id)

    def delete(self, class_id: int) -> None:
        with self._transaction("deleting a class", write=True) as conn:
            self._info(conn, class_id)
            conn.execute("DELETE FROM classes WHERE id = ?", (int(class_id),))

    def clear(self, class_id: int) -> ClassInfo:
        """Forget the class's samples and thumbnails but keep its id and label (a button's slot)."""
        with self._transaction("clearing a class", write=True) as conn:
            self._info(conn, class_id)
            conn.execute("DELETE FROM samples WHERE class_id = ?", (int(class_id),))
            conn.execute("DELETE FROM thumbnails WHERE class_id = ?", (int(class_id),))
            conn.execute("UPDATE classes SET updated = ? WHERE id = ?", (time.time(), int(class_id)))
            return self._info(conn, class_id)

    # ---- export / import -----------------------------------------------------------------------------

    def export(self, path: str | Path) -> None:
        """Write every class to `path` as a class-store SQLite file (atomic: a temporary file, renamed)."""
        with self._lock:
            store_transfer.write_export(self._conn, self.path, Path(path))

    def import_(self, path: str | Path, *, replacing: Iterable[str] = ()) -> list[ClassInfo]:
        """Merge the classes exported in `path` into this store by label, in one transaction.

        A class whose label matches an existing one (ignoring case) gets the imported samples appended (past
        max_samples the oldest are dropped, so imported samples win) and its thumbnails; other classes are
        created with their label and creation time. Refuses an export taught with another embedding model.
        The classes labelled `replacing` are deleted first, in the same transaction: an export that cannot
        be read leaves them as they were.
        """
        classes = store_transfer.read_export(Path(path), self.embedding_model, self.path)
        keys = [label_key(label) for label in replacing]
        now = time.time()
        with self._transaction(f"importing {path}", write=True) as conn:
            conn.executemany("DELETE FROM classes WHERE label_key = ?", [(k,) for k in keys])
            ids: list[int] = []
            for c in classes:
                ids.append(self._class_id(conn, c.label, c.created, now))
                self._add(conn, ids[-1], self._embeddings(conn, c.embeddings), c.thumbnails, now)
            return [self._info(conn, class_id) for class_id in ids]


def stored_embedding_model(path: str | Path) -> str | None:
    """The embedding model identity a store file records; None if there is no readable one.

    For tools that handle classes without computing embeddings (listing, renaming, exporting). Not a
    read-only connection: after a crash SQLite may need to write the -shm file to read the WAL.
    """
    if not Path(path).is_file():
        return None
    try:
        conn = sqlite3.connect(Path(path), timeout=30.0)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def _check_jpeg(data: bytes) -> bytes:
    data = bytes(data)
    if not data.startswith(b"\xff\xd8"):
        raise StoreError("a thumbnail is not JPEG data", "pass JPEG-encoded bytes as thumbnails")
    if len(data) > MAX_THUMBNAIL_BYTES:
        raise StoreError(f"a thumbnail is {len(data)} bytes, more than {MAX_THUMBNAIL_BYTES}",
                         "encode a smaller thumbnail (e.g. 160 pixels wide)")
    return data
