"""What the browser tests share: the pages' tools (clients/js/tools) importable, one Chromium per test file."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "clients" / "js" / "tools"
sys.path.insert(0, str(TOOLS))

from playwright.sync_api import Browser, sync_playwright  # noqa: E402

import screenshots  # noqa: E402
from screenshots import Server  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (a browser download does not work here)."""
    if not Path(screenshots.CHROMIUM).exists():
        pytest.fail(f"{screenshots.CHROMIUM} is missing (make test installs Debian's chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=screenshots.CHROMIUM, args=screenshots.ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def demo() -> Iterator[Server]:
    """A `livecart demo` of this test's own (a test that sells the last unit changes what the next sees)."""
    s = Server([])
    try:
        yield s
    finally:
        s.stop()
