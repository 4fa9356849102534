"""Which libedgetpu + TFLite runtime pair belongs on this platform, and which pair is installed now.

A libedgetpu must be built from the same TensorFlow version as the runtime that loads it, or the first
invoke can crash (see edgetpu_runtime.toml beside this file, which pins one pair per platform with its
public evidence). install.sh runs this file by path with the system's python3 before any venv exists,
so it uses the standard library only and imports nothing from the package:

    python3 appliance/vision/runtime_pairs.py --os-codename bookworm --python 3.11 --arch arm64

prints the chosen pair as shell-safe ETPU_KEY=VALUE lines (exit 0), or the problem and its fix (exit 2).
`installed_runtime_info()` says what is installed, for doctor, /api/status and /metrics.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections import namedtuple
from dataclasses import dataclass, fields
from pathlib import Path

try:  # inside the package; install.sh runs this file by path, where the package may not be importable
    from appliance.errors import ApplianceError as _ErrorBase
except ImportError:  # pragma: no cover - exercised by install.sh's bare python3
    class _ErrorBase(Exception):  # type: ignore[no-redef]
        def __init__(self, problem: str, fix: str = "") -> None:
            super().__init__(problem)
            self.problem, self.fix = problem, fix

MANIFEST_PATH = Path(__file__).with_name("edgetpu_runtime.toml")
ENV_EDGETPU_LIB = "APPLIANCE_EDGETPU_LIB"
LIBEDGETPU_PACKAGES = ("libedgetpu1-std", "libedgetpu1-max")
RUNTIMES = ("tflite_runtime", "ai_edge_litert")  # the one listed first wins when both are installed
INSTALL_FIX = "sudo ./install.sh --edgetpu installs the matched pair (appliance/vision/edgetpu_runtime.toml)"
RESTORE_FIX = "restore appliance/vision/edgetpu_runtime.toml from the project's repository"
ARCH_ALIASES = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "amd64", "amd64": "amd64"}
_TF_IN_DEB_VERSION = re.compile(r"tf(\d+(?:\.\d+)+)", re.IGNORECASE)


class PairError(_ErrorBase):
    """No pair for this platform, or a manifest that breaks its own rules: the problem and the fix."""


@dataclass(frozen=True)
class Pair:
    """One platform's libedgetpu .deb and runtime wheel (the keys of a [[pair]] in the manifest)."""

    os_codename: str
    python: str
    arch: str
    tf_version: str
    deb_package: str
    deb_version: str
    deb_tf_version: str
    deb_url: str
    deb_sha256: str
    runtime: str
    runtime_version: str
    runtime_tf_version: str
    wheel_url: str
    wheel_sha256: str
    numpy_constraint: str
    evidence_strength: str
    evidence: str
    sources: tuple[str, ...] = ()

    @property
    def platform(self) -> str:
        return f"{self.os_codename}/{self.python}/{self.arch}"


Rule = namedtuple("Rule", "libedgetpu_version libedgetpu_tf_version max_runtime_tf_version why")
Unsupported = namedtuple("Unsupported", "os_codename python arch problem fix")
Manifest = namedtuple("Manifest", "pairs unsupported rules")
RuntimeInfo = namedtuple(
    "RuntimeInfo",
    "runtime runtime_version tf_version libedgetpu libedgetpu_version libedgetpu_tf_version problem",
)
RuntimeInfo.__doc__ = """What is installed: runtime (import name) and version, the TF version it was built
from (None where unpublished), libedgetpu (package name, or the APPLIANCE_EDGETPU_LIB path) with its version
and TF version, and `problem`: why the two are not a known matched pair (None when they are, or when either
is absent)."""


# --- versions -----------------------------------------------------------------------------------------

def version_tuple(version: str) -> tuple[int, ...]:
    """'2.17.1' -> (2, 17, 1); trailing non-numeric parts ('2.5.0.post1') are dropped."""
    parts = []
    for part in version.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def runtime_tf_version(runtime: str, version: str) -> str | None:
    """tflite_runtime is versioned as the TF release it was built from; ai_edge_litert does not say."""
    if runtime == "tflite_runtime":
        return ".".join(str(n) for n in version_tuple(version)) or None
    return None


def libedgetpu_tf_version(deb_version: str, rules: tuple[Rule, ...]) -> str | None:
    """feranick's builds name their TF ('16.0tf2.17.1-1'); Coral's 16.0 is TF 2.5 (from the rules)."""
    found = _TF_IN_DEB_VERSION.search(deb_version)
    if found:
        return found.group(1)
    upstream = deb_version.split("-")[0]
    return next((r.libedgetpu_tf_version for r in rules if r.libedgetpu_version == upstream), None)


def normalize_arch(arch: str) -> str:
    return ARCH_ALIASES.get(arch.strip().lower(), arch.strip().lower())


