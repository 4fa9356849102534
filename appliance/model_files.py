"""The manifest of official models, and getting a verified copy of one into the models folder.

A name is looked up in the models folder, then a local folder (--from / APPLIANCE_MODELS_FROM, which
dev.sh and CI point at the development machines' verified copies), then the official URL. Every copy
or download lands in a temporary file in the models folder, is checked against the manifest's sha256 (or
git blob id where that is all that is known) and only then renamed into place, so a half-written or
tampered file is never used.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

from appliance.config import load_config
from appliance.errors import ModelError
from appliance.paths import MANIFEST_PATH, default_data_dir
from appliance.vision import backends

ENV_MODELS_FROM = "APPLIANCE_MODELS_FROM"
DOWNLOAD_TIMEOUT_S = 30.0
_CHUNK = 1 << 20

Digests = namedtuple("Digests", "sha256 git_blob size")
Resolved = namedtuple("Resolved", "path source")  # source: where the file came from, for messages


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    role: str
    url: str = ""
    member: str = ""
    sha256: str = ""
    git_blob: str = ""
    size: int | None = None
    labels: str | None = None
    default: bool = False


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, ModelEntry]:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"the model manifest {path} cannot be read: {exc}",
                         "restore models/manifest.toml from the project's repository") from exc
    entries = {}
    for item in raw.get("model", []):
        name = item["name"]
        fields = {k: v for k, v in item.items() if k in ModelEntry.__dataclass_fields__}
        fields.setdefault("file", name if name.endswith((".tflite", ".txt")) else name + ".tflite")
        entries[name] = ModelEntry(**fields)
    return entries


def find_entry(name: str, manifest: dict[str, ModelEntry] | None = None) -> ModelEntry | None:
    """The entry for a manifest name or file name, with or without .tflite."""
    manifest = load_manifest() if manifest is None else manifest
    name = Path(name).name
    for entry in manifest.values():
        if name in (entry.name, entry.file) or name.removesuffix(".tflite") == entry.name:
            return entry
    return None


def file_digests(path: Path) -> Digests:
    size = Path(path).stat().st_size
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(b"blob %d\0" % size)  # noqa: S324 - git's object id, not a security hash
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            sha256.update(chunk)
            blob.update(chunk)
    return Digests(sha256.hexdigest(), blob.hexdigest(), size)


def hash_mismatch(path: Path, entry: ModelEntry, digests: Digests) -> str | None:
    """None when the file is the manifest's; otherwise "expected X, got Y" for the hash that differs."""
    if entry.sha256:
        if digests.sha256 != entry.sha256.lower():
            return f"expected sha256 {entry.sha256}, got {digests.sha256}"
    elif entry.git_blob:
        if digests.git_blob != entry.git_blob.lower():
            return f"expected git blob {entry.git_blob}, got {digests.git_blob}"
    else:
        return f"the manifest lists no hash for {entry.name}, so it cannot be verified"
    return None


def verify_file(path: Path, entry: ModelEntry, *, fix: str = "") -> None:
    problem = hash_mismatch(path, entry, file_digests(path))
    if problem:
        raise ModelError(
            f"{path} is not the official {entry.file}: {problem}",
            fix or f"delete it and run `appliance models fetch {entry.name}` to get a verified copy",
        )


def _install(tmp: Path, target: Path, entry: ModelEntry, origin: str) -> None:
    """Verify the temporary file, then atomically move it into place (or delete it)."""
    try:
        problem = hash_mismatch(tmp, entry, file_digests(tmp))
        if problem:
            raise ModelError(f"{entry.file} from {origin} failed verification: {problem}",
                             f"that copy is corrupt or a different version: replace it, or fetch "
                             f"{entry.name} from another source (--from DIR or the official URL)")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_in(folder: Path, name: str) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    except OSError as exc:  # read-only, full, or a file in the way: a sentence, not a traceback
        raise ModelError(f"cannot write the models folder {folder}: {exc.strerror or exc}",
                         "make it writable, or choose another folder (--data-dir DIR or --models-dir DIR)"
                         ) from exc
    os.close(fd)
    return Path(tmp)


def copy_verified(source: Path, target: Path, entry: ModelEntry) -> None:
    tmp = _temp_in(target.parent, target.name)
    try:
        shutil.copyfile(source, tmp)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"could not copy {source} to {target.parent}: {exc.strerror or exc}",
                         "check that the models folder is writable (or pass --models-dir DIR)") from exc
    _install(tmp, target, entry, str(source))


