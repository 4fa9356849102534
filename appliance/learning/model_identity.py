"""Which embedding model a store was taught with: embeddings of two different models are not comparable.

An identity is "<file name> sha256:<hex>" (from `model_identity(path)`) or any plain name a caller passes.
Two identities name the same model when their base names match after dropping a directory, ".tflite" and
the "_edgetpu" suffix (the Edge TPU compiler keeps the quantised weights, so a model and its Edge TPU twin
give the same embeddings), and, when both carry a sha256 of the same file name, the hashes agree.
"""

import hashlib
from pathlib import Path

from appliance.vision import backends

_SHA = " sha256:"


def model_identity(path: str | Path) -> str:
    """The identity to store for the model file at `path`: its name and the sha256 of its bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f"{path.name}{_SHA}{digest.hexdigest()}"


def _split(identity: str) -> tuple[str, str | None]:
    name, sep, sha = identity.strip().rpartition(_SHA)
    if not sep:
        name, sha = identity.strip(), None
    name = Path(name).name if name else name
    return name.removesuffix(".tflite"), (sha or None)


def base_name(identity: str) -> str:
    """The model's name without folder, extension and accelerator suffix: what the user recognises."""
    return backends.twin_name(_split(identity)[0], backends.CPU)


def same_model(a: str, b: str) -> bool:
    """True when embeddings from model `a` can be compared with embeddings from model `b`."""
    name_a, sha_a = _split(a)
    name_b, sha_b = _split(b)
    if backends.twin_name(name_a, backends.CPU) != backends.twin_name(name_b, backends.CPU):
        return False
    if name_a == name_b and sha_a and sha_b:
        return sha_a == sha_b
    return True
