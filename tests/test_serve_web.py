"""The web chat in headless Chromium (Playwright) against `create_app` served by uvicorn.

A scripted backend stands in for the scheduler so the answer is known: it streams markup
(`<script>`, `<img onerror>`) that must be shown as text and never run.
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from test_serve import Server  # uvicorn in a thread on a free port

from chatforge.engine import Completion
from chatforge.serve.api import create_app
from chatforge.serve.scheduler import Job, Token
from chatforge.serve.store import Store
from chatforge.tokenizer.bpe import train_bpe

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

HOSTILE = 'Hi <script>window.__pwned = 1</script> and <img src=x onerror="window.__pwned = 2"> done.'


class ScriptedBackend:
    """The scheduler's interface, answering every job with `reply` in small timed pieces."""

    context_length = 512

    def __init__(self, reply: str, piece: int = 4, delay: float = 0.03):
        self.reply, self.piece, self.delay = reply, piece, delay
        self.cancelled = 0

    def load(self) -> tuple[int, int]:
        return 0, 0

    def submit(self, job: Job) -> Job:
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        sent = []
        for i in range(0, len(self.reply), self.piece):
            time.sleep(self.delay)
            if job.cancelled:
                self.cancelled += 1
                return
            sent.append(self.reply[i : i + self.piece])
            job.on_token(Token(0, sent[-1]))
        job.on_done(Completion(tokens=[0] * len(sent), text="".join(sent), finish_reason="stop",
                               prompt_tokens=len(job.prompt)))


@pytest.fixture(scope="module")
def tok():
    return train_bpe([f"hello world {i} chat page" for i in range(200)], vocab_size=300)


def _page_server(tmp_path, tok, backend):
    store = Store(tmp_path / "chat.sqlite")
    return Server(create_app(backend, tok, "scripted", store)), store


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def test_type_a_message_see_it_streamed_as_text_reload_and_find_it(tmp_path, tok, browser):
    server, store = _page_server(tmp_path, tok, ScriptedBackend(HOSTILE))
    with server:
        page = browser.new_page()
        page.goto(server.url + "/")
        page.fill("#input", "show me some markup")
        page.press("#input", "Enter")
        answer = page.locator(".message.assistant .content").last
        # Streamed: part of the answer is on the page before the whole of it.
        page.wait_for_function(
            f"() => {{ const e = [...document.querySelectorAll('.message.assistant .content')].pop();"
            f" return e && e.textContent.length > 0 && e.textContent.length < {len(HOSTILE)}; }}")
        page.wait_for_selector(".message.assistant.done")
        assert answer.text_content() == HOSTILE
        assert page.locator("#messages img, #messages script").count() == 0
        assert page.evaluate("window.__pwned") is None

        page.reload()
        page.wait_for_selector("#conversations li")
        assert page.locator("#conversations li").first.text_content() == "show me some markup"
        page.wait_for_selector(".message.assistant")
        assert page.locator(".message.user .content").first.text_content() == "show me some markup"
        assert page.locator(".message.assistant .content").first.text_content() == HOSTILE
        assert page.locator("#messages img, #messages script").count() == 0
        assert page.evaluate("window.__pwned") is None
    store.close()


def test_stop_button_ends_the_answer_and_keeps_what_was_said(tmp_path, tok, browser):
    backend = ScriptedBackend("word " * 200, piece=5, delay=0.05)
    server, store = _page_server(tmp_path, tok, backend)
    with server:
        page = browser.new_page()
        page.goto(server.url + "/")
        page.fill("#input", "talk for a long time")
        page.click("#send")
        page.wait_for_function(
            "() => { const e = document.querySelector('.message.assistant .content');"
            " return e && e.textContent.length >= 20; }")
        page.click("#stop")
        page.wait_for_selector(".message.assistant.done")
        deadline = time.time() + 5
        while backend.cancelled == 0:
            assert time.time() < deadline, "the stopped job was not cancelled"
            time.sleep(0.02)
        (conv,) = store.list()
        messages = store.get(conv["id"])["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert 20 <= len(messages[1]["content"]) < len("word " * 200)
        assert messages[1]["content"].startswith("word word")
    store.close()


def test_settings_rename_export_import_and_delete_from_the_page(tmp_path, tok, browser):
    server, store = _page_server(tmp_path, tok, ScriptedBackend("plain answer", piece=6, delay=0.01))
    with server:
        page = browser.new_page(accept_downloads=True)
        page.goto(server.url + "/")
        page.click("#settings summary")
        page.fill("#temperature", "0.3")
        page.fill("#max-tokens", "17")
        page.fill("#system", "be brief")
        with page.expect_request("**/reply") as sent:
            page.fill("#input", "first question")
            page.press("#input", "Enter")
        assert sent.value.post_data_json == {"content": "first question", "system": "be brief",
                                             "temperature": 0.3, "max_tokens": 17}
        page.wait_for_selector(".message.assistant.done")

        page.once("dialog", lambda d: d.accept("Renamed <b>chat</b>"))
        page.click("#rename")
        page.wait_for_function("() => document.getElementById('title').textContent === 'Renamed <b>chat</b>'")
        assert page.locator("#conversations li b").count() == 0

        with page.expect_download() as download:
            page.click("#export")
        exported = tmp_path / "exported.json"
        download.value.save_as(exported)
        data = json.loads(exported.read_text())
        assert data["title"] == "Renamed <b>chat</b>"
        assert data["messages"] == [{"role": "user", "content": "first question"},
                                    {"role": "assistant", "content": "plain answer"}]

        page.set_input_files("#import-file", str(exported))
        page.wait_for_function("() => document.querySelectorAll('#conversations li').length === 2")
        assert len(store.list()) == 2

        page.once("dialog", lambda d: d.accept())
        page.click("#delete")
        page.wait_for_function("() => document.querySelectorAll('#conversations li').length === 1")
        page.reload()  # settings survive a reload
        page.click("#settings summary")
        assert page.input_value("#system") == "be brief" and page.input_value("#max-tokens") == "17"
    store.close()
