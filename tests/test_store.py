"""ClassStore on a real SQLite file: transactions, class operations, limits, export / import, refusals."""

import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

from appliance.errors import ConflictError, LabelError, NotFoundError, StoreError
from appliance.learning import store_schema
from appliance.learning.store import ClassStore

MODEL = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite sha256:" + "a" * 64
OTHER = "efficientnet-edgetpu-S_quant_embedding_extractor.tflite sha256:" + "b" * 64
JPEG = b"\xff\xd8\xff\xe0 a tiny stand-in JPEG body \xff\xd9"


def vecs(n, dim=16, seed=0):
    return np.random.default_rng(seed).random((n, dim)).astype(np.float32) + 0.01


@pytest.fixture
def store(tmp_path):
    with ClassStore(tmp_path / "classes.db", MODEL) as s:
        yield s


def test_new_store_uses_wal_full_sync_and_a_versioned_schema(store):
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store_schema.SCHEMA_VERSION
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == store_schema.SCHEMA_VERSION
    assert meta["embedding_model"] == MODEL
    assert store.version == 0 and store.list_classes() == []


def test_teach_creates_then_adds_by_label_ignoring_case_and_bumps_version(store):
    cat = store.teach("Cat", vecs(3))
    assert (cat.label, cat.samples) == ("Cat", 3)
    assert store.version == 1
    again = store.teach("  cAT ", vecs(2, seed=1))
    assert again.id == cat.id and again.label == "Cat" and again.samples == 5
    assert again.updated >= cat.updated and again.created == cat.created
    assert store.version == 2
    assert store.find("CAT") == store.get(cat.id)
    assert store.find("dog") is None
    X, y = store.training_data()
    assert X.dtype == np.float32 and X.shape == (5, 16)
    np.testing.assert_array_equal(X[:3], vecs(3))
    assert y.tolist() == [cat.id] * 5


def test_failed_change_leaves_nothing_behind(store):
    store.teach("cat", vecs(2))
    before = (store.version, store.list_classes(), store.training_data()[0].copy())
    with pytest.raises(StoreError, match="not JPEG"):
        store.teach("dog", vecs(3), thumbnails=[JPEG, b"GIF89a"])
    with pytest.raises(StoreError, match="size 8"):
        store.teach("cat", vecs(1, dim=8))
    with pytest.raises(StoreError, match="not finite"):
        store.teach("cat", np.full((1, 16), np.nan))
    with pytest.raises(LabelError):
        store.teach("bad\nlabel", vecs(1))
    assert store.version == before[0] and store.list_classes() == before[1]
    np.testing.assert_array_equal(store.training_data()[0], before[2])


def test_rename_delete_clear_and_not_found(store):
    cat, dog = store.teach("cat", vecs(2)), store.teach("dog", vecs(1))
    with pytest.raises(ConflictError, match="already used"):
        store.rename(dog.id, "CAT")
    assert store.rename(cat.id, "CAT").label == "CAT"  # a class may change its own case
    assert store.rename(cat.id, "kitty").label == "kitty"
    store.teach("cat", vecs(1))  # the old label is free again: a new class
    assert [c.label for c in store.list_classes()] == ["kitty", "dog", "cat"]
    cleared = store.clear(dog.id)
    assert (cleared.id, cleared.label, cleared.samples) == (dog.id, "dog", 0)
    store.delete(cat.id)
    assert [c.label for c in store.list_classes()] == ["dog", "cat"]
    assert store.training_data()[1].tolist() == [store.find("cat").id]
    for call in (lambda: store.get(cat.id), lambda: store.delete(cat.id), lambda: store.clear(999),
                 lambda: store.rename(999, "x"), lambda: store.add_samples(999, vecs(1)),
                 lambda: store.thumbnails(999)):
        with pytest.raises(NotFoundError):
            call()
    new = store.teach("bird", vecs(1))
    assert new.id > cat.id  # ids are never reused, so a deleted class's id never names another


