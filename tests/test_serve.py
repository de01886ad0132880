"""The server: the official openai client against it, continuous batching, bad requests, the store.

A tiny random model (sharpened so its greedy output varies) and a tokenizer trained on
synthetic text stand in for a trained run; uvicorn runs in a thread on a free loopback port.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import torch
import uvicorn
from conftest import sharpened_gpt

from chatforge.engine import Completion, Engine, SamplingParams
from chatforge.errors import RunDirError
from chatforge.model.checkpoint import save_model
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.serve.api import create_app, load_served
from chatforge.serve.chat_cli import load_chat
from chatforge.serve.scheduler import Job, Scheduler, Token
from chatforge.serve.store import NotFound, Store
from chatforge.tokenizer.bpe import load_tokenizer, train_bpe
from chatforge.tokenizer.chat import PYTHON_END, PYTHON_START, render_prompt

KEY = "sk-test-key"
WORDS = "red green blue cat dog bird one two three four five river stone cloud light".split()


def _texts() -> list[str]:
    return [" ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 12)) + f" {i}." for i in range(400)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory with a tokenizer and a random sft checkpoint (what `serve` loads)."""
    root = tmp_path_factory.mktemp("run")
    tok = train_bpe(_texts(), vocab_size=420)
    tok.save(root / "tokenizer")
    model = sharpened_gpt(20, vocab_size=tok.vocab_size, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, seq_len=128)
    save_model(model, root / "checkpoints" / "sft")
    return root


@pytest.fixture(scope="module")
def parts(run_dir):
    """Model and tokenizer, with torch on one thread: a tiny model gains nothing from two,
    and on a loaded machine every op would wait for the slower thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engine, tok, _ = load_chat(run_dir, "sft")
    yield engine.model, tok
    torch.set_num_threads(threads)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a thread; `url` is its base address."""

    def __init__(self, app):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(run_dir, parts):
    model, tok = parts
    sched = Scheduler(model, tok, max_batch=16, max_queue=48).start()
    store = Store(run_dir / "chat" / "conversations.sqlite")
    app = create_app(sched, tok, "tiny", store, api_key=KEY, max_body=64 * 1024)
    with Server(app) as srv:
        srv.scheduler, srv.tok = sched, tok
        yield srv
    sched.close()
    store.close()


def _client(server, key=KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


AUTH = {"Authorization": f"Bearer {KEY}"}
HELLO = [{"role": "user", "content": "red cat one two"}]


def _wait_idle(sched, timeout=10.0) -> None:
    deadline = time.time() + timeout
    while sched.load() != (0, 0):
        assert time.time() < deadline, f"scheduler still busy: {sched.load()}"
        time.sleep(0.01)


def test_openai_client_gets_answers_with_and_without_streaming_with_usage(server):
    client = _client(server)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    whole = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, temperature=0)
    choice = whole.choices[0]
    assert choice.finish_reason in ("stop", "length") and choice.message.role == "assistant"
    assert whole.usage.prompt_tokens == len(render_prompt(server.tok, HELLO))
    assert 1 <= whole.usage.completion_tokens <= 12
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    chunks = list(client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=12, temperature=0,
                                                  stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == choice.message.content  # greedy: the same answer either way
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens

    text = client.completions.create(model="tiny", prompt="blue river", max_tokens=8, temperature=0)
    assert text.choices[0].finish_reason in ("stop", "length") and text.usage.completion_tokens >= 1
    pieces = list(client.completions.create(model="tiny", prompt="blue river", max_tokens=8, temperature=0,
                                             stream=True))
    assert "".join(p.choices[0].text for p in pieces if p.choices) == text.choices[0].text


def test_n_choices_logprobs_and_stop(server):
    client = _client(server)
    out = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=10, temperature=1.0, seed=3,
                                         n=3, logprobs=True, top_logprobs=2)
    assert [c.index for c in out.choices] == [0, 1, 2]
    for c in out.choices:
        assert c.logprobs.content and all(e.logprob <= 0 and len(e.top_logprobs) == 2 for e in c.logprobs.content)
    assert out.usage.completion_tokens == sum(len(c.logprobs.content) for c in out.choices)
    free = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=30, temperature=0)
    text = free.choices[0].message.content
    if len(text) > 4:
        cut = client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=30, temperature=0,
                                             stop=[text[2:4]])
        assert cut.choices[0].message.content == text[: text.index(text[2:4])]
        assert cut.choices[0].finish_reason == "stop"


