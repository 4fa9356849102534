"""Make docs/screenshot.png: the real demo, taught from its own page in a real Chromium, on a phone.

Teaches "owl" and "parrot" while those photos show (through the page's Teach form, as a user would),
then waits until an untaught photo is on and the page names what it was closest to, and shoots the
whole page at a phone's width. Needs the models (APPLIANCE_MODELS_FROM, as dev.sh sets it), Debian's
chromium and the [test] extras (Playwright):

    APPLIANCE_MODELS_FROM=../shared/models .venv/bin/python tools/screenshot.py docs/screenshot.png
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tempfile

from playwright.sync_api import expect, sync_playwright

from appliance.camera.demo import DemoSource
from appliance.config import demo_config
from appliance.system import System

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHOTO_S = 15.0  # each photo stays this long, so a teach and the page's update fit comfortably


def teach_when_showing(page, label: str) -> None:
    expect(page.locator("#s-demo")).to_have_text(re.compile(rf"^{label} \((\d\d|[5-9])\.\d s left\)$"),
                                                 timeout=4 * PHOTO_S * 1000)
    page.fill("#teach-label", label)
    page.click("#teach-button")
    expect(page.locator("#message")).to_contain_text(f"Learned “{label}”", timeout=20_000)


def main(out: str) -> int:
    with tempfile.TemporaryDirectory(prefix="appliance-screenshot-") as tmp:
        config = demo_config(data_dir=tmp)
        config = dataclasses.replace(config, web=dataclasses.replace(config.web, port=0))
        cam = config.camera
        source = DemoSource(width=cam.width, height=cam.height, fps=cam.fps, seconds_per_scene=PHOTO_S)
        system = System(config, source=source)
        system.start(web=True, controls=False)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
                page.goto(f"http://127.0.0.1:{system.web_server.port}/", wait_until="domcontentloaded")
                teach_when_showing(page, "owl")
                teach_when_showing(page, "parrot")
                expect(page.locator("#s-demo")).to_have_text(re.compile(r"^(sunflower|cat) \("),
                                                             timeout=4 * PHOTO_S * 1000)
                expect(page.locator("#now-score")).to_contain_text("closest", timeout=20_000)
                page.evaluate("window.scrollTo(0, 0)")  # teaching scrolled the form into view
                page.wait_for_timeout(1500)  # a few more frames on the stream
                page.screenshot(path=out, full_page=True)
                browser.close()
        finally:
            system.stop()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.png"))
