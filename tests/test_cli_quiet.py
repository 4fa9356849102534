"""The `appliance` command's stderr: TFLite's INFO lines only with --verbose, the CPU notice once and
short, in a real subprocess (the bench also starts the real inference worker, which says it too)."""

import os
import subprocess
import sys

import pytest

from appliance.paths import REPO_ROOT
from appliance.stderr_filter import keep_line

TINY = "mobilenet_v1_0.25_128_quant"
NOTICE = "no Edge TPU found: running on the CPU"
TFLITE_INFO = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def appliance(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    return subprocess.run([sys.executable, "-m", "appliance", *argv], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=120)


def test_keep_line():
    seen: set[bytes] = set()
    assert not keep_line(TFLITE_INFO.encode(), seen)
    assert keep_line(b"WARNING: " + NOTICE.encode() + b" (a.tflite)", seen)
    assert not keep_line(b"WARNING inference worker: " + NOTICE.encode() + b" (a.tflite)", seen)
    assert keep_line(b"appliance: error: something", seen)
    assert keep_line(b"INFO: demo source: 4 photos from the package", seen)
    serving = b"INFO: serving: classify mode; camera demo; WARNING: " + NOTICE.encode() + b"; page http://x"
    assert keep_line(serving, seen) and keep_line(serving, seen)  # it says where the page is: always shown


def test_bench_says_the_cpu_notice_once_and_no_tflite_info(tmp_path, models_dir):
    args = ["bench", "--model", TINY, "--source", "demo", "--seconds", "1", "--device", "auto",
            "--models-dir", str(tmp_path / "models"), "--from", str(models_dir)]
    quiet = appliance(tmp_path, *args)
    assert quiet.returncode == 0, quiet.stderr
    assert "pipeline fps" in quiet.stdout
    assert TFLITE_INFO not in quiet.stderr, quiet.stderr
    assert "Traceback" not in quiet.stderr
    if "on the cpu" not in quiet.stdout:
        pytest.skip("an Edge TPU is present here: there is no CPU notice to count")
    assert quiet.stderr.count(NOTICE) == 1, quiet.stderr  # the appliance and its worker would both say it
    verbose = appliance(tmp_path, "--verbose", *args)
    assert verbose.returncode == 0, verbose.stderr
    assert TFLITE_INFO in verbose.stderr  # the filter is what hides it, and --verbose shows it
    assert verbose.stderr.count(NOTICE) == 2


def test_classify_notice_is_short_and_once(tmp_path, models_dir, images_dir):
    proc = appliance(tmp_path, "classify", "--device", "auto", "--models-dir", str(tmp_path / "models"),
                     "--from", str(models_dir), str(images_dir / "cat.bmp"))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if NOTICE in line]
    assert len(lines) == 1 and lines[0].startswith(f"WARNING: {NOTICE} ("), proc.stderr
    assert TFLITE_INFO not in proc.stderr