def test_completions_of_several_prompts_times_n_with_logprobs(server):
    client = _client(server)
    prompts = ["blue river", "one two three"]
    out = client.completions.create(model="tiny", prompt=prompts, n=2, max_tokens=6, temperature=0.9, seed=5,
                                    logprobs=2)
    assert [c.index for c in out.choices] == [0, 1, 2, 3]
    assert out.usage.prompt_tokens == sum(len(server.tok.encode(p)) + 1 for p in prompts)  # + <|bos|>
    for c in out.choices:
        lp = c.logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset) >= 1
        assert all(1 <= len(top) <= 2 for top in lp.top_logprobs)  # two ids may decode alike (a UTF-8 part)
    # Choice j of a prompt uses seed + j, alone or beside the other prompt.
    alone = client.completions.create(model="tiny", prompt=prompts[1], n=2, max_tokens=6, temperature=0.9, seed=5)
    assert [c.text for c in alone.choices] == [c.text for c in out.choices[2:]]


def test_wrong_or_missing_api_key_is_401(server):
    with pytest.raises(openai.AuthenticationError):
        _client(server, "sk-wrong").chat.completions.create(model="tiny", messages=HELLO, max_tokens=2)
    no_key = httpx.post(server.url + "/v1/chat/completions", json={"model": "tiny", "messages": HELLO})
    assert no_key.status_code == 401
    basic = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Basic {KEY}"})
    assert basic.status_code == 401
    r = httpx.get(server.url + "/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server.url + "/api/conversations").status_code == 401
    assert httpx.get(server.url + "/health").status_code == 200


def test_scheduler_gives_the_engines_tokens_while_requests_join_and_leave(parts):
    model, tok = parts
    engine = Engine(model, tok)
    prompts = [tok.encode(t) for t in ("red cat", "one two three four five", "dog", "blue river stone")]
    sched = Scheduler(model, tok, max_batch=3, headroom=4).start()  # small: forces queueing and repacks
    try:
        for temp in (0.0, 1.0):
            params = [SamplingParams(max_new_tokens=20 + 7 * i, temperature=temp, seed=11 + i, stop_ids=())
                      for i in range(len(prompts))]
            done: queue.Queue = queue.Queue()
            for i, (p, sp) in enumerate(zip(prompts, params, strict=True)):
                sched.submit(Job(p, sp, lambda t: None, lambda c, i=i, done=done: done.put((i, c)), print))
                time.sleep(0.01)  # later ones join a batch already decoding
            got = dict(done.get(timeout=30) for _ in prompts)
            for i, (p, sp) in enumerate(zip(prompts, params, strict=True)):
                ref = engine.generate([p], sp)[0]
                assert (got[i].tokens, got[i].text, got[i].forced, got[i].parts, got[i].finish_reason) == (
                    ref.tokens, ref.text, ref.forced, ref.parts, ref.finish_reason)
        assert sched.steps < 2 * sum(20 + 7 * i for i in range(4))  # shared steps, not one per token
    finally:
        sched.close()


class ScriptedGPT(GPT):
    """A GPT whose every row writes `script` after its prompt (all prompts `prompt_len` long);
    past the script's end it closes its turn. The cache works as the real model's."""

    def __init__(self, cfg: GPTConfig, script: list[int], prompt_len: int, end: int):
        super().__init__(cfg)
        self.script, self.prompt_len, self.end = script, prompt_len, end

    def forward(self, idx, targets=None, cache=None, key_valid=None, reduction="mean", last_only=False):
        logits = super().forward(idx, cache=cache, key_valid=key_valid, last_only=last_only)
        at = (cache.next_pos - self.prompt_len).tolist()
        want = [self.script[g] if 0 <= g < len(self.script) else self.end for g in at]
        out = torch.full_like(logits, -1e4)
        out[torch.arange(len(want)), -1, torch.tensor(want)] = 0.0
        return out


def test_tool_calls_run_in_the_batch_as_in_the_engine(parts):
    model, tok = parts
    prompt = render_prompt(tok, [{"role": "user", "content": "add them"}])
    script = [tok.special_id(PYTHON_START), *tok.encode("2+3"), tok.special_id(PYTHON_END),
              *tok.encode(" it is")]  # after the call the model writes on; the output is forced between
    scripted = ScriptedGPT(model.cfg, script, len(prompt), tok.special_id("<|assistant_end|>"))
    scripted.load_state_dict(model.state_dict())
    sched = Scheduler(scripted.eval(), tok, max_batch=4).start()
    try:
        done: queue.Queue = queue.Queue()
        params = SamplingParams(max_new_tokens=40, temperature=0.0)
        sched.submit(Job(prompt, params, lambda t: None, done.put, print))
        got = done.get(timeout=30)
    finally:
        sched.close()
    ref = Engine(scripted, tok).generate([prompt], params)[0]
    assert {"type": "python", "text": "2+3"} in got.parts and {"type": "python_output", "text": "5"} in got.parts
    assert any(got.forced) and got.finish_reason == "stop"
    assert (got.tokens, got.text, got.forced, got.parts) == (ref.tokens, ref.text, ref.forced, ref.parts)


class FlakyGPT(GPT):
    """A GPT whose next forward raises once `fail` is set (an out-of-memory, say)."""

    fail = False

    def forward(self, *args, **kwargs):
        if self.fail:
            self.fail = False
            raise RuntimeError("simulated device failure")
        return super().forward(*args, **kwargs)


def test_a_failed_forward_fails_its_requests_and_the_server_goes_on(parts):
    model, tok = parts
    flaky = FlakyGPT(model.cfg)
    flaky.load_state_dict(model.state_dict())
    sched = Scheduler(flaky.eval(), tok).start()
    with Server(create_app(sched, tok, "tiny")) as srv:
        flaky.fail = True
        r = httpx.post(srv.url + "/v1/chat/completions", json={"model": "tiny", "messages": HELLO}, timeout=30)
        assert r.status_code == 500 and "simulated device failure" in r.json()["error"]["message"]
        ok = httpx.post(srv.url + "/v1/chat/completions", json={"model": "tiny", "messages": HELLO, "max_tokens": 4},
                        timeout=30)
        assert ok.status_code == 200 and ok.json()["choices"][0]["finish_reason"] in ("stop", "length")
    sched.close()


def test_a_seeded_request_gives_the_same_answer_whatever_shares_the_batch(server):
    client = _client(server)
    ask = dict(model="tiny", messages=HELLO, max_tokens=24, temperature=1.0, seed=1234)
    alone = client.chat.completions.create(**ask).choices[0].message.content
    others = [dict(model="tiny", messages=[{"role": "user", "content": f"bird {i} stone"}], max_tokens=40,
                   temperature=1.0) for i in range(6)]
    with ThreadPoolExecutor(7) as pool:
        noise = [pool.submit(client.chat.completions.create, **o) for o in others]
        time.sleep(0.05)
        busy = pool.submit(client.chat.completions.create, **ask)
        assert busy.result().choices[0].message.content == alone
        [f.result() for f in noise]


def test_32_concurrent_streaming_clients_are_all_served(server):
    def one(i):
        client = _client(server)
        stream = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": f"cat {i} dog"}], max_tokens=16, temperature=0.8,
            seed=i, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        return [c.choices[0].finish_reason for c in chunks if c.choices][-1], chunks[-1].usage.completion_tokens

    steps = server.scheduler.steps
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    assert len(results) == 32 and all(reason in ("stop", "length") and n >= 1 for reason, n in results)
    # Batched: far fewer decode steps than tokens generated (one-at-a-time needs one per token).
    assert server.scheduler.steps - steps < sum(n for _, n in results) / 2
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def _post(server, path, content=None, json_body=None, headers=AUTH):
    return httpx.post(server.url + path, content=content, json=json_body, headers=headers, timeout=30)


@pytest.mark.parametrize(("body", "status", "param"), [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', 400, None),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": 5}]}).encode(), 422, "messages.0.content"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}).encode(),
     422, "max_tokens"),
    (json.dumps({"model": "tiny", "messages": []}).encode(), 422, "messages"),
    (json.dumps({"model": "tiny", "messages": [{"role": "assistant", "content": "x"}]}).encode(), 400, "messages"),
    (json.dumps({"model": "nope", "messages": HELLO}).encode(), 404, "model"),
    (json.dumps({"model": "tiny", "messages": HELLO, "max_tokens": 10**6}).encode(), 400, "max_tokens"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "red cat " * 200}]}).encode(),
     400, "messages"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x" * 70_000}]}).encode(), 413, None),
])
def test_bad_requests_get_openai_errors_and_the_next_request_succeeds(server, body, status, param):
    r = _post(server, "/v1/chat/completions", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param
    ok = _client(server).chat.completions.create(model="tiny", messages=HELLO, max_tokens=3)
    assert ok.choices[0].finish_reason in ("stop", "length")


def test_unknown_route_is_an_openai_404(server):
    r = httpx.get(server.url + "/v1/nothing", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_client_that_leaves_mid_stream_frees_its_slot_at_once(server):
    _wait_idle(server.scheduler)
    steps = server.scheduler.steps
    body = {"model": "tiny", "messages": HELLO, "max_tokens": 120, "temperature": 1.0, "stream": True,
            "stop": ["\x00never"], "ignore_eos": True}
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", server.url + "/v1/chat/completions", json=body, headers=AUTH) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            next(line for line in lines if line.startswith("data: ") and '"content": ""' not in line)
            assert server.scheduler.load() == (1, 0)  # generating
    _wait_idle(server.scheduler, timeout=2.0)
    assert server.scheduler.steps - steps < 100  # cut short: it would have run ~115 steps
    ok = _client(server).chat.completions.create(model="tiny", messages=HELLO, max_tokens=3)
    assert ok.choices[0].finish_reason in ("stop", "length")


class SlowBackend:
    """The scheduler's interface, one token every 50 ms for 10 s unless cancelled."""

    context_length = 128

    def __init__(self):
        self.cancelled = threading.Event()

    def load(self) -> tuple[int, int]:
        return 0, 0

    def submit(self, job: Job) -> Job:
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        for _ in range(200):
            time.sleep(0.05)
            if job.cancelled:
                self.cancelled.set()
                return
            job.on_token(Token(0, "x"))
        job.on_done(Completion(tokens=[0] * 200, text="x" * 200, finish_reason="length"))


def test_a_cancelled_job_leaves_the_batch_at_the_next_step(parts):
    model, tok = parts
    sched = Scheduler(model, tok).start()
    try:
        seen, done = [], queue.Queue()
        stay = Job([1, 2, 3], SamplingParams(max_new_tokens=60, stop_ids=()), lambda t: None, done.put, print)

        def on_token(t, seen=seen):
            seen.append(t)
            if len(seen) == 3:
                leave.cancel()

        leave = Job([4, 5], SamplingParams(max_new_tokens=60, stop_ids=()), on_token, done.put, print)
        sched.submit(stay)
        sched.submit(leave)
        assert len(done.get(timeout=30).tokens) == 60  # the other row is unaffected
        assert len(seen) == 3 and done.empty()  # no token after the cancel, and no on_done
    finally:
        sched.close()


def test_a_client_that_gives_up_on_a_whole_answer_has_its_job_cancelled(parts):
    backend = SlowBackend()
    with Server(create_app(backend, parts[1], "slow")) as srv:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(srv.url + "/v1/chat/completions", json={"model": "slow", "messages": HELLO}, timeout=0.3)
        assert backend.cancelled.wait(timeout=3.0)  # the server checks for a gone client every second


def test_queue_full_is_429_with_an_openai_error(parts):
    model, tok = parts
    sched = Scheduler(model, tok, max_batch=1, max_queue=0)  # not started: the one slot stays taken
    app = create_app(sched, tok, "tiny")
    with Server(app) as srv:
        sched.submit(Job([1, 2, 3], SamplingParams(), lambda t: None, lambda c: None, lambda m: None))
        r = httpx.post(srv.url + "/v1/chat/completions", json={"model": "tiny", "messages": HELLO}, timeout=10)
        assert r.status_code == 429 and r.json()["error"]["code"] == "queue_full"


def test_web_chat_api_keeps_conversations_renames_deletes_exports_and_imports(server):
    http = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
    conv = http.post("/api/conversations", json={}).json()
    with http.stream("POST", f"/api/conversations/{conv['id']}/reply",
                     json={"content": "red cat", "temperature": 0, "max_tokens": 8}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    answer = "".join(e.get("delta", "") for e in events)
    assert events[-1]["finish_reason"] in ("stop", "length")
    got = http.get(f"/api/conversations/{conv['id']}").json()
    assert got["messages"] == [{"role": "user", "content": "red cat"}, {"role": "assistant", "content": answer}]
    assert got["title"] == "red cat"
    assert http.patch(f"/api/conversations/{conv['id']}", json={"title": "renamed"}).json()["title"] == "renamed"
    exported = http.get(f"/api/conversations/{conv['id']}/export").json()
    made = http.post("/api/conversations/import", json=[exported, exported]).json()["conversations"]
    assert len(made) == 2
    assert http.get(f"/api/conversations/{made[0]['id']}").json()["messages"] == got["messages"]
    bad = http.post("/api/conversations/import", json=[exported, {"messages": [{"role": "x"}]}])
    assert bad.status_code == 400 and "conversation 1" in bad.json()["error"]["message"]
    assert http.delete(f"/api/conversations/{conv['id']}").status_code == 200
    assert http.get(f"/api/conversations/{conv['id']}").status_code == 404


def test_store_survives_kill_9(tmp_path):
    db = tmp_path / "chat.sqlite"
    code = ("import os, signal, sys; from chatforge.serve.store import Store; s = Store(sys.argv[1]); "
            "c = s.create('kept'); s.append(c['id'], 'user', 'hello'); print(c['id'], flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    cid = proc.stdout.strip()
    store = Store(db)
    assert store.get(cid)["messages"] == [{"role": "user", "content": "hello"}]
    with pytest.raises(NotFound):
        store.get("missing")
    assert os.path.exists(str(db) + "-wal") or db.stat().st_size > 0


def test_cli_serve_answers_over_http(run_dir):
    port = _free_port()
    env = {**os.environ, "CHATFORGE_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "chatforge", "serve", str(run_dir), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=AUTH, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read() if proc.poll() else ""
                time.sleep(0.2)
        name = r.json()["data"][0]["id"]
        assert name.endswith("-sft")
        out = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY).chat.completions.create(
            model=name, messages=HELLO, max_tokens=4)
        assert out.usage.completion_tokens >= 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_serve_loads_a_run_a_stage_dir_or_a_step_dir_with_the_runs_tokenizer_and_chats(tmp_path, parts):
    model, tok = parts
    run = tmp_path / "myrun"
    tok.save(run / "tokenizer")
    save_model(model, run / "checkpoints" / "sft" / "step_5")
    (run / "checkpoints" / "sft" / "LATEST").write_text("step_5")
    for source in (run, run / "checkpoints" / "sft", run / "checkpoints" / "sft" / "step_5"):
        served, served_tok, name, chat_dir = load_served(source)
        assert (name, chat_dir.resolve()) == ("myrun-sft", (run / "chat").resolve())
        assert served_tok.encode("red cat") == tok.encode("red cat")
        assert torch.equal(served.lm_head.weight, model.lm_head.weight)
    with pytest.raises(RunDirError, match="no such run or checkpoint"):
        load_served(tmp_path / "missing")
    with pytest.raises(RunDirError, match="stage of a run"):
        load_served(run / "checkpoints" / "sft", stage="sft")


def test_loaded_tokenizer_is_the_saved_one(run_dir, parts):
    assert load_tokenizer(run_dir / "tokenizer").encode("red cat") == parts[1].encode("red cat")
