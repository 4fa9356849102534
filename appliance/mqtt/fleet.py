"""Class sets shared by a fleet: announced on MQTT, fetched over HTTP, checked, imported.

A set is the existing export file (a class-store SQLite snapshot). Publishing writes it to
<data_dir>/fleet/<name>.sqlite (served by GET /api/classes/export?set=<name>) and announces, retained
on `<fleet_prefix>/<name>`: name, version, sha256, embedding model and URL. The file never travels over
MQTT. A box subscribed to the name fetches the file, checks the sha256 and the embedding model, and
imports it; a newer version replaces the classes the older one brought (a backup export is written
first, so nothing is lost).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.errors import ApplianceError, StoreError
from appliance.learning.model_identity import base_name, same_model

if TYPE_CHECKING:
    from appliance.learning.store import ClassInfo, ClassStore
    from appliance.system import System

log = logging.getLogger(__name__)

FLEET_DIR = "fleet"
SET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
FETCH_TIMEOUT_S = 30.0
MAX_SET_BYTES = 512 * 1024 * 1024


def check_name(name: str) -> str:
    if not SET_NAME.fullmatch(name or ""):
        raise ApplianceError(f"{name!r} is not a class-set name",
                             'use 1 to 64 letters, digits, "_", "-" or ".", e.g. "shop-products"')
    return name


def set_path(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / FLEET_DIR / f"{check_name(name)}.sqlite"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _records(data_dir: Path, kind: str) -> dict:
    try:
        return json.loads((Path(data_dir) / FLEET_DIR / f"{kind}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_records(data_dir: Path, kind: str, records: dict) -> None:
    path = Path(data_dir) / FLEET_DIR / f"{kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(records, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def prepare_set(store: ClassStore, data_dir: Path, name: str, *, url_base: str, publisher: str,
                previous_version: int = 0) -> dict:
    """Export the store as set `name` and return the announcement (the version after any seen so far)."""
    path = set_path(data_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    store.export(path)
    published = _records(data_dir, "published")
    version = max(int(previous_version), int(published.get(name, 0))) + 1
    published[name] = version
    _save_records(data_dir, "published", published)
    return {"name": name, "version": version, "sha256": sha256_file(path),
            "embedding_model": store.embedding_model, "url": f"{url_base}/api/classes/export?set={name}",
            "classes": [c.label for c in store.list_classes()], "publisher": publisher,
            "time": round(time.time(), 3)}


def parse_announcement(topic_name: str, payload: bytes) -> dict | None:
    """A well-formed announcement for `topic_name`; None when withdrawn (empty); ApplianceError if bad."""
    if not payload:
        return None
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise ApplianceError(f"the class-set announcement {topic_name!r} is not JSON ({exc})",
                             "publish it with `appliance classes publish NAME`") from None
    ok = (isinstance(data, dict) and data.get("name") == topic_name and isinstance(data.get("version"), int)
          and re.fullmatch(r"[0-9a-f]{64}", str(data.get("sha256", ""))) is not None
          and str(data.get("url", "")).startswith(("http://", "https://"))
          and isinstance(data.get("embedding_model"), str))
    if not ok:
        raise ApplianceError(f"the class-set announcement {topic_name!r} lacks name, version, sha256, "
                             "embedding_model or an http(s) url",
                             "publish it with `appliance classes publish`")
    return data


def fetch(url: str, password: str | None, dest: Path) -> None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {password}"} if password else {})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as resp, dest.open("wb") as out:
            total = 0
            while chunk := resp.read(1 << 20):
                total += len(chunk)
                if total > MAX_SET_BYTES:
                    raise ApplianceError(f"the class set at {url} is larger than {MAX_SET_BYTES} bytes",
                                         "publish a smaller set")
                out.write(chunk)
    except OSError as exc:
        raise ApplianceError(f"cannot fetch the class set from {url}: {exc}",
                             "check that the publishing box is up, its public_url, and fleet_password_file "
                             "when it has a web password") from None


def apply_set(system: System, announcement: dict, *, password: str | None = None) -> list[ClassInfo]:
    """Fetch, verify and import one announced set; -> the imported ClassInfo list (ApplianceError if not)."""
    data_dir = Path(system.config.data_dir)
    name, version = announcement["name"], announcement["version"]
    applied = _records(data_dir, "applied")
    old = applied.get(name)
    if old is not None and old.get("version", 0) >= version:
        return []
    store = system.store
    if not same_model(announcement["embedding_model"], store.embedding_model):
        raise StoreError(f"class set {name!r} v{version} was taught with "
                         f"{base_name(announcement['embedding_model'])!r}, this box uses "
                         f"{base_name(store.embedding_model)!r}",
                         "subscribe only to sets taught with the same [vision] embedder")
    (data_dir / FLEET_DIR).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="appliance-set-", dir=data_dir / FLEET_DIR) as tmp:
        path = Path(tmp) / f"{name}.sqlite"
        fetch(announcement["url"], password, path)
        got = sha256_file(path)
        if got != announcement["sha256"]:
            raise StoreError(f"class set {name!r} v{version} from {announcement['url']} has sha256 "
                             f"{got[:12]}..., not the announced {announcement['sha256'][:12]}...",
                             "the file changed after it was announced: publish the set again")
        replacing: list[str] = []
        if old is not None:  # a newer version replaces what the older one brought; keep a backup first
            store.export(data_dir / FLEET_DIR / f"backup-before-{name}-v{version}.sqlite")
            replacing = old.get("labels", [])
        imported = system.classes.import_(path, replacing=replacing)
    applied[name] = {"version": version, "sha256": announcement["sha256"],
                     "labels": [c.label for c in imported], "time": round(time.time(), 3)}
    _save_records(data_dir, "applied", applied)
    log.info("imported class set %r v%d: %s", name, version, ", ".join(c.label for c in imported))
    return imported
