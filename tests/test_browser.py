"""The page as a person uses it, in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Screenshots are written to artifacts/screenshots/ (desktop and phone width).
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SHOTS = ROOT / "artifacts" / "screenshots"
TIMEOUT = 60_000

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def _open(browser, url: str, width: int, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_selector("#upload input[type=file]", state="attached", timeout=TIMEOUT)
    return page


def _wait_for_analysis(page) -> None:
    page.wait_for_function(
        "() => (document.querySelector('#probabilities')?.innerText.match(/\\d+%/g) || []).length >= 7",
        timeout=TIMEOUT)
    for overlay in ("#gradcam img", "#lime img"):
        page.wait_for_selector(overlay, state="attached", timeout=TIMEOUT)
        page.locator(overlay).scroll_into_view_if_needed()  # lazy images load once seen
    page.wait_for_function("() => /flags an image/.test(document.querySelector('#summary')?.innerText || '')",
                           timeout=TIMEOUT)


def test_upload_shows_probabilities_overlays_and_summary(browser, app_server, examples):
    page = _open(browser, app_server, 1280)
    assert "not a medical device" in page.inner_text("#disclaimer")
    page.set_input_files("#upload input[type=file]", str(examples[1]["path"]))
    _wait_for_analysis(page)
    probabilities = page.inner_text("#probabilities")
    for name in ("Melanoma (mel)", "Melanocytic nevus (nv)", "Vascular lesion (vasc)"):
        assert name in probabilities
    assert re.search(r"\d+%", page.inner_text("#summary"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "desktop.png"), full_page=True)
    page.close()


def test_clicking_an_example_shows_its_true_diagnosis(browser, app_server):
    page = _open(browser, app_server, 1280)
    page.locator(".gallery-item").first.click()
    _wait_for_analysis(page)
    page.wait_for_function("() => /True diagnosis/.test(document.querySelector('#summary').innerText)",
                           timeout=TIMEOUT)
    assert "Melanoma (mel)" in page.inner_text("#summary")
    page.close()


def test_phone_width_stacks_input_above_results(browser, app_server, examples):
    page = _open(browser, app_server, 390, 844)
    page.set_input_files("#upload input[type=file]", str(examples[0]["path"]))
    _wait_for_analysis(page)
    upload = page.locator("#upload").bounding_box()
    probs = page.locator("#probabilities").bounding_box()
    assert probs["y"] >= upload["y"] + upload["height"]  # stacked, not side by side
    assert probs["x"] + probs["width"] <= 390 + 1  # nothing wider than the phone
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "phone.png"), full_page=True)
    page.close()


def test_batch_tab_with_labels_reports_metrics(browser, app_server, examples):
    page = _open(browser, app_server, 1280)
    page.get_by_role("tab", name="Batch testing").click()
    page.set_input_files("#batch-files input[type=file]", [str(e["path"]) for e in examples])
    page.set_input_files("#batch-labels input[type=file]", str(examples[0]["path"].parent / "examples.csv"))
    page.get_by_role("button", name="Classify all").click()
    page.wait_for_function(
        "() => /balanced accuracy/.test(document.querySelector('#batch-summary')?.innerText || '')",
        timeout=TIMEOUT)
    text = page.inner_text("#batch-summary")
    assert f"{len(examples)} of {len(examples)} images classified" in text
    assert re.search(r"balanced accuracy \(mean recall\) \d+\.\d%", text)
    page.screenshot(path=str(SHOTS / "batch.png"), full_page=True)
    page.close()
