"""The page's "Your own model" card in a real headless Chromium: upload, the check's answer, forget."""

from __future__ import annotations

import re

import pytest
from conftest import DETECTOR, TINY_CLASSIFIER
from test_custom_models import idle_served
from test_web_page import ARGS, CHROMIUM

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(models_dir, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: install Debian's chromium package to run the page tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    served = idle_served(tmp_path_factory.mktemp("custom-models-page"))
    system = next(served)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"http://127.0.0.1:{system.web_server.port}/", wait_until="domcontentloaded")
        yield page
        browser.close()
    served.close()
    assert not errors, errors


def test_upload_from_the_page_shows_the_check_and_lists_the_model(page, models_dir):
    from playwright.sync_api import expect

    page.set_input_files("#model-file", str(models_dir / TINY_CLASSIFIER))
    page.select_option("#model-kind", "classifier")
    page.click("#model-button")
    expect(page.locator("#model-message")).to_contain_text("31 of 31 ops would run on the Edge TPU",
                                                           timeout=20_000)
    expect(page.locator("#model-message")).to_contain_text("To use it: set [vision] classifier")
    row = page.locator("#model-list li", has_text="mobilenet_v1_0.25_128_quant")
    expect(row).to_have_count(1)
    row.locator("button").click()
    expect(row).to_have_count(0)


def test_a_detector_given_as_a_classifier_is_refused_on_the_page(page, models_dir):
    from playwright.sync_api import expect

    page.set_input_files("#model-file", str(models_dir / DETECTOR))
    page.select_option("#model-kind", "classifier")
    page.click("#model-button")
    expect(page.locator("#model-message")).to_have_text(re.compile(r"is detector, not a classifier.*fix:"),
                                                        timeout=20_000)
    expect(page.locator("#model-message")).to_have_class(re.compile(r"\berror\b"))
