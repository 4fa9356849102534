"""Errors a user can act on: each names the problem and, where there is one, the fix.

The CLI prints these without a traceback; the web API turns them into JSON with a status code.
"""


class ApplianceError(Exception):
    """Something the user can fix. `problem` says what is wrong, `fix` what to do about it."""

    status = 400  # the HTTP status the web API answers with
    retry_after: float | None = None  # seconds, for the web API's Retry-After (a refusal that passes)

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem


class ConfigError(ApplianceError):
    """The configuration file or a flag is wrong."""


class ModelError(ApplianceError):
    """A model file is missing, corrupt, of the wrong kind, or needs hardware that is absent."""


class DeviceError(ApplianceError):
    """An Edge TPU, camera or GPIO device is missing or unusable."""


class SourceError(ApplianceError):
    """A camera source could not be opened or stopped delivering frames."""


class ImageError(ApplianceError):
    """An image file could not be read."""


class StoreError(ApplianceError):
    """The class store cannot be opened or changed."""


class StorageError(StoreError):
    """The disk under the class store failed (read-only, I/O error, corrupt): the server's fault, not the
    request's, so the web API answers 503."""

    status = 503


class StorageFullError(StorageError):
    """The disk holding the class store is full (HTTP 507 Insufficient Storage)."""

    status = 507


class LabelError(ApplianceError):
    """A class label is empty, too long or has forbidden characters."""


class NotFoundError(ApplianceError):
    """A class (or other named thing) does not exist."""

    status = 404


class ConflictError(ApplianceError):
    """The request clashes with the current state (a label already taken, a teach burst running)."""

    status = 409
