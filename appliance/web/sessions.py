"""Server-side sessions: logging out ends a session for good, a new password ends all of them.

The signed cookie alone cannot be taken back (it stays valid until it expires), so each login gets a
random session id that must also be on the list kept in <data_dir>/web_sessions.json (only SHA-256
digests of the ids, with the password fingerprint and expiry). Logout removes the id; a session made
under another password hash (the fingerprint) is refused, so changing web.password_hash ends every session.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path

from appliance.errors import StorageError

log = logging.getLogger(__name__)

FILE_NAME = "web_sessions.json"
_FILE_LOCK = threading.Lock()  # apps in one process may share a data dir (tests, a restart in place)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "replace")).hexdigest()


class Sessions:
    def __init__(self, data_dir: Path, fingerprint: str, lifetime_s: float) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self.fingerprint = fingerprint
        self.lifetime_s = lifetime_s
        self._cached: tuple[tuple[int, int], dict[str, dict]] | None = None

    def _load(self) -> dict[str, dict]:
        """The live entries (a copy); the file is parsed again only when it changed."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if self._cached is not None and self._cached[0] == stamp:
                return dict(self._cached[1])
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable session list %s (all log in again): %s", self.path, exc)
            return {}
        now = time.time()
        entries = {k: v for k, v in data.items() if isinstance(v, dict) and v.get("expires", 0) > now} \
            if isinstance(data, dict) else {}
        self._cached = (stamp, entries)
        return dict(entries)

    def _save(self, entries: dict[str, dict]) -> None:
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(entries, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._cached = None
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write the session list {self.path}: {exc}",
                               "check that the data folder is writable and the disk not full") from exc

    def new(self) -> str:
        """A new session id, on the list before it is handed out."""
        sid = secrets.token_urlsafe(32)
        with _FILE_LOCK:
            entries = self._load()
            entries[_digest(sid)] = {"fp": self.fingerprint, "expires": time.time() + self.lifetime_s}
            self._save(entries)
        return sid

    def valid(self, sid: object) -> bool:
        if not isinstance(sid, str) or not sid:
            return False
        with _FILE_LOCK:
            entry = self._load().get(_digest(sid))
        return entry is not None and entry.get("fp") == self.fingerprint and entry["expires"] > time.time()

    def revoke(self, sid: object) -> None:
        if not isinstance(sid, str) or not sid:
            return
        with _FILE_LOCK:
            entries = self._load()
            if entries.pop(_digest(sid), None) is not None:
                self._save(entries)
