"""Finding 2: the browser-state secret went to every page, so the keys "encrypted in the browser" were not.

Gradio's BrowserState encrypts localStorage with a secret it publishes in /config (crypto-js AES in its
passphrase mode). This test does what anyone who loads the page can do: read that secret, decrypt what the
browser stored, and look for the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from playwright.sync_api import Browser, Page, expect, sync_playwright

from playground.ui.layout import STORAGE_KEY
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser
KEY = "canary-visitor-key-7d41c0"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def open_with_key(chromium: Browser, url: str) -> tuple[Page, str]:
    """A visitor saves KEY under Keys; (the page, what their browser stored)."""
    page = chromium.new_context(viewport={"width": 1300, "height": 1000}).new_page()
    page.goto(url)
    page.get_by_text("Keys: use your own API keys").click()
    page.locator("#key-kie input").fill(KEY)
    page.get_by_role("button", name="Save keys in this browser").click()
    expect(page.locator("#keys-status")).to_contain_text("Keys saved in this browser for: KIE AI", timeout=WAIT_MS)
    page.wait_for_function(f"() => localStorage.getItem({json.dumps(STORAGE_KEY)}) !== null")
    return page, page.evaluate(f"() => localStorage.getItem({json.dumps(STORAGE_KEY)})")


def published_secret(url: str) -> str:
    """The secret Gradio sends every visitor for the keys' BrowserState."""
    config = httpx.get(f"{url}config", timeout=30).json()
    (state,) = [c for c in config["components"] if c.get("props", {}).get("storage_key") == STORAGE_KEY]
    return str(state["props"]["secret"])


def cryptojs_decrypt(stored: str, secret: str) -> str:
    """What Gradio's page does to read its storage: ``<iv>:<crypto-js AES.decrypt(text, hex SHA-256 of secret)>``.

    A string passphrase makes crypto-js use OpenSSL's Salted__ format: EVP_BytesToKey (MD5), AES-256-CBC.
    """
    raw = base64.b64decode(stored.split(":", 1)[1])
    assert raw[:8] == b"Salted__", "not crypto-js's passphrase format"
    passphrase = hashlib.sha256(secret.encode()).hexdigest().encode()
    salt, body = raw[8:16], raw[16:]
    derived, block = b"", b""
    while len(derived) < 48:
        block = hashlib.md5(block + passphrase + salt).digest()
        derived += block
    decryptor = Cipher(algorithms.AES(derived[:32]), modes.CBC(derived[32:48])).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return (unpadder.update(decryptor.update(body) + decryptor.finalize()) + unpadder.finalize()).decode()


def test_what_the_browser_keeps_opens_nothing_for_whoever_loads_the_page(chromium, shared_app):
    page, stored = open_with_key(chromium, shared_app.url)
    plain = json.loads(cryptojs_decrypt(stored, published_secret(shared_app.url)))  # anyone can do this
    assert isinstance(plain, str) and plain.startswith("sealed:"), plain
    assert KEY not in plain and KEY not in stored
    page.context.close()  # (that the visitor's own browser gets its keys back: tests/ui/test_browser.py)


def test_no_page_carries_the_server_held_secret(shared_app):
    secret = "shared-app-browser-secret-3f9a"  # the app's PLAYGROUND_BROWSER_SECRET (tests/security/conftest.py)
    for path in ("", "config", "gradio_api/info"):
        assert secret not in httpx.get(f"{shared_app.url}{path}", timeout=30).text, path
