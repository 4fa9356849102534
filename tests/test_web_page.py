"""The page in a real headless Chromium (Debian's, driven by Playwright) over the running System: the
stream shows frames, teaching from the page lists the class with its samples, rename and delete show,
and phone-sized and wide screenshots are kept in $APPLIANCE_TEST_ARTIFACTS (default: a temporary folder,
appliance-test-artifacts; tests write nowhere else)."""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

import pytest
from web_helpers import Client, shared_system, wait_for

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("APPLIANCE_TEST_ARTIFACTS")
                 or Path(tempfile.gettempdir()) / "appliance-test-artifacts")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium package to run the page tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def base_url(images_dir, models_dir):
    system = shared_system()
    client = Client(system.web_server.port)
    wait_for(lambda: client.get("/api/status")[2]["inferences"] > 0, timeout=60)
    return f"http://127.0.0.1:{system.web_server.port}"


def test_page_streams_teaches_renames_and_deletes(browser, base_url):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1,
                                  is_mobile=True, has_touch=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        page.goto(base_url + "/", wait_until="domcontentloaded")
        page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=20_000)
        expect(page.locator("#backend")).to_have_text(re.compile(r"CPU|Edge TPU"), timeout=10_000)
        expect(page.locator("#s-fps")).to_have_text(re.compile(r"\d+\.\d / \d+\.\d"), timeout=10_000)
        expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=10_000)  # SSE open
        # on a phone the live view comes first, every card in reading order, nothing wider than the screen
        tops = page.evaluate("""['.view', '.teach', '.classes', '.status', '.own-model'].map(
            (sel) => document.querySelector(sel).getBoundingClientRect().top)""")
        assert tops == sorted(tops), f"cards out of reading order on a phone: {tops}"
        wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not wide, "the page is wider than a phone's screen"
        expect(page.locator("#warning")).to_be_hidden()  # device=cpu asked for: no warning

        label = f"<b>Mug {uuid.uuid4().hex[:4]}</b>"  # markup must show as text
        page.fill("#teach-label", label)
        page.click("#teach-button")
        row = page.locator("#class-list .class", has_text=label)
        expect(row).to_have_count(1, timeout=20_000)
        expect(row.locator(".samples")).to_have_text("4 samples")
        expect(page.locator("#message")).to_contain_text("Learned")
        assert page.locator("#class-list b").count() == 0  # no element was made from the label
        page.wait_for_function(
            "[...document.querySelectorAll('#class-list .thumb')].some(i => i.naturalWidth > 0)",
            timeout=10_000)

        row.locator(".more").click()
        expect(row.locator(".samples")).to_have_text("8 samples", timeout=20_000)

        # the demo moves on to a photo not taught: "unknown", naming the taught class it was closest to
        # (this one when it is the only class; another web test may have taught more on the shared box).
        # Polled from here: the page's CSP refuses the eval that wait_for_function's polling needs.
        def unknown_now() -> list[str] | None:
            shown = page.evaluate("['now-label', 'now-score'].map(id => $(id).textContent)")
            return shown if shown[0] == "unknown" and "closest" in shown[1] else None

        shown = wait_for(unknown_now, timeout=30, interval=0.2)
        closest = re.fullmatch(r"— closest: (.+), \d+\s%( alike)?", shown[1])
        assert closest, shown
        taught = page.locator("#class-list .class .label").all_text_contents()
        assert closest.group(1) in taught, (shown, taught)
        assert len(taught) > 1 or closest.group(1) == label

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)

        new_label = label.replace("Mug", "Cup")
        row.locator(".rename").click()
        row.locator(".rename-form input").fill(new_label)
        row.locator(".rename-form button[type=submit]").click()
        renamed = page.locator("#class-list .class", has_text=new_label)
        expect(renamed).to_have_count(1, timeout=10_000)
        expect(page.locator("#message")).to_contain_text("Renamed")

        page.once("dialog", lambda dialog: dialog.accept())
        renamed.locator(".delete").click()
        expect(page.locator("#class-list .class", has_text=new_label)).to_have_count(0, timeout=10_000)
        expect(page.locator("#message")).to_contain_text("Deleted")
        assert not errors, errors
    finally:
        context.close()


def test_page_shows_errors_from_the_api(browser, base_url):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(base_url + "/", wait_until="domcontentloaded")
        page.fill("#teach-label", "bad\u202elabel")
        page.click("#teach-button")
        expect(page.locator("#message")).to_have_class(re.compile(r"\berror\b"), timeout=10_000)
        expect(page.locator("#message")).to_contain_text("invisible")
        page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=20_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-page-wide.png"))
    finally:
        page.close()


def test_page_warns_when_a_tpu_was_expected_but_the_cpu_runs(browser, tmp_path, images_dir, models_dir):
    import dataclasses

    from playwright.sync_api import expect
    from web_helpers import web_config

    from appliance.system import System
    from appliance.web.app import create_app
    from appliance.web.server import serve

    config = web_config(tmp_path)
    config = dataclasses.replace(config, vision=dataclasses.replace(config.vision, device="auto"))
    idle = System(config)  # device "auto" without an Edge TPU: runs on the CPU with a warning
    if idle.stats.backend_warning is None:
        idle.stop()
        pytest.skip("an Edge TPU is present here, so there is no CPU fallback warning to show")
    server = serve(create_app(idle), "127.0.0.1", 0, 4)
    page = browser.new_page(viewport={"width": 390, "height": 700})
    try:
        page.goto(f"http://127.0.0.1:{server.port}/", wait_until="domcontentloaded")
        banner = page.locator("#warning")
        expect(banner).to_be_visible(timeout=10_000)
        expect(banner).to_contain_text("Edge TPU")
        expect(page.locator("#backend")).to_have_text("CPU")
    finally:
        page.close()
        server.stop()
        idle.stop()