def normalize_python(version: str) -> str:
    """'3.11.2' -> '3.11'."""
    return ".".join(version.strip().split(".")[:2])


# --- rules ----------------------------------------------------------------------------------------------

def rule_violation(deb_version: str, runtime: str, runtime_tf: str | None,
                   rules: tuple[Rule, ...]) -> str | None:
    """The [[rule]] a libedgetpu + runtime breaks, e.g. Coral's 16.0 with a runtime newer than 2.11."""
    upstream = deb_version.split("-")[0]
    for rule in rules:
        if upstream != rule.libedgetpu_version:
            continue
        limit = version_tuple(rule.max_runtime_tf_version)
        if runtime_tf is None or version_tuple(runtime_tf)[:len(limit)] > limit:
            built = f"TF {runtime_tf}" if runtime_tf else "a TF version it does not publish"
            return (f"libedgetpu {deb_version} (built from TF {rule.libedgetpu_tf_version}) must not be "
                    f"paired with {runtime} (built from {built}; newer than {rule.max_runtime_tf_version} "
                    f"is known to crash): {rule.why}")
    return None


def pair_problem(deb_version: str, runtime: str, runtime_version: str, rules: tuple[Rule, ...]) -> str | None:
    """Why this libedgetpu and this runtime are not a matched pair, or None when both name one TF version
    (or a [[rule]] covers this libedgetpu and the runtime is within its limit)."""
    runtime_tf = runtime_tf_version(runtime, runtime_version)
    if any(deb_version.split("-")[0] == rule.libedgetpu_version for rule in rules):
        return rule_violation(deb_version, runtime, runtime_tf, rules)
    deb_tf = libedgetpu_tf_version(deb_version, rules)
    if deb_tf and runtime_tf and version_tuple(deb_tf) == version_tuple(runtime_tf):
        return None
    return (f"libedgetpu {deb_version} (built from TF {deb_tf or 'unknown'}) and {runtime} "
            f"{runtime_version} (built from TF {runtime_tf or 'unknown'}) are not a known matched pair: "
            f"the first invoke can crash")


def check_pair(pair: Pair, rules: tuple[Rule, ...]) -> None:
    """A manifest pair must break no rule and be built from one TF version (as declared, and as its version
    strings say where they do); raise PairError otherwise."""
    derived = {libedgetpu_tf_version(pair.deb_version, rules), runtime_tf_version(pair.runtime,
                                                                                   pair.runtime_version)}
    problem = rule_violation(pair.deb_version, pair.runtime, pair.runtime_tf_version, rules)
    named = {pair.tf_version, pair.deb_tf_version, pair.runtime_tf_version} | (derived - {None})
    if not problem and len(named) != 1:
        problem = f"the pair for {pair.platform} names several TF versions: {sorted(named)}"
    if problem:
        raise PairError(f"edgetpu_runtime.toml: {problem}",
                        "fix the manifest: both halves of a pair must be built from the same TensorFlow")


# --- manifest -------------------------------------------------------------------------------------------

def parse_manifest(raw: dict) -> Manifest:
    rules = tuple(Rule(r["libedgetpu_version"], r["libedgetpu_tf_version"], r["max_runtime_tf_version"],
                       " ".join(r.get("why", "").split())) for r in raw.get("rule", []))
    names = {f.name for f in fields(Pair)}
    pairs = []
    for item in raw.get("pair", []):
        values = {k: v for k, v in item.items() if k in names}
        values["sources"] = tuple(values.get("sources", ()))
        values["evidence"] = " ".join(values.get("evidence", "").split())
        pair = Pair(**values)
        check_pair(pair, rules)
        pairs.append(pair)
    unsupported = tuple(Unsupported(u["os_codename"], u["python"], u["arch"], " ".join(u["problem"].split()),
                                    " ".join(u["fix"].split())) for u in raw.get("unsupported", []))
    return Manifest(tuple(pairs), unsupported, rules)


def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PairError(f"the Edge TPU runtime manifest {path} cannot be read: {exc}",
                        RESTORE_FIX) from exc
    try:
        return parse_manifest(raw)
    except (KeyError, TypeError) as exc:
        raise PairError(f"the Edge TPU runtime manifest {path} has a malformed entry: {exc}",
                        RESTORE_FIX) from exc


# --- selection ------------------------------------------------------------------------------------------

def _supported(manifest: Manifest) -> str:
    return ", ".join(p.platform for p in manifest.pairs)