def download_verified(entry: ModelEntry, target: Path, *, url: str | None = None,
                      timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    url = url or entry.url
    tmp = _temp_in(target.parent, target.name)
    fetched = tmp.with_suffix(".download") if entry.member else tmp
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(fetched, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
        if entry.member:
            try:
                with zipfile.ZipFile(fetched) as archive, archive.open(entry.member) as member, \
                        open(tmp, "wb") as out:
                    shutil.copyfileobj(member, out, _CHUNK)
            except (zipfile.BadZipFile, KeyError) as exc:
                raise ModelError(f"{url} is not a zip holding {entry.member}: {exc}",
                                 "the official archive changed or the download is corrupt; use --from DIR "
                                 "with a verified copy") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise ModelError(f"could not download {entry.file} from {url}: {reason}",
                         "check the network connection, or copy the models from a machine that has them: "
                         f"`appliance models fetch --from DIR` (in a checkout: `.venv/bin/appliance`), "
                         f"or set {ENV_MODELS_FROM}=DIR") from exc
    except ModelError:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if fetched != tmp:
            fetched.unlink(missing_ok=True)
    _install(tmp, target, entry, url)


def _local_sources(models_from: Path | str | None) -> list[Path]:
    chosen = models_from or os.environ.get(ENV_MODELS_FROM) or None
    sources = []
    if chosen:
        folder = Path(chosen).expanduser()
        if not folder.is_dir():
            raise ModelError(f"the folder to copy models from, {folder}, does not exist",
                             f"check --from / vision.models_from / {ENV_MODELS_FROM}")
        sources.append(folder)
    return sources


def _looks_like_path(text: str) -> bool:
    return os.sep in text or text.startswith(("~", ".")) or (os.altsep is not None and os.altsep in text)


def resolve(name_or_path, *, models_dir, models_from=None, manifest: dict[str, ModelEntry] | None = None,
            url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> Resolved:
    """Like resolve_model, also saying where the file came from (for `appliance models fetch`)."""
    text = str(name_or_path)
    as_path = Path(text).expanduser()
    if as_path.is_file():
        return Resolved(as_path, "given path")
    if _looks_like_path(text):
        raise ModelError(f"{as_path} does not exist",
                         "check the path, or give a model name from `appliance models list`")
    manifest = load_manifest() if manifest is None else manifest
    entry = find_entry(text, manifest)
    if entry is None:
        raise ModelError(f"{text} is neither a file nor a model name in the manifest",
                         "give the path of a .tflite file, or a name from `appliance models list`")
    models_dir = Path(models_dir).expanduser()
    target = models_dir / entry.file
    if target.is_file():
        verify_file(target, entry)
        return Resolved(target, "models_dir")
    for folder in _local_sources(models_from):
        candidate = folder / entry.file
        if candidate.is_file() and candidate.resolve() != target.resolve():
            copy_verified(candidate, target, entry)
            return Resolved(target, f"copied from {folder}")
    if url or entry.url:
        download_verified(entry, target, url=url, timeout=timeout)
        return Resolved(target, f"downloaded from {url or entry.url}")
    raise ModelError(f"{entry.file} is not in {models_dir}, no local copy was found and it has no URL",
                     f"copy it from a machine that has it: `appliance models fetch --from DIR {entry.name}`")


def resolve_model(name_or_path, *, models_dir, models_from=None, **kwargs) -> Path:
    """A verified local path for a model or label file name (or the given path when it exists)."""
    return resolve(name_or_path, models_dir=models_dir, models_from=models_from, **kwargs).path


def labels_for_model(model_path, *, kind: str | None = None, classes: int | None = None,
                     manifest: dict[str, ModelEntry] | None = None) -> str | None:
    """The label file that goes with a model: the manifest's, or ImageNet's for a 1001-class classifier."""
    name = Path(model_path).name
    entry = find_entry(name, manifest) or find_entry(backends.twin_name(name, backends.CPU), manifest)
    if entry is not None and entry.labels:
        return entry.labels
    if kind == "classifier" and classes == 1001:
        return "imagenet_labels.txt"
    return None


def default_models_dir(config=None) -> Path:
    """The configured models folder; without a config file, a per-user folder (dev and demo runs)."""
    if config is None:
        config = load_config(None)
    if config.path is None and not config.vision.models_dir:
        return default_data_dir() / "models"
    return Path(config.models_dir)


def default_names(config=None, manifest: dict[str, ModelEntry] | None = None) -> tuple[list[str], list[str]]:
    """(required, optional): the configured models and labels, and their Edge TPU twins when listed."""
    manifest = load_manifest() if manifest is None else manifest
    if config is not None:
        v = config.vision
        required = [v.classifier, v.detector, v.embedder, v.classifier_labels, v.detector_labels]
    else:
        required = [e.name for e in manifest.values() if e.default]
    required = list(dict.fromkeys(required))
    optional = []
    for name in required:
        for accelerator in backends.accelerators():
            twin = find_entry(backends.twin_name(name, accelerator.name), manifest)
            if twin is not None and twin.name not in required:
                optional.append(twin.name)
    return required, optional