def test_max_samples_replaces_the_oldest(tmp_path):
    with ClassStore(tmp_path / "s.db", MODEL, max_samples=5) as s:
        data = vecs(8)
        c = s.teach("cat", data[:3])
        c = s.add_samples(c.id, data[3:])
        assert c.samples == 5
        np.testing.assert_array_equal(s.training_data()[0], data[3:])  # the 3 oldest went
        c = s.teach("cat", vecs(7, seed=2))  # more than the max in one call: the newest 5 stay
        np.testing.assert_array_equal(s.training_data()[0], vecs(7, seed=2)[2:])
    with pytest.raises(StoreError):
        ClassStore(tmp_path / "t.db", MODEL, max_samples=0)


def test_thumbnails_keep_the_newest_up_to_the_limit(tmp_path):
    with ClassStore(tmp_path / "s.db", MODEL, max_thumbnails=2) as s:
        c = s.teach("cat", vecs(1))
        assert s.thumbnail(c.id) is None
        thumbs = [JPEG + bytes([i]) for i in range(3)]
        s.add_samples(c.id, vecs(1), thumbnails=thumbs[:1])
        s.add_samples(c.id, vecs(1), thumbnails=thumbs[1:])
        assert s.thumbnails(c.id) == [thumbs[2], thumbs[1]]
        assert s.thumbnail(c.id) == thumbs[2]
        assert s.clear(c.id).samples == 0 and s.thumbnail(c.id) is None


def test_changes_are_visible_to_another_process(store):
    store.teach("cat", vecs(2))
    code = ("import sys, numpy as np; from appliance.learning.store import ClassStore; "
            "s = ClassStore(sys.argv[1], sys.argv[2]); s.teach('dog', np.ones((1, 16), np.float32))")
    subprocess.run([sys.executable, "-c", code, str(store.path), MODEL], check=True, timeout=60)
    assert store.version == 2
    assert [c.label for c in store.list_classes()] == ["cat", "dog"]


def test_threads_share_one_store(store):
    errors = []

    def teach(n):
        try:
            for i in range(10):
                store.teach(f"class {n}", vecs(1, seed=i))
                store.list_classes()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=teach, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(c.samples for c in store.list_classes()) == [10, 10, 10, 10]
    assert store.version == 40


def test_another_embedding_model_is_refused_naming_both(tmp_path):
    path = tmp_path / "s.db"
    with ClassStore(path, MODEL) as s:
        s.teach("cat", vecs(1))
    with pytest.raises(StoreError) as info:
        ClassStore(path, OTHER)
    assert "mobilenet_v1_1.0_224_quant_embedding_extractor" in info.value.problem
    assert "efficientnet-edgetpu-S_quant_embedding_extractor" in info.value.problem
    assert "--model mobilenet_v1_1.0_224_quant_embedding_extractor" in info.value.fix
    changed_file = MODEL.replace("a" * 64, "c" * 64)  # same name, different bytes
    with pytest.raises(StoreError):
        ClassStore(path, changed_file)
    # the Edge TPU twin and a bare name are the same model
    twin = "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite sha256:" + "d" * 64
    ClassStore(path, twin).close()
    ClassStore(path, "/models/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite").close()


def test_an_empty_store_takes_the_new_model(tmp_path):
    path = tmp_path / "s.db"
    ClassStore(path, MODEL).close()
    with ClassStore(path, OTHER) as s:
        s.teach("cat", vecs(1, dim=8))
    with pytest.raises(StoreError):
        ClassStore(path, MODEL)


def test_export_import_round_trip_merges_by_label(tmp_path):
    with ClassStore(tmp_path / "a.db", MODEL) as a, ClassStore(tmp_path / "b.db", MODEL, max_samples=4) as b:
        cat = a.teach("Cat", vecs(3), thumbnails=[JPEG])
        a.teach("dog", vecs(2, seed=1))
        a.export(tmp_path / "export.db")
        assert not list(tmp_path.glob(".export*"))  # no temporary file left
        b.teach("CAT", vecs(2, seed=5))
        b.teach("bird", vecs(1, seed=6))
        merged = b.import_(tmp_path / "export.db")
        assert [m.label for m in merged] == ["CAT", "dog"]
        classes = {c.label: c for c in b.list_classes()}
        assert classes["CAT"].samples == 4  # 2 + 3 imported, max 4: the oldest local one went
        assert classes["dog"].samples == 2 and classes["dog"].created == a.find("dog").created
        X, y = b.training_data()
        np.testing.assert_array_equal(X[y == classes["CAT"].id], np.r_[vecs(2, seed=5)[1:], vecs(3)])
        np.testing.assert_array_equal(X[y == classes["dog"].id], vecs(2, seed=1))
        assert b.thumbnail(classes["CAT"].id) == JPEG
        assert a.get(cat.id).samples == 3  # exporting changed nothing
        # a fresh store gets an exact copy
        with ClassStore(tmp_path / "c.db", MODEL) as c:
            c.import_(tmp_path / "export.db")
            assert [(x.label, x.samples) for x in c.list_classes()] == [("Cat", 3), ("dog", 2)]


