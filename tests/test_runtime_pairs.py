"""The Edge TPU runtime pair per platform: the shipped manifest, the selector's choices and refusals, the
rule that keeps Coral's libedgetpu 16.0 (TF 2.5) away from runtimes newer than 2.11, and what is installed.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.vision import runtime_pairs as rp

SCRIPT = Path(rp.__file__)
FERANICK = "https://github.com/feranick/libedgetpu/releases/download/16.0TF2.17.1-1/"

# Every (os, python, arch) cell the installer can meet, and what must come out of it.
CHOSEN = {
    ("bookworm", "3.11", "arm64"): (FERANICK + "libedgetpu1-std_16.0tf2.17.1-1.bookworm_arm64.deb",
                                    "https://github.com/feranick/TFlite-builds/releases/download/v2.17.1/"
                                    "tflite_runtime-2.17.1-cp311-cp311-linux_aarch64.whl", "strong"),
    ("bookworm", "3.11", "amd64"): (FERANICK + "libedgetpu1-std_16.0tf2.17.1-1.bookworm_amd64.deb",
                                    "https://github.com/frigate-nvr/TFlite-builds/releases/download/v2.17.1/"
                                    "tflite_runtime-2.17.1-cp311-cp311-linux_x86_64.whl", "strong"),
    ("trixie", "3.13", "arm64"): ("https://github.com/ricardodeazambuja/EdgeTPUOnModernRPIs/releases/download/"
                                  "2.17.1/libedgetpu1-std_16.0tf2.17.1-1.trixie_arm64.deb",
                                  "https://github.com/Nachtzuster/BirdNET-Pi/releases/download/v0.1/"
                                  "tflite_runtime-2.17.1-cp313-cp313-linux_aarch64.whl", "weak"),
}
REFUSED = {
    ("trixie", "3.13", "amd64"): "no public libedgetpu build for TensorFlow 2.17.1 on trixie amd64",
    ("bookworm", "3.13", "arm64"): "its pair is for Python 3.11",
    ("trixie", "3.11", "arm64"): "its pair is for Python 3.13",
    ("noble", "3.12", "amd64"): "no Edge TPU runtime pair is pinned for noble",
    ("bullseye", "3.9", "arm64"): "no Edge TPU runtime pair is pinned for bullseye",
    ("bookworm", "3.11", "armhf"): "pinned for bookworm with Python 3.11 on armhf",
}


@pytest.fixture(scope="module")
def manifest() -> rp.Manifest:
    return rp.load_manifest()


@pytest.mark.parametrize("cell", sorted(CHOSEN))
def test_each_supported_platform_gets_its_pinned_pair(manifest, cell):
    pair = rp.select_pair(manifest, *cell)
    deb_url, wheel_url, strength = CHOSEN[cell]
    assert (pair.deb_url, pair.wheel_url, pair.evidence_strength) == (deb_url, wheel_url, strength)
    assert pair.tf_version == pair.deb_tf_version == pair.runtime_tf_version == "2.17.1"
    assert pair.deb_package == "libedgetpu1-std" and pair.runtime == "tflite_runtime"


@pytest.mark.parametrize("cell", sorted(REFUSED))
def test_unsupported_platforms_are_refused_with_a_fix(manifest, cell):
    with pytest.raises(rp.PairError) as caught:
        rp.select_pair(manifest, *cell)
    assert REFUSED[cell] in caught.value.problem
    assert "cpu" in caught.value.fix.lower()


def test_machine_spellings_of_arch_and_python_select_the_same_pair(manifest):
    assert rp.select_pair(manifest, "Bookworm", "3.11.2", "aarch64") == rp.select_pair(manifest, "bookworm",
                                                                                        "3.11", "arm64")
    assert rp.select_pair(manifest, "bookworm", "3.11", "x86_64").arch == "amd64"


def test_every_shipped_pair_is_consistent_with_its_own_files(manifest):
    """The wheel's file name carries the Python and machine the pair is filed under; hashes are real or
    absent (with the manifest's comment saying none was published); every pair cites its evidence."""
    machine = {"arm64": "aarch64", "amd64": "x86_64"}
    assert len(manifest.pairs) == 3
    for pair in manifest.pairs:
        tag = "cp" + pair.python.replace(".", "")
        assert pair.wheel_url.endswith(f"-{pair.runtime_version}-{tag}-{tag}-linux_{machine[pair.arch]}.whl")
        assert f"{pair.deb_package}_{pair.deb_version}.{pair.os_codename}_{pair.arch}.deb" in pair.deb_url
        assert all(u.startswith("https://") for u in (pair.deb_url, pair.wheel_url, *pair.sources))
        for digest in (pair.deb_sha256, pair.wheel_sha256):
            assert digest == "" or re.fullmatch(r"[0-9a-f]{64}", digest)
        assert pair.evidence_strength in {"strong", "moderate", "weak"} and len(pair.evidence) > 100
        assert pair.sources
    text = rp.MANIFEST_PATH.read_text()
    assert text.count('sha256 = ""   # none published') == 2 * len(manifest.pairs)


def test_corals_apt_libedgetpu_is_never_paired_with_a_runtime_newer_than_2_11(manifest):
    rules = manifest.rules
    assert rp.pair_problem("16.0", "tflite_runtime", "2.5.0.post1", rules) is None  # Coral's own pair
    assert rp.pair_problem("16.0", "tflite_runtime", "2.11.1", rules) is None
    for runtime, version in (("tflite_runtime", "2.12.0"), ("tflite_runtime", "2.17.1"),
                             ("ai_edge_litert", "2.3.0")):
        problem = rp.pair_problem("16.0", runtime, version, rules)
        assert problem and "must not be paired" in problem and "#812" in problem


def test_feranicks_builds_match_only_their_own_tensorflow(manifest):
    assert rp.pair_problem("16.0tf2.17.1-1", "tflite_runtime", "2.17.1", manifest.rules) is None
    assert rp.pair_problem("16.0tf2.17.1-1.bookworm", "tflite_runtime", "2.17.1", manifest.rules) is None
    problem = rp.pair_problem("16.0tf2.17.1-1", "tflite_runtime", "2.16.1", manifest.rules)
    assert "not a known matched pair" in problem and "TF 2.16.1" in problem
    assert "not a known matched pair" in rp.pair_problem("16.0tf2.17.1-1", "ai_edge_litert", "2.3.0",
                                                         manifest.rules)


def _raw_pair(**changes) -> dict:
    raw = {f: "" for f in ("deb_url", "deb_sha256", "wheel_url", "wheel_sha256", "numpy_constraint")}
    raw.update(os_codename="bookworm", python="3.11", arch="arm64", tf_version="2.17.1",
               deb_package="libedgetpu1-std", deb_version="16.0tf2.17.1-1", deb_tf_version="2.17.1",
               runtime="tflite_runtime", runtime_version="2.17.1", runtime_tf_version="2.17.1",
               evidence_strength="weak", evidence="test")
    raw.update(changes)
    return raw


def test_a_manifest_that_pairs_corals_16_0_with_a_newer_runtime_is_refused(manifest):
    coral = {"libedgetpu_version": "16.0", "libedgetpu_tf_version": "2.5", "max_runtime_tf_version": "2.11"}
    bad = _raw_pair(deb_version="16.0", deb_tf_version="2.17.1")
    with pytest.raises(rp.PairError, match="must not be paired"):
        rp.parse_manifest({"rule": [coral], "pair": [bad]})
    with pytest.raises(rp.PairError, match="several TF versions"):
        rp.parse_manifest({"rule": [coral], "pair": [_raw_pair(runtime_version="2.16.1",
                                                               runtime_tf_version="2.16.1")]})
    with pytest.raises(rp.PairError, match="several TF versions"):  # 16.0tf2.16.1 says TF 2.16.1
        rp.parse_manifest({"rule": [coral], "pair": [_raw_pair(deb_version="16.0tf2.16.1-1")]})
    assert rp.parse_manifest({"rule": [coral], "pair": [_raw_pair()]}).pairs[0].tf_version == "2.17.1"


def test_an_unreadable_manifest_names_the_file_and_the_fix(tmp_path):
    broken = tmp_path / "edgetpu_runtime.toml"
    broken.write_text("[[pair]\n")
    with pytest.raises(rp.PairError) as caught:
        rp.load_manifest(broken)
    assert str(broken) in caught.value.problem and "restore" in caught.value.fix


def _queries(debs: dict, dists: dict):
    return {"query_deb": debs.get, "query_dist": dists.get}


def test_installed_info_reports_a_matched_pair(manifest):
    info = rp.installed_runtime_info({}, manifest, **_queries({"libedgetpu1-std": "16.0tf2.17.1-1"},
                                                              {"tflite_runtime": "2.17.1",
                                                               "ai_edge_litert": "2.3.0"}))
    assert info == rp.RuntimeInfo("tflite_runtime", "2.17.1", "2.17.1", "libedgetpu1-std", "16.0tf2.17.1-1",
                                  "2.17.1", None)


def test_installed_info_flags_corals_16_0_under_ai_edge_litert(manifest):
    info = rp.installed_runtime_info({}, manifest, **_queries({"libedgetpu1-max": "16.0"},
                                                              {"ai_edge_litert": "2.3.0"}))
    assert (info.runtime, info.tf_version, info.libedgetpu, info.libedgetpu_tf_version) == \
        ("ai_edge_litert", None, "libedgetpu1-max", "2.5")
    assert "must not be paired" in info.problem


def test_installed_info_names_the_library_from_the_environment(manifest):
    info = rp.installed_runtime_info({rp.ENV_EDGETPU_LIB: "/tmp/libedgetpu.so.1"}, manifest,
                                     **_queries({"libedgetpu1-std": "16.0"}, {"ai_edge_litert": "2.3.0"}))
    assert (info.libedgetpu, info.libedgetpu_version, info.problem) == ("/tmp/libedgetpu.so.1", None, None)


def test_installed_info_on_this_machine_reads_dpkg_and_the_venv_for_real(manifest):
    """No libedgetpu here; the CPU runtime is the venv's ai-edge-litert, found without importing it."""
    import importlib.metadata

    if shutil.which("dpkg-query") is None:
        pytest.skip("dpkg-query is not installed (not a Debian system)")
    assert rp.dpkg_version("dpkg") and rp.dpkg_version("libedgetpu1-std") is None
    info = rp.installed_runtime_info({}, manifest)
    litert = importlib.metadata.version("ai-edge-litert")
    assert (info.runtime, info.runtime_version) == ("ai_edge_litert", litert)
    assert (info.libedgetpu, info.problem) == (None, None)


def _script(*args: str) -> subprocess.CompletedProcess:
    """As install.sh runs it, by path, with a bare interpreter: -S (no site-packages), so no appliance
    package and nothing but the standard library (and the script's own folder, first on sys.path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-S", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=30, env=env)


def test_script_prints_shell_safe_lines_that_bash_can_eval():
    proc = _script("--os-codename", "bookworm", "--python", "3.11", "--arch", "arm64")
    assert proc.returncode == 0, proc.stderr
    show = 'eval "$1"; printf "%s\\n" "$ETPU_DEB_URL" "$ETPU_NUMPY_CONSTRAINT" "$ETPU_EVIDENCE"'
    shell = subprocess.run(["bash", "-c", show, "_", proc.stdout], capture_output=True, text=True, timeout=30)
    deb_url, numpy, evidence = shell.stdout.splitlines()
    assert deb_url == CHOSEN[("bookworm", "3.11", "arm64")][0]
    assert numpy == "numpy<2"
    assert evidence.startswith("Frigate's image") and "'" in evidence  # quotes survive the eval


def test_script_refuses_an_unsupported_platform_with_exit_2_and_the_fix():
    proc = _script("--os-codename", "trixie", "--python", "3.13", "--arch", "amd64")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("runtime_pairs: no matched Edge TPU runtime pair")
    assert "\n  fix: use Debian 12 (bookworm)" in proc.stderr


def test_module_form_lists_every_platform():
    proc = subprocess.run([sys.executable, "-m", "appliance.vision.runtime_pairs", "--list"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["bookworm/3.11/arm64", "bookworm/3.11/amd64",
                                                     "trixie/3.13/arm64", "trixie/3.13/amd64"]
    assert lines[-1].startswith("trixie/3.13/amd64: none")
