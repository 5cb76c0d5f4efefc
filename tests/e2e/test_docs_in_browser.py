"""The gateway's /docs in a real browser (headless Chromium) that can reach nothing but the stack.

Swagger UI must render every operation of the merged document from the gateway's own assets
under the page's Content-Security-Policy, authorize with the OAuth2 password flow against
/auth/token, and run "Try it out" on GET /users/me. The screenshot is written to
``artifacts/docs-in-browser.png`` at the repository root (git-ignored; CI keeps it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

if TYPE_CHECKING:
    from tests.e2e.public_api import Gateway

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SCREENSHOT = ARTIFACTS / "docs-in-browser.png"
WAIT_SECONDS = 30
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    options = Options()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        # No network but the stack: every other host name fails to resolve, so a page that
        # needed a CDN would stay blank.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--window-size=1280,2400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths given, so Selenium Manager never tries to download a driver.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        yield driver
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        print(f"screenshot: {SCREENSHOT}")
        driver.quit()


def documented_operations(gateway: Gateway) -> set[tuple[str, str]]:
    document = gateway.client.get("/openapi.json").json()
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_docs_render_authorize_and_try_it_out(browser: WebDriver, gateway: Gateway) -> None:
    account = gateway.register()
    base_url = str(gateway.client.base_url).rstrip("/")
    wait = WebDriverWait(browser, WAIT_SECONDS)

    browser.get(f"{base_url}/docs")

    # Every operation of the merged document is rendered.
    expected = documented_operations(gateway)
    wait.until(
        lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(expected)
    )
    rendered = {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.upper(),
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    }
    assert rendered == expected

    # Authorize: the OAuth2 password flow of the document's security scheme, via /auth/token.
    browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
    wait.until(expected_conditions.visibility_of_element_located((By.ID, "oauth_username")))
    browser.find_element(By.ID, "oauth_username").send_keys(account.email)
    browser.find_element(By.ID, "oauth_password").send_keys(account.password)
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .modal-btn.authorize").click()
    wait.until(
        expected_conditions.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".auth-container"), "Authorized"
        )
    )
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done").click()

    # Try it out: GET /users/me answers 200 with the user's own profile.
    operation = browser.find_element(By.ID, "operations-users-read_own_profile")
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    operation.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, ".execute"))
    operation.find_element(By.CSS_SELECTOR, ".execute").click()
    live = ".live-responses-table"
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, f"{live} .response"))
    statuses = [
        cell.text.strip()
        for cell in operation.find_elements(
            By.CSS_SELECTOR, f"{live} .response .response-col_status"
        )
    ]
    assert statuses == ["200"], statuses
    bodies = [
        block.text for block in operation.find_elements(By.CSS_SELECTOR, f"{live} .microlight")
    ]
    assert any(account.email in body for body in bodies), bodies
    browser.execute_script("arguments[0].scrollIntoView();", operation)

    # Everything came from the gateway, and the CSP refused nothing the page needed.
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    assert loaded
    assert all(url.startswith(base_url + "/") for url in loaded), loaded
    console = browser.get_log("browser")  # type: ignore[no-untyped-call]
    refused = [entry for entry in console if "Content Security Policy" in entry["message"]]
    assert not refused, refused
