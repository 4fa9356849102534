"""Edge TPU enumeration and delegate loading (no Edge TPU exists on this machine)."""

import pytest

from appliance.errors import DeviceError
from appliance.vision import backends, edgetpu


def _usb_device(root, name, vendor, product, speed):
    device = root / "bus" / "usb" / "devices" / name
    device.mkdir(parents=True)
    (device / "idVendor").write_text(vendor + "\n")
    (device / "idProduct").write_text(product + "\n")
    (device / "speed").write_text(speed + "\n")


def test_enumerates_both_usb_ids_with_speed_and_pcie_devices(tmp_path):
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    _usb_device(sys_root, "2-1", "18d1", "9302", "5000")   # a Coral after its firmware load, USB 3
    _usb_device(sys_root, "1-1.3", "1a6e", "089a", "480")  # a fresh Coral on a USB 2 port
    _usb_device(sys_root, "1-1.2", "046d", "0825", "480")  # a webcam
    (sys_root / "bus" / "usb" / "devices" / "usb1").mkdir()  # a root hub without id files
    dev_root.mkdir()
    (dev_root / "apex_0").touch()
    (dev_root / "video0").touch()
    found = edgetpu.list_edge_tpus(sys_root, dev_root)
    assert found == [
        edgetpu.EdgeTpu("usb", str(sys_root / "bus/usb/devices/1-1.3"), 480),
        edgetpu.EdgeTpu("usb", str(sys_root / "bus/usb/devices/2-1"), 5000),
        edgetpu.EdgeTpu("pci", str(dev_root / "apex_0"), None),
    ]


def test_this_machine_is_enumerated_without_error():
    found = edgetpu.list_edge_tpus()
    assert all(isinstance(t, edgetpu.EdgeTpu) and t.type in ("usb", "pci") for t in found)


@pytest.mark.parametrize(("spec", "options"), [
    ("", {}), ("usb", {"device": "usb"}), ("usb:1", {"device": "usb:1"}), ("pci", {"device": "pci"}),
    ("pci:0", {"device": "pci:0"}), (":2", {"device": ":2"}),
])
def test_device_options_pycoral_style(spec, options):
    assert edgetpu.device_options(spec) == options


@pytest.mark.parametrize("spec", ["usb0", "USB", "pci:x", ":", "gpu"])
def test_bad_device_spec_is_explained(spec):
    with pytest.raises(DeviceError) as err:
        edgetpu.device_options(spec)
    assert "usb:N" in err.value.fix


def test_library_names_per_platform():
    assert edgetpu.library_name("Linux") == "libedgetpu.so.1"
    assert edgetpu.library_name("Darwin") == "libedgetpu.1.dylib"


def test_missing_runtime_is_a_device_error_with_the_install_fix():
    if edgetpu.library_available():
        pytest.skip("libedgetpu is installed here; this checks the message when it is not")
    with pytest.raises(DeviceError) as err:
        backends.get("edgetpu").delegates("usb")
    assert "not installed" in err.value.problem and "install.sh --edgetpu" in err.value.fix


def test_real_delegate_on_hardware():
    if not edgetpu.edge_tpu_present() or not edgetpu.library_available():
        pytest.skip("needs an Edge TPU and libedgetpu: neither exists on this machine")
    assert backends.get("edgetpu").delegates("")
