"""The page says when the broker is away: `mqtt: disconnected (reason)` in real headless Chromium, and
`mqtt: connected` once a real Mosquitto is there (hidden while MQTT is off); it can publish a class set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mqtt_helpers import Broker, Watcher
from system_helpers import CameraFolder
from web_helpers import wait_for, web_config

from appliance.system import System

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def test_page_shows_mqtt_disconnected_with_the_reason_then_connected(tmp_path, images_dir):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium package to run the page tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    broker = Broker(tmp_path / "broker")
    broker.stop()  # down when the appliance starts
    camera = CameraFolder(tmp_path / "camera")
    camera.show(images_dir / "imprinting" / "cat_train_0.bmp")
    system = System(broker.settings(web_config(tmp_path / "data"), device_id="paged"), source=camera.source())
    system.start(web=True, controls=False)
    try:
        wait_for(lambda: system.status()["mqtt"]["error"])
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{system.web_server.port}/", wait_until="domcontentloaded")
            line = page.locator("#s-mqtt")
            sync_api.expect(line).to_have_text(
                re.compile(r"^mqtt: disconnected \(cannot connect to the broker at 127\.0\.0\.1:\d+: "
                           r"connection refused\)$"), timeout=15_000)
            broker.start()
            sync_api.expect(line).to_have_text("mqtt: connected", timeout=40_000)
            # the page can announce the classes as a fleet class set
            watcher = Watcher(broker, "appliance/fleet/#")
            page.fill("#publish-name", "page-set")
            page.click("#publish-button")
            sync_api.expect(page.locator("#message")).to_have_text(
                'Published class set "page-set" version 1 (0 classes).', timeout=10_000)
            announced = watcher.wait(lambda w: w.json_on("appliance/fleet/page-set"))[-1]
            assert announced["publisher"] == "paged" and announced["version"] == 1
            watcher.close()
            browser.close()
    finally:
        system.stop()
        broker.stop()