def test_login_page_then_the_stream(browser, base_url):
    import dataclasses

    from playwright.sync_api import expect
    from web_helpers import ConfigView

    from appliance.web.app import create_app
    from appliance.web.auth import hash_password
    from appliance.web.server import serve

    system = shared_system()
    web = dataclasses.replace(system.config.web, password_hash=hash_password("open sesame"))
    server = serve(create_app(ConfigView(system, dataclasses.replace(system.config, web=web))),
                   "127.0.0.1", 0, 8)
    page = browser.new_page(viewport={"width": 390, "height": 700})
    try:
        page.goto(f"http://127.0.0.1:{server.port}/", wait_until="domcontentloaded")
        assert page.url.endswith("/login")
        page.fill("#password", "wrong")
        page.click("button[type=submit]")
        expect(page.locator(".message.error")).to_contain_text("Wrong password")
        page.fill("#password", "open sesame")
        page.click("button[type=submit]")
        page.wait_for_url(f"http://127.0.0.1:{server.port}/")
        page.wait_for_function("document.getElementById('stream').naturalWidth > 0", timeout=20_000)
        expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=10_000)
        page.click("text=Log out")
        page.wait_for_url(re.compile(r"/login$"))
    finally:
        page.close()
        server.stop()


def test_teaching_across_a_photo_change_in_the_demo_shows_the_warning(browser, tmp_path, models_dir):
    """The demo camera set not to hold still (as a real camera's view may change): teaching spans a
    photo change, and the page says what the burst kept, or that it refused; a countdown shows while it
    records, the status names the photo showing, and an empty label gets a visible error."""
    import dataclasses

    from playwright.sync_api import expect
    from web_helpers import web_config

    from appliance.camera.demo import DemoSource
    from appliance.system import System

    config = web_config(tmp_path)
    config = dataclasses.replace(config, teach=dataclasses.replace(config.teach, frames=10, seconds=1.5))
    cam = config.camera
    source = DemoSource(width=cam.width, height=cam.height, fps=cam.fps, seconds_per_scene=1.1, holds=False)
    system = System(config, source=source)  # each photo 1.1 s, a burst 1.5 s: it always spans a change
    system.start(web=True, controls=False)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"http://127.0.0.1:{system.web_server.port}/", wait_until="domcontentloaded")
        showing = re.compile(r"^(cat|owl|parrot|sunflower) \(\d+\.\d s left\)$")
        expect(page.locator("#s-demo")).to_have_text(showing, timeout=10_000)
        page.fill("#teach-label", "   ")
        page.click("#teach-button")
        expect(page.locator("#message")).to_have_class(re.compile(r"\berror\b"))
        expect(page.locator("#message")).to_contain_text("cannot be empty or only spaces")
        assert page.evaluate("plural(1, 'sample')") == "1 sample"

        kept = None
        for attempt in range(4):  # a 5 / 5 split is refused (no majority): teach again to see one kept
            page.fill("#teach-label", f"moving {attempt}")
            page.click("#teach-button")
            expect(page.locator("#countdown")).to_contain_text("Recording", timeout=5_000)
            message = page.locator("#message")
            expect(message).to_contain_text("the view changed during teaching", timeout=20_000)
            expect(page.locator("#countdown")).to_be_hidden(timeout=5_000)
            text = message.text_content()
            kept = re.search(r"kept (\d+) of 10 frames", text)
            if kept:
                expect(message).to_have_class(re.compile(r"\bwarn\b"))
                assert f"Learned “moving {attempt}” ({kept.group(1)} samples)" in text, text
                break
            expect(message).to_have_class(re.compile(r"\berror\b"))  # refused: nothing learned
            assert "hold one thing still" in text, text
        assert kept, "four bursts across a photo change were all refused"
        assert 5 < int(kept.group(1)) < 10
    finally:
        page.close()
        system.stop()


def test_a_page_refused_for_too_many_live_views_comes_back_by_itself(browser, base_url):
    """A phone with too many tabs open gets 429 for the stream and the event feed; once the other tabs
    close, the page picks both up again without a reload."""
    from playwright.sync_api import expect
    from web_helpers import MjpegReader, served

    with served(threads=16, max_live_views_per_client=2) as server:
        others = [MjpegReader(server.port), MjpegReader(server.port, "/api/events")]  # two other tabs
        page = browser.new_page(viewport={"width": 390, "height": 844})
        try:
            page.goto(f"http://127.0.0.1:{server.port}/", wait_until="domcontentloaded")
            page.wait_for_timeout(1500)
            expect(page.locator("#live")).not_to_have_class(re.compile(r"\bon\b"))  # refused: 429
            for reader in others:
                reader.close()
            expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=15_000)
            # the picture too (polled from here: the page's CSP forbids Playwright's polling eval)
            wait_for(lambda: page.evaluate("document.getElementById('stream').naturalWidth > 0"), timeout=15)
        finally:
            page.close()
            for reader in others:
                reader.close()