def select_pair(manifest: Manifest, os_codename: str, python: str, arch: str) -> Pair:
    """The pair pinned for this platform, or PairError naming the problem and the fix."""
    key = (os_codename.strip().lower(), normalize_python(python), normalize_arch(arch))
    for pair in manifest.pairs:
        if (pair.os_codename, pair.python, pair.arch) == key:
            return pair
    for item in manifest.unsupported:
        if (item.os_codename, item.python, item.arch) == key:
            raise PairError(item.problem, item.fix)
    same_os = [p for p in manifest.pairs if p.os_codename == key[0] and p.arch == key[2]]
    if same_os:
        raise PairError(f"no Edge TPU runtime pair is pinned for Python {key[1]} on {key[0]} ({key[2]}): "
                        f"its pair is for Python {same_os[0].python}, the OS's own python3",
                        "create the venv with /usr/bin/python3 (unset APPLIANCE_PYTHON), or run on the CPU "
                        "(vision.device = \"cpu\")")
    raise PairError(f"no Edge TPU runtime pair is pinned for {key[0] or 'this OS'} with Python {key[1]} on "
                    f"{key[2]} (pinned: {_supported(manifest)})",
                    "use Raspberry Pi OS / Debian 12 (bookworm) or 13 (trixie), 64-bit, for the Edge TPU; "
                    "elsewhere the appliance runs on the CPU (vision.device = \"cpu\")")


def shell_lines(pair: Pair) -> list[str]:
    """ETPU_KEY=VALUE lines, each value quoted for the shell (install.sh evals them)."""
    values = {
        "PLATFORM": pair.platform, "TF_VERSION": pair.tf_version,
        "DEB_PACKAGE": pair.deb_package, "DEB_VERSION": pair.deb_version,
        "DEB_URL": pair.deb_url, "DEB_SHA256": pair.deb_sha256,
        "RUNTIME": pair.runtime, "RUNTIME_VERSION": pair.runtime_version,
        "WHEEL_URL": pair.wheel_url, "WHEEL_SHA256": pair.wheel_sha256,
        "NUMPY_CONSTRAINT": pair.numpy_constraint,
        "EVIDENCE_STRENGTH": pair.evidence_strength, "EVIDENCE": pair.evidence,
    }
    return [f"ETPU_{key}={shlex.quote(value)}" for key, value in values.items()]


# --- what is installed ----------------------------------------------------------------------------------

def dpkg_version(package: str) -> str | None:
    """The installed version of a Debian package, None when it is not installed (or there is no dpkg)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    status, _, version = out.stdout.partition("\t")
    if out.returncode != 0 or status != "install ok installed":
        return None
    return version.strip() or None


def dist_version(name: str) -> str | None:
    """The installed version of a Python distribution, found without importing it (a bad pair can crash)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_runtime_info(env: dict | None = None, manifest: Manifest | None = None,
                           query_deb=dpkg_version, query_dist=dist_version) -> RuntimeInfo:
    """The runtime and libedgetpu this machine has, their TF versions, and whether they are a matched pair."""
    env = os.environ if env is None else env
    rules = (manifest or load_manifest()).rules
    runtime, runtime_version = next(((r, v) for r in RUNTIMES if (v := query_dist(r))), (None, None))
    lib_path = env.get(ENV_EDGETPU_LIB)
    if lib_path:
        lib, lib_version = lib_path, None
    else:
        lib, lib_version = next(((p, v) for p in LIBEDGETPU_PACKAGES if (v := query_deb(p))), (None, None))
    lib_tf = libedgetpu_tf_version(lib_version, rules) if lib_version else None
    problem = None
    if runtime and lib_version:
        problem = pair_problem(lib_version, runtime, runtime_version, rules)
    runtime_tf = runtime_tf_version(runtime, runtime_version) if runtime else None
    return RuntimeInfo(runtime, runtime_version, runtime_tf, lib, lib_version, lib_tf, problem)


# --- command line ---------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Print the Edge TPU runtime pair pinned for a platform.")
    parser.add_argument("--os-codename", help="VERSION_CODENAME from /etc/os-release, e.g. bookworm")
    parser.add_argument("--python", default="{}.{}".format(*sys.version_info[:2]),
                        help="major.minor of the venv's Python (default: this one)")
    parser.add_argument("--arch", help="dpkg --print-architecture: arm64 or amd64")
    parser.add_argument("--manifest", type=Path, default=MANIFEST_PATH, help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help="list every pinned platform and its evidence")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        manifest = load_manifest(args.manifest)
        if args.list:
            for pair in manifest.pairs:
                print(f"{pair.platform}: {pair.deb_package} {pair.deb_version} + {pair.runtime} "
                      f"{pair.runtime_version} (TF {pair.tf_version}; evidence: {pair.evidence_strength})")
            for item in manifest.unsupported:
                print(f"{item.os_codename}/{item.python}/{item.arch}: none ({item.problem})")
            return 0
        if not args.os_codename or not args.arch:
            raise PairError("--os-codename and --arch are needed", "e.g. --os-codename bookworm --arch arm64")
        print("\n".join(shell_lines(select_pair(manifest, args.os_codename, args.python, args.arch))))
        return 0
    except PairError as exc:
        print(f"runtime_pairs: {exc.problem}", file=sys.stderr)
        if exc.fix:
            print(f"  fix: {exc.fix}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
