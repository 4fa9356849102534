"""`appliance doctor`: the real command on this machine, facts read from a fake /sys and /dev tree, and
each check's verdicts."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import doctor
from appliance.errors import ConfigError
from appliance.vision.edgetpu import EdgeTpu

MODEL_FILES = ("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", "imagenet_labels.txt")


def _doctor(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", "doctor", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_here_no_tpu_camera_or_gpio_each_with_a_fix(tmp_path):
    if any(any(Path("/dev").glob(pattern)) for pattern in ("video*", "gpiochip*", "apex_*")):
        pytest.skip("this machine has a camera, GPIO or a PCIe Edge TPU: 'none found' does not apply")
    config = tmp_path / "config.toml"
    config.write_text("# every key at its default: source picamera, controls on real pins\n")
    proc = _doctor("--config", str(config), cwd=tmp_path)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == 1, proc.stdout  # the default source (picamera) is missing: a failing check
    lines = proc.stdout.splitlines()

    def verdict(name: str) -> tuple[str, str]:
        index = next(i for i, line in enumerate(lines) if line.split(maxsplit=1)[1].startswith(name + ":"))
        return lines[index], lines[index + 1]

    tpu, tpu_fix = verdict("edge tpu")
    assert tpu.startswith("warn  edge tpu: none found")
    assert tpu_fix.strip().startswith("fix: plug in the Coral")
    camera, camera_fix = verdict("camera")
    assert camera.startswith("fail  camera:") and "fix:" in camera_fix
    gpio, gpio_fix = verdict("gpio")
    assert gpio.startswith("warn  gpio: no /dev/gpiochip") and "fix:" in gpio_fix
    assert lines[-1].endswith("failing")


def test_json_output(tmp_path):
    proc = _doctor("--json", cwd=tmp_path)
    report = json.loads(proc.stdout)
    assert report["ok"] is (proc.returncode == 0)
    names = [c["name"] for c in report["checks"]]
    expected = {"python", "runtime", "config", "edge tpu", "camera", "gpio", "groups", "models", "disk"}
    assert expected <= set(names)
    assert all(c["status"] in ("ok", "warn", "fail") for c in report["checks"])


def _fake_machine(tmp_path: Path, models_dir: Path, *, speed: str, source: str) -> tuple[Path, Path, Path]:
    """A /sys and /dev tree with a USB Coral and a webcam, a config, and verified model copies."""
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    coral = sys_root / "bus" / "usb" / "devices" / "2-1"
    coral.mkdir(parents=True)
    (coral / "idVendor").write_text("18d1\n")
    (coral / "idProduct").write_text("9302\n")
    (coral / "speed").write_text(speed + "\n")
    video = sys_root / "class" / "video4linux" / "video0"
    video.mkdir(parents=True)
    (video / "name").write_text("USB 2.0 Camera\n")
    codec = sys_root / "class" / "video4linux" / "video10"
    codec.mkdir(parents=True)
    (codec / "name").write_text("bcm2835-codec-decode\n")
    dev_root.mkdir()
    for node in ("video0", "video10", "gpiochip0"):
        (dev_root / node).touch()
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    for name in MODEL_FILES:
        shutil.copy(models_dir / name, data / "models" / name)
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{data}"\n[camera]\nsource = "{source}"\n[vision]\nembedder = '
                      '"mobilenet_v1_1.0_224_quant_embedding_extractor"\n[recognition]\nmode = "classify"\n')
    return config, sys_root, dev_root


def test_facts_from_a_fake_machine(tmp_path, models_dir):
    config, sys_root, dev_root = _fake_machine(tmp_path, models_dir, speed="480", source="/dev/video0")
    facts = doctor.gather_facts(config, sys_root=sys_root, dev_root=dev_root, probe=False)
    assert facts.edge_tpus == [EdgeTpu("usb", str(sys_root / "bus/usb/devices/2-1"), 480)]
    assert facts.videos == [("/dev/video0", "USB 2.0 Camera"), ("/dev/video10", "bcm2835-codec-decode")]
    checks = {c.name: c for c in doctor.run_checks(facts)}
    assert checks["config"].status == "ok" and checks["config"].detail == str(config)
    assert checks["coral usb"].status == "warn" and "USB 2" in checks["coral usb"].detail
    assert "blue USB 3 port" in checks["coral usb"].fix
    # a Coral is there but this machine has no libedgetpu (probe=False does not even look)
    assert checks["edge tpu"].status == "fail" and "libedgetpu" in checks["edge tpu"].detail
    assert checks["camera"].status == "ok" and "USB 2.0 Camera" in checks["camera"].detail
    assert "codec" not in checks["camera"].detail  # a Pi's codec node is not a camera
    assert checks["gpio"].status == "ok" and checks["gpio"].detail == "/dev/gpiochip0"
    # the configured models: embedder + ImageNet labels present and verified; the detector files missing
    assert checks["models"].status == "fail"
    assert "ssd_mobilenet_v1_coco_quant_2018_06_29_detect" in checks["models"].detail
    assert "mobilenet_v1_1.0_224_quant_embedding_extractor," not in checks["models"].detail + ","


def test_a_corrupted_model_fails_verification(tmp_path, models_dir):
    config, sys_root, dev_root = _fake_machine(tmp_path, models_dir, speed="5000", source="demo")
    model = tmp_path / "data" / "models" / MODEL_FILES[0]
    data = bytearray(model.read_bytes())
    data[1000] ^= 0xFF
    model.write_bytes(bytes(data))
    facts = doctor.gather_facts(config, sys_root=sys_root, dev_root=dev_root, probe=False)
    problems = dict(facts.models)
    assert problems["mobilenet_v1_1.0_224_quant_embedding_extractor"]  # a hash mismatch, in words
    assert problems["imagenet_labels.txt"] is None
    checks = {c.name: c for c in doctor.run_checks(facts)}
    assert checks["coral usb"].status == "ok"
    assert checks["camera"].detail.startswith("source demo needs no camera")


def test_a_broken_config_is_a_failing_check_not_a_traceback(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[camera]\nfps = -3\n")
    facts = doctor.gather_facts(config, sys_root=tmp_path, dev_root=tmp_path, probe=False)
    check = doctor.check_config(facts)
    assert check.status == "fail" and "fps" in check.detail
    assert check.fix


# ---- verdicts of single checks over hand-made facts -------------------------------------------------

@pytest.fixture
def facts(tmp_path) -> doctor.Facts:
    return doctor.Facts(
        python="3.11.2", runtime=("ai-edge-litert", "2.3.0"), numpy="2.1.0", config_path=None,
        config_error=None, device="auto", source="picamera", gpio_wanted=True, data_dir=tmp_path,
        models_dir=tmp_path / "models", models=[("m", None)], edge_tpus=[], runtime_library=False,
        probe=None, edgetpu_runtime=None, videos=[], picamera2="0.3.19", libcamera_cameras=1,
        gpiochips=[("/dev/gpiochip0", True)], user="appliance", user_groups=["appliance", "video", "gpio"],
        system_groups=["video", "gpio", "plugdev"], disk_free=10 * 2**30, service="active", throttled=0)


def _with(facts, **changes) -> dict[str, doctor.Check]:
    return {c.name: c for c in doctor.run_checks(dataclasses.replace(facts, **changes))}


def test_a_healthy_pi_passes(facts):
    checks = doctor.run_checks(facts)
    by_status = {c.name: c.status for c in checks}
    assert by_status["camera"] == "ok" and by_status["power"] == "ok" and by_status["service"] == "ok"
    assert by_status["groups"] == "warn"  # not in plugdev
    assert doctor.exit_code(checks) == 0


def test_edge_tpu_verdicts(facts):
    usb = EdgeTpu("usb", "/sys/bus/usb/devices/2-1", 5000)
    assert _with(facts, device="edgetpu")["edge tpu"].status == "fail"
    failed = _with(facts, edge_tpus=[usb], runtime_library=True,
                   probe=(False, "the probe failed (could not open the first Edge TPU)", ""))
    assert failed["edge tpu"].status == "fail" and "replug" in failed["edge tpu"].fix
    computed = (True, "m_edgetpu.tflite computed the CPU's answer (class 89, within 1 step)", "")
    assert _with(facts, edge_tpus=[usb], runtime_library=True, probe=computed)["edge tpu"].status == "ok"
    pci = EdgeTpu("pci", "/dev/apex_0", None)
    busy = _with(facts, edge_tpus=[pci], runtime_library=True, probe=None)["edge tpu"]
    assert busy.status == "warn" and "service" in busy.detail  # never "ok" without a probe
    assert "coral usb" not in _with(facts, edge_tpus=[pci])


def test_disk_thresholds(facts):
    assert _with(facts, disk_free=400 * 2**20)["disk"].status == "warn"
    assert _with(facts, disk_free=40 * 2**20)["disk"].status == "fail"
    assert _with(facts, disk_free=None)["disk"].status == "warn"


def test_camera_gpio_groups_power_service_runtime(facts):
    assert _with(facts, libcamera_cameras=0)["camera"].status == "fail"
    assert _with(facts, picamera2=None)["camera"].status == "fail"
    assert _with(facts, gpiochips=[("/dev/gpiochip0", False)])["gpio"].status == "warn"
    assert _with(facts, gpio_wanted=False, gpiochips=[])["gpio"].status == "ok"
    assert _with(facts, user="root", user_groups=[])["groups"].status == "ok"
    assert "usermod -aG plugdev appliance" in _with(facts)["groups"].fix
    assert _with(facts, throttled=0x50005)["power"].status == "fail"
    assert _with(facts, throttled=0x50000)["power"].status == "warn"
    assert "power" not in _with(facts, throttled=None)
    assert _with(facts, service="failed")["service"].status == "fail"
    assert _with(facts, service="not installed")["service"].status == "warn"
    assert "service" not in _with(facts, service=None)
    assert _with(facts, runtime=None)["runtime"].status == "fail"
    assert _with(facts, python="3.9.2")["python"].status == "fail"
    error = ConfigError("config.toml line 2: camera.fps must be > 0", "set a positive number")
    assert _with(facts, config_error=error)["config"] == doctor.Check(
        "fail", "config", error.problem, error.fix)


def test_format_puts_the_fix_under_a_problem():
    assert doctor.format_check(doctor.Check("ok", "python", "3.11.2", "")) == "ok    python: 3.11.2"
    text = doctor.format_check(doctor.Check("warn", "gpio", "none", "do x"))
    assert text == "warn  gpio: none\n      fix: do x"


def test_a_known_mismatched_runtime_pair_is_named_with_the_fix(facts):
    problem = "libedgetpu1-std 16.0 was built for TensorFlow 2.5; tflite_runtime 2.17.1 is newer than 2.11"
    alone = _with(facts, runtime_problem=problem)["runtime"]
    assert alone.status == "warn" and problem in alone.detail and "install.sh --edgetpu" in alone.fix
    usb = EdgeTpu("usb", "/sys/bus/usb/devices/2-1", 5000)
    assert _with(facts, runtime_problem=problem, edge_tpus=[usb])["runtime"].status == "fail"