def test_import_refuses_another_model_and_bad_files(tmp_path):
    with ClassStore(tmp_path / "a.db", OTHER) as a:
        a.teach("cat", vecs(1, dim=8))
        a.export(tmp_path / "other.db")
    with ClassStore(tmp_path / "b.db", MODEL) as b:
        with pytest.raises(StoreError) as info:
            b.import_(tmp_path / "other.db")
        assert "efficientnet" in info.value.problem and "mobilenet" in info.value.problem
        with pytest.raises(StoreError, match="does not exist"):
            b.import_(tmp_path / "missing.db")
        (tmp_path / "junk.db").write_bytes(b"junk" * 2000)
        with pytest.raises(StoreError, match="junk.db"):
            b.import_(tmp_path / "junk.db")
        assert b.version == 0


def test_corrupt_file_is_named_and_never_recreated(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 300)
    with pytest.raises(StoreError) as info:
        ClassStore(path, MODEL)
    assert str(path) in info.value.problem and "corrupt" in info.value.problem
    assert "mv" in info.value.fix and "import" in info.value.fix
    assert path.read_bytes().startswith(b"this is not a database")


def test_damaged_pages_are_detected(tmp_path):
    path = tmp_path / "s.db"
    with ClassStore(path, MODEL) as s:
        for i in range(30):
            s.teach(f"class {i}", vecs(20, dim=256, seed=i))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page: 3 * page + 200] = b"\x7f" * 200  # scribble over a b-tree page
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        ClassStore(path, MODEL)


def test_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a class store"):
        ClassStore(path, MODEL)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.db"
    ClassStore(path, MODEL).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {store_schema.SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as info:
        ClassStore(path, MODEL)
    assert "newer" in info.value.problem and "upgrade" in info.value.fix


def test_migrations_run_in_order_on_open(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    with ClassStore(path, MODEL) as s:
        s.teach("cat", vecs(1))

    def add_notes(conn):
        conn.execute("ALTER TABLE classes ADD COLUMN notes TEXT NOT NULL DEFAULT ''")

    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(store_schema.MIGRATIONS, 1, add_notes)
    with ClassStore(path, MODEL) as s:
        assert s.find("cat").samples == 1
        assert s._conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "notes" in [r[1] for r in s._conn.execute("PRAGMA table_info(classes)")]


def test_import_of_a_live_store_reads_its_wal(tmp_path):
    with ClassStore(tmp_path / "live.db", MODEL) as live, ClassStore(tmp_path / "b.db", MODEL) as b:
        live.teach("cat", vecs(3))  # still in live.db-wal while `live` is open
        assert (tmp_path / "live.db-wal").stat().st_size > 0
        assert [(c.label, c.samples) for c in b.import_(tmp_path / "live.db")] == [("cat", 3)]


def test_a_new_store_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """A kill while the store is first made must not leave a 0-byte classes.sqlite (which is refused
    as "not a class store" at the next start): it is built beside and linked into place."""
    class Killed(BaseException):
        """The process dies between building the file and linking it into place."""

    path = tmp_path / "classes.sqlite"

    def killed(*_args):
        raise Killed

    monkeypatch.setattr(store_schema.os, "link", killed)
    with pytest.raises(Killed):
        ClassStore(path, MODEL)
    assert not path.exists() and list(tmp_path.iterdir()) == []  # nothing at the path, nothing stray
    monkeypatch.undo()
    with ClassStore(path, MODEL) as store:
        store.teach("cat", np.ones((2, 8), np.float32))
    assert path.stat().st_size > 0 and sorted(p.name for p in tmp_path.iterdir())[0] == "classes.sqlite"
