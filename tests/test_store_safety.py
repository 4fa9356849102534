"""No silent loss of the store: empty or foreign files are refused; a full or read-only disk is a server
error (503 / 507) with its fix, on a real tmpfs where this machine lets us mount one."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import private_home, run_cli  # noqa: F401  (fixture)

from appliance.errors import StorageError, StorageFullError, StoreError
from appliance.learning.store import ClassStore


def unit(seed: int, dim: int = 256) -> np.ndarray:
    v = np.random.default_rng(seed).random(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("content", [b"", b"hello, not a database\n" * 10,
                                     b"SQLite format 2\x00" + b"x" * 100])
def test_an_empty_or_foreign_store_file_is_refused_and_left_alone(tmp_path, content):
    path = tmp_path / "classes.sqlite"
    path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        ClassStore(path, "model-a")
    assert str(path) in info.value.problem and info.value.fix
    assert isinstance(info.value, StorageError) and info.value.status == 503
    assert path.read_bytes() == content  # not re-created empty


def test_the_classes_command_refuses_an_empty_store(tmp_path, capsys):
    path = tmp_path / "classes.sqlite"
    path.touch()
    code, out, err = run_cli(capsys, "classes", "--store", path, "list")
    assert code == 2 and "empty file" in err and str(path) in err and "rm " in err
    assert path.stat().st_size == 0


def test_a_new_store_and_a_reopened_one_still_work(tmp_path):
    path = tmp_path / "classes.sqlite"
    with ClassStore(path, "model-a") as store:
        store.teach("cat", [unit(1)])
    with ClassStore(path, "model-a") as store:
        assert [c.label for c in store.list_classes()] == ["cat"]


@contextlib.contextmanager
def small_tmpfs(size: str):
    """A real tmpfs of `size` mounted on a temporary folder; skips when mounting is not allowed here."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small disk to fill")
    where = Path(tempfile.mkdtemp(prefix="appliance-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        where.rmdir()


def test_a_full_disk_is_a_507_and_nothing_taught_is_lost(tmp_path):
    with small_tmpfs("400k") as disk:
        path = disk / "classes.sqlite"
        with ClassStore(path, "model-a") as store:
            store.teach("kept", [unit(1)])
            with pytest.raises(StorageFullError) as info:
                for i in range(2000):
                    store.teach(f"class {i}", [unit(i + 10) for _ in range(20)])
            assert info.value.status == 507 and "full" in info.value.problem and "free" in info.value.fix
            taught = [c.label for c in store.list_classes()]
        with ClassStore(path, "model-a") as again:  # every committed class survives
            assert [c.label for c in again.list_classes()] == taught and "kept" in taught


def test_a_read_only_disk_is_a_503_with_the_fix(tmp_path):
    with small_tmpfs("2m") as disk:
        path = disk / "classes.sqlite"
        with ClassStore(path, "model-a") as store:
            store.teach("cat", [unit(1)])
        remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {remount.stderr.strip()}")
        with pytest.raises(StoreError) as info, ClassStore(path, "model-a") as store:
            store.teach("dog", [unit(2)])
        assert isinstance(info.value, StorageError) and info.value.status == 503
        assert "read" in info.value.fix or "writable" in info.value.fix


def test_the_web_api_answers_507_when_the_disk_is_full():
    from web_helpers import Client, web_config

    from appliance.system import System

    with small_tmpfs("1m") as disk:
        config = web_config(disk)
        config = dataclasses.replace(config, web=dataclasses.replace(config.web, host="127.0.0.1"))
        system = System(config)
        system.start(web=True, controls=False)
        try:
            client = Client(system.web_server.port)
            filler = disk / "filler"
            with filler.open("wb") as f, contextlib.suppress(OSError):  # fill what is left
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            status, _, body = client.post("/api/classes", {"label": "cat"})
            assert status == 507, body
            assert "full" in body["error"] and "free" in body["fix"]
        finally:
            system.stop()
