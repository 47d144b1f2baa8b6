"""Headless Chromium for the report's tests: Debian's browser driven by playwright (which
downloads none). Without either, a skip with its reason, or a failure where CI requires it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def required_or_skip(what: str, reason: str) -> None:
    """CI sets TLSWEEP_REQUIRE_BROWSER=1, so a missing browser fails there instead of skipping."""
    if os.environ.get("TLSWEEP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} is required in CI: {reason}")
    pytest.skip(reason)


@contextmanager
def chromium_page(width: int, height: int = 900) -> Iterator[Any]:
    """A fresh page of a headless Chromium at ``width`` x ``height``; closed after the block."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        required_or_skip("chromium", "no chromium on this machine (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        required_or_skip("playwright", "playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=browser, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        try:
            yield chrome.new_page(viewport={"width": width, "height": height})
        finally:
            chrome.close()
