"""The chat UI in a real browser, as a shopper uses it (Playwright with Debian's chromium).

Starts `shopassist ui` on a free port with a small apparel catalog (no LLM: rules and template
copy, so the test is about the UI), types a Chinese query, sees product cards, clicks "not
this" on the first one, sends a follow-up, and checks that the answer changed accordingly.
A screenshot goes to tests/artifacts/ui-chat.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evals.dialogues import default_suite

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APPAREL = Path(default_suite()).parent / "catalogs" / "apparel_zh.jsonl"
ARTIFACTS = Path(__file__).parent / "artifacts"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def ui_url(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "ui.cli", "ui", "--no-llm", "--port", str(port)]
    cmd += ["--catalog", str(APPAREL), "--home", str(tmp_path / "home")]
    log = open(tmp_path / "ui.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("the UI exited: " + (tmp_path / "ui.log").read_text()[-2000:])
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    else:
        proc.kill()
        raise AssertionError("the UI did not start in 180 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def card_ids(page) -> list[str]:
    return page.eval_on_selector_all(".sa-card", "els => els.map(e => e.dataset.productId)")


def card_titles(page) -> list[str]:
    return page.eval_on_selector_all(".sa-title", "els => els.map(e => e.textContent)")


@pytest.mark.skipif(chromium_path() is None, reason="no chromium: `make test` installs Debian's chromium")
def test_a_shopper_searches_rejects_a_product_and_refines(ui_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
        page.goto(ui_url, wait_until="load", timeout=60_000)
        page.wait_for_selector("#message textarea", timeout=60_000)
        box = page.locator("#message textarea")
        box.fill("女士羽绒服")
        box.press("Enter")
        page.wait_for_selector(".sa-card", timeout=60_000)
        first = card_ids(page)
        assert len(first) >= 2
        assert all("羽绒服" in t for t in card_titles(page))
        # the parsed need is shown as chips
        assert page.locator(".sa-chip").count() >= 1

        page.locator(".sa-dislike").first.click()
        page.wait_for_function(
            "id => ![...document.querySelectorAll('.sa-card')].some(e => e.dataset.productId === id)",
            arg=first[0],
            timeout=60_000,
        )
        after_dislike = card_ids(page)
        assert first[0] not in after_dislike and after_dislike

        box.fill("不要黑色的")
        box.press("Enter")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.sa-title')].length > 0 && "
            "[...document.querySelectorAll('.sa-title')].every(e => !e.textContent.includes('黑色'))",
            timeout=60_000,
        )
        final = card_ids(page)
        assert final and first[0] not in final
        assert all("黑色" not in t and "羽绒服" in t for t in card_titles(page))
        chat = page.locator("#chat").inner_text()
        assert "不要黑色的" in chat and "为你找到" in chat
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-chat.png"), full_page=True)

        # another shopper (another browser context) starts with nothing of this session
        other = browser.new_context().new_page()
        other.goto(ui_url, wait_until="load", timeout=60_000)
        other.wait_for_selector("#message textarea", timeout=60_000)
        assert other.locator(".sa-card").count() == 0 and "不要黑色的" not in other.locator("#chat").inner_text()
        other_box = other.locator("#message textarea")
        other_box.fill("女士羽绒服")
        other_box.press("Enter")
        other.wait_for_selector(".sa-card", timeout=60_000)
        assert first[0] in card_ids(other)  # the first shopper's "not this" is not the second's
        browser.close()
