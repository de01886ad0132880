"""The labelling page in headless Chromium (Playwright) against a real `chatforge prefs serve`:
two labellers at once, every click in the database under the right name; `kill -9` of the
server mid-labelling loses no label the page was told was saved."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatforge.align.prefs import PrefStore

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
N_PAIRS = 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(run_dir: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "chatforge", "prefs", "serve", str(run_dir),
                             "--port", str(port)], stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stats", timeout=1)
            return proc
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the labelling server did not start")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    store = PrefStore(tmp_path / "prefs")
    rows = [{"prompt": f"question {i}", "response_a": f"answer A{i}", "response_b": f"answer B{i}"}
            for i in range(N_PAIRS - 1)]
    rows.append({"prompt": '<img src=x onerror="document.title=1"> <b>bold?</b>',
                 "response_a": "<script>document.title='pwned'</script>", "response_b": "b"})
    store.add_pairs(rows)
    store.close()
    return tmp_path


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _login(browser, url: str, name: str):
    page = browser.new_context().new_page()
    page.goto(url)
    page.fill("#name", name)
    page.click("#start")
    page.wait_for_selector("#prompt:not([hidden])")
    return page


def _wait_progress(page, name: str, done: int) -> None:
    sync_api.expect(page.locator("#progress")).to_have_text(
        f"{name}: {done} labelled of {N_PAIRS}", timeout=10_000)


def _shown_pair(page) -> int:
    text = page.text_content("#prompt")
    return int(text.split()[-1]) + 1 if text.startswith("question ") else N_PAIRS


def test_two_labellers_at_once_every_click_is_stored_under_its_name(run_dir, browser) -> None:
    port = _free_port()
    server = _start_server(run_dir, port)
    try:
        url = f"http://127.0.0.1:{port}/"
        pages = {"ann": _login(browser, url, "ann"), "bob": _login(browser, url, "bob")}
        expected: dict[str, dict[int, str]] = {"ann": {}, "bob": {}}
        plan = ["A", "B", "tie", "skip", "A", "A", "B"]
        for step, choice in enumerate(plan):
            for k, (name, page) in enumerate(pages.items()):
                pid = _shown_pair(page)
                # ann clicks the buttons, bob uses the keyboard shortcuts
                if name == "ann":
                    page.click({"A": "#choose-a", "B": "#choose-b", "tie": "#choose-tie",
                                "skip": "#choose-skip"}[choice])
                else:
                    choice = plan[(step + k) % len(plan)]
                    page.keyboard.press({"A": "a", "B": "b", "tie": "t", "skip": "s"}[choice])
                expected[name][pid] = choice
                _wait_progress(page, name, step + 1)
        pages["bob"].keyboard.press("u")  # undo bob's last label
        _wait_progress(pages["bob"], "bob", len(plan) - 1)
        expected["bob"].pop(max(expected["bob"]))
        store = PrefStore(run_dir / "prefs")
        for name, want in expected.items():
            got = {lab.pair_id: lab.choice for lab in store.labels(labeller=name)}
            assert got == want, name
        assert [h["action"] for h in store.history("bob")][-1] == "undo"

        pages["ann"].click("#show-stats")
        sync_api.expect(pages["ann"].locator("#stats-agreement tbody tr")).to_have_count(1)
        row = pages["ann"].locator("#stats-agreement tbody tr").inner_text()
        kappa = store.stats()["agreement"][0]["kappa"]
        assert "ann / bob" in row and f"{kappa:.3f}" in row
    finally:
        server.kill()
        server.wait()


def test_html_in_a_pair_is_shown_as_text(run_dir, browser) -> None:
    store = PrefStore(run_dir / "prefs")
    for pid in range(1, N_PAIRS):
        store.label(pid, "skip", "eve")
    port = _free_port()
    server = _start_server(run_dir, port)
    try:
        page = _login(browser, f"http://127.0.0.1:{port}/", "eve")
        assert page.text_content("#prompt").startswith("<img src=x")
        assert page.text_content("#response-a").startswith("<script>")
        assert page.locator("#prompt img, #response-a script").count() == 0
        assert page.title() == "chatforge labelling"
    finally:
        server.kill()
        server.wait()


def test_kill_9_of_the_server_mid_labelling_loses_no_saved_label(run_dir, browser) -> None:
    port = _free_port()
    server = _start_server(run_dir, port)
    url = f"http://127.0.0.1:{port}/"
    pages = {"ann": _login(browser, url, "ann"), "bob": _login(browser, url, "bob")}
    saved: list[tuple[str, int, str]] = []  # every label the server answered 200 for

    def on_response(response) -> None:
        if response.url.endswith("/api/label") and response.status == 200:
            body = response.request.post_data_json
            saved.append((body["labeller"], body["pair_id"], body["choice"]))

    for page in pages.values():
        page.on("response", on_response)
    try:
        # Both labellers click as fast as the page lets them (one request in flight each)...
        for page, button in zip(pages.values(), ("#choose-a", "#choose-b"), strict=True):
            page.evaluate("(b) => { window.clicker = setInterval("
                          "() => document.querySelector(b).click(), 1); }", button)
        deadline = time.time() + 20
        while len(saved) < 10 and time.time() < deadline:
            pages["ann"].wait_for_timeout(10)
        # ...and the server dies under them.
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        for page in pages.values():
            page.wait_for_timeout(300)  # deliver the responses that did arrive
            page.evaluate("() => clearInterval(window.clicker)")
    finally:
        server.kill()
    assert len(saved) >= 4, saved
    db = sqlite3.connect(run_dir / "prefs" / "prefs.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = set(db.execute("SELECT labeller, pair_id, choice FROM labels").fetchall())
    assert set(saved) <= stored
    # After a restart each labeller resumes after the labels that were stored.
    server = _start_server(run_dir, port)
    try:
        for name, page in pages.items():
            page.reload()
            page.fill("#name", name)
            page.click("#start")
            done = sum(1 for who, _, _ in stored if who == name)
            _wait_progress(page, name, done)
    finally:
        server.kill()
        server.wait()
