"""Optional password and cross-site request forgery checks for a device on the LAN.

The password is stored only as a salted scrypt hash in a self-describing string
(`scrypt$n$r$p$salt$hash`, base64 parts), so the parameters can change without breaking old hashes.
A browser logs in once (a signed, HttpOnly, SameSite=Strict session cookie whose key is kept in
<data_dir>/web_secret so sessions survive restarts); API clients send `Authorization: Bearer <password>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path
from urllib.parse import urlsplit

from appliance.errors import ApplianceError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/login", "/logout", "/api/openapi.json"})


class UnauthorizedError(ApplianceError):
    """The password is needed."""

    status = 401


class ForbiddenError(ApplianceError):
    """A request came from another site (cross-site request forgery)."""

    status = 403


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash string for config `web.password_hash`."""
    if not password:
        raise ApplianceError("the password is empty", "type a password of at least one character")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, digest) of a stored hash; ConfigError-style message when malformed."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        return int(n), int(r), int(p), base64.b64decode(salt, validate=True), base64.b64decode(
            digest, validate=True
        )
    except (ValueError, TypeError) as exc:
        raise ApplianceError(
            "web.password_hash is not a hash made by `appliance passwd`",
            "run `appliance passwd` and put the line it prints in the config as web.password_hash",
        ) from exc


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a stored hash string."""
    n, r, p, salt, digest = parse_hash(stored)
    candidate = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=256 * 1024 * 1024
    )
    return hmac.compare_digest(candidate, digest)


class PasswordCheck:
    """Verifies passwords against one stored hash; remembers recent good bearer tokens by digest.

    scrypt costs tens of milliseconds by design; an API client sending the same bearer token on every
    request should not pay that each time. Only a keyed digest of tokens already verified is kept.
    """

    def __init__(self, stored_hash: str) -> None:
        self.stored_hash = stored_hash
        parse_hash(stored_hash)  # fail at start-up, not at the first login
        self._key = secrets.token_bytes(32)
        self._good: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        """Short digest of the stored hash: a session made under another password is void."""
        return hashlib.sha256(self.stored_hash.encode()).hexdigest()[:16]

    def _token(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def cached(self, password: str) -> bool:
        """True when this password was verified before (an HMAC lookup: no scrypt)."""
        token = self._token(password)
        with self._lock:
            return token in self._good

    def check(self, password: str) -> bool:
        token = self._token(password)
        with self._lock:
            if token in self._good:
                return True
        if not verify_password(password, self.stored_hash):  # scrypt: the caller throttles this
            return False
        with self._lock:
            if len(self._good) > 64:
                self._good.clear()
            self._good.add(token)
        return True


def load_secret_key(data_dir: Path) -> bytes:
    """The session signing key in <data_dir>/web_secret, created (mode 0600) on first use."""
    path = Path(data_dir) / "web_secret"
    try:
        key = path.read_bytes().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    tmp = path.with_name(f".web_secret.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


def bearer_token(authorization: str | None) -> str | None:
    """The password from an `Authorization: Bearer <password>` header, if any."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    try:  # WSGI hands headers over as latin-1: recover a UTF-8 password sent as raw bytes
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def origin_allowed(method: str, host: str | None, origin: str | None, referer: str | None) -> bool:
    """False for a mutating request whose Origin (or else Referer) names another host than Host.

    Requests with neither header (curl, scripts) are allowed: a browser always sends Origin on a
    cross-site POST / PATCH / DELETE, so forged requests cannot omit it.
    """
    if method.upper() not in MUTATING:
        return True
    source = origin if origin is not None else referer
    if source is None or source == "":
        return True
    if source == "null":  # sandboxed frames, file:// pages
        return False
    netloc = urlsplit(source).netloc
    return bool(host) and netloc.lower() == (host or "").lower()
