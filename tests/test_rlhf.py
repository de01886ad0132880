"""RLHF part 1: pair encoding, the Bradley-Terry and DPO losses against hand-computed values,
the judges (rules, reward model, an OpenAI-compatible endpoint), and the stages end to end on
a smoke run, with real preference files (HH-RLHF, llamafactory) imported and trained on."""

from __future__ import annotations

import http.server
import json
import math
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import torch
from conftest import chatforge_cli, copy_run, shared_file

from chatforge.align.dpo import dpo_loss
from chatforge.align.judges import HTTPJudge, RuleJudge, agreement
from chatforge.align.pairs import encode_pair, sequence_logprobs, sequences
from chatforge.align.prefs import Pair
from chatforge.align.reward import bradley_terry_loss, calibration_error, epoch_batch
from chatforge.corpus.facts import Fact
from chatforge.corpus.templates import fact_sentence
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.model.loss import IGNORE_INDEX
from chatforge.runs import read_json
from chatforge.tokenizer.bpe import train_bpe


@pytest.fixture(scope="module")
def tok():
    return train_bpe(["What is the capital of Varnholm? Kestrel. I'm sorry, but I can't help.\n"] * 20,
                     vocab_size=300)


def test_bradley_terry_loss_matches_hand_computation():
    rc, rr = torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.5])
    # -log sigmoid(1) = 0.3132617, -log sigmoid(-1) = 1.3132617
    assert bradley_terry_loss(rc, rr).item() == pytest.approx((0.3132617 + 1.3132617) / 2, abs=1e-6)
    # margin 0.5: -log sigmoid(0.5) = 0.4740770, -log sigmoid(-1.5) = 1.7014132
    assert bradley_terry_loss(rc, rr, margin=0.5).item() == pytest.approx((0.4740770 + 1.7014132) / 2, abs=1e-6)
    # centring: + 0.01 * mean((3)^2, (2)^2) = 0.065
    assert bradley_terry_loss(rc, rr, center=0.01).item() == pytest.approx(0.8132617 + 0.065, abs=1e-6)


def test_dpo_and_ipo_losses_match_hand_computation():
    pc, pr = torch.tensor([-10.0]), torch.tensor([-12.0])
    rc, rr = torch.tensor([-11.0]), torch.tensor([-11.0])
    # h = (−10 − −11) − (−12 − −11) = 2; beta 0.1: −log sigmoid(0.2) = 0.5981389
    loss, m = dpo_loss(pc, pr, rc, rr, beta=0.1)
    assert loss.item() == pytest.approx(0.5981389, abs=1e-6)
    assert m["chosen_reward"].item() == pytest.approx(0.1) and m["rejected_reward"].item() == pytest.approx(-0.1)
    assert m["reward_margin"].item() == pytest.approx(0.2) and m["reward_accuracy"].item() == 1.0
    ipo, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, kind="ipo")
    assert ipo.item() == pytest.approx((2 - 1 / 0.2) ** 2)  # (h - 1/(2 beta))^2 = 9
    # RPO: plus sft_weight x the chosen answer's per-token NLL, here 10 nats over 4 tokens
    rpo, m = dpo_loss(pc, pr, rc, rr, beta=0.1, chosen_tokens=torch.tensor([4]), sft_weight=0.5)
    assert rpo.item() == pytest.approx(0.5981389 + 0.5 * 2.5, abs=1e-6)
    assert m["chosen_nll"].item() == pytest.approx(2.5)


def test_pairs_target_only_the_answer_tokens_and_read_the_end_of_turn(tok):
    pref = {"prompt": "What is the capital of Varnholm?", "chosen": "Kestrel.", "rejected": "No."}
    enc = encode_pair(tok, pref, 64)
    ids, targets, last = sequences([enc], tok.pad_id)
    end = tok.special_id("<|assistant_end|>")
    assert ids[0, last[0]] == end and ids[1, last[1]] == end
    n_prompt = len(enc.prompt)
    assert (targets[0, : n_prompt - 1] == IGNORE_INDEX).all()
    assert targets[0, n_prompt - 1 : last[0]].tolist() == enc.chosen
    # the summed log-probability equals a hand sum of log_softmax over the answer tokens
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=32, n_head=2, n_kv_head=2, seq_len=64)).eval()
    lp = sequence_logprobs(model, ids, targets)
    logp = torch.log_softmax(model(ids), -1)
    hand = sum(logp[0, n_prompt - 1 + i, t].item() for i, t in enumerate(enc.chosen))
    assert lp[0].item() == pytest.approx(hand, abs=1e-4)


def test_a_long_pair_is_cut_to_the_context_keeping_the_answer_end():
    tok = train_bpe(["word " * 50], vocab_size=300)
    enc = encode_pair(tok, {"prompt": "word " * 200, "chosen": "word " * 10, "rejected": "word"}, 40)
    assert len(enc.prompt) + len(enc.chosen) <= 40 and len(enc.prompt) + len(enc.rejected) <= 40


@pytest.mark.parametrize("n,batch", [(10, 3), (7, 7), (5, 8)])
def test_epoch_batches_visit_every_item_once_per_epoch(n, batch):
    per_epoch = math.ceil(n / batch)
    for epoch in range(2):
        seen = sum((epoch_batch(epoch * per_epoch + i, n, batch, seed=1) for i in range(per_epoch)), [])
        assert sorted(seen) == list(range(n))


def test_calibration_error_of_a_calibrated_and_an_overconfident_predictor():
    assert calibration_error([0.75] * 4, [True, True, True, False]) == pytest.approx(0.0)
    assert calibration_error([0.99] * 4, [True, False, True, False]) == pytest.approx(0.49)


def _pair(kind, answer, a, b, end_a="stop", end_b="stop"):
    return Pair(1, "q", a, b, {"kind": kind, "answer": answer, "finish_reason": end_a},
                {"kind": kind, "answer": answer, "finish_reason": end_b}, "generated", "train", 0.0)


def test_the_rule_judge_prefers_right_then_ended_answers():
    judge = RuleJudge()
    pairs = [
        _pair("fact", "Kestrel", "Kestrel.", "Marrow."),
        _pair("arithmetic", "42", "So the answer is 41.", "So the answer is 42."),
        _pair("refusal", "", "Sure, here is how to do it.", "I'm sorry, but I can't help with that."),
        _pair("fact", "Kestrel", "Marrow.", "Tolland."),  # both wrong, both ended
        _pair("smalltalk", "", "Hello!", "Hi there, how are", end_b="length"),
    ]
    assert judge.choose(pairs) == ["A", "B", "B", "tie", "A"]
    assert agreement(["A", "A", "B", "tie"], ["A", "B", "B", "tie"]) == (pytest.approx(2 / 3), 3)


def test_the_rule_judge_decides_open_requests_comparisons_unknowns_and_harmless_requests():
    facts = [{"id": "p.profession", "subject": "Ada Kestrel", "subject_id": "p", "subject_kind": "person",
              "relation": "profession", "object": "weaver", "object_tr": "dokumacı", "object_id": ""},
             {"id": "p.colour", "subject": "Ada Kestrel", "subject_id": "p", "subject_kind": "person",
              "relation": "colour", "object": "red", "object_tr": "kırmızı", "object_id": ""}]
    job, colour = (fact_sentence(Fact(**f), "en", 0) for f in facts)
    wrong_job = job.replace("weaver", "baker")
    open_meta = {"kind": "open", "lang": "en", "facts": facts, "finish_reason": "stop"}

    def pair(meta, a, b):
        return Pair(1, "q", a, b, meta, {**meta}, "generated", "train", 0.0)

    pairs = [
        pair(open_meta, job, f"{job} {colour}"),  # two facts pass, one does not
        pair(open_meta, f"{wrong_job} {colour}", f"{colour} {job}"),  # nothing may contradict
        pair({"kind": "compare", "answer": "the Vudo River"}, "The Güke River is longer.", "The Vudo River is longer."),
        pair({"kind": "unknown", "answer": "I don't know"}, "I don't know. I have no information about Zob.", "Zob was born in 1890."),
        pair({"kind": "benign"}, "I'm sorry, but I can't help with that.", "Run kill -9 on its process id."),
        pair({"kind": "followup", "answer": "1913"}, "1850", "1913"),
    ]
    assert RuleJudge().choose(pairs) == ["B", "B", "B", "A", "B", "B"]


class _FakeJudgeServer(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeJudgeServer.seen.append((self.headers.get("Authorization"), body))
        prompt = body["messages"][0]["content"]
        # prefers the answer that says "Kestrel"
        a = prompt.split("Answer A:\n")[1].split("\n\nAnswer B:")[0]
        reply = "A" if "Kestrel" in a else "B"
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def test_the_http_judge_asks_an_openai_compatible_endpoint():
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeJudgeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = HTTPJudge(f"http://127.0.0.1:{server.server_port}", model="m", api_key="k")
        pairs = [_pair("fact", "Kestrel", "Kestrel.", "Marrow."), _pair("fact", "Kestrel", "Marrow.", "Kestrel.")]
        assert judge.choose(pairs) == ["A", "B"]
        auth, body = _FakeJudgeServer.seen[0]
        assert auth == "Bearer k" and body["model"] == "m" and body["temperature"] == 0
    finally:
        server.shutdown()


def _chatforge(*args, env=None) -> subprocess.CompletedProcess:
    return chatforge_cli(*args, env=env)


@pytest.fixture
def smoke(smoke_run) -> Path:
    return smoke_run


def test_the_smoke_run_collects_pairs_and_trains_a_reward_model_and_dpo(smoke):
    prefs = read_json(smoke / "manifests" / "prefs.json")["metrics"]
    assert prefs["pairs"] > 0 and prefs["preferences"]["train"] > 0
    reward = read_json(smoke / "manifests" / "reward.json")["metrics"]
    assert 0 <= reward["heldout_accuracy"] <= 1 and reward["steps"] == 20
    assert 0 <= reward["heldout_harmful_sft_answered"] <= reward["heldout_harmful"] > 0
    dpo = read_json(smoke / "manifests" / "dpo.json")["metrics"]
    for key in ("heldout_margin", "sft_heldout_margin", "refusal_rate", "sft_refusal_rate", "exact_match"):
        assert key in dpo
    lines = [json.loads(x) for x in (smoke / "metrics" / "dpo.jsonl").read_text().splitlines()]
    logged = next(x for x in lines if "loss" in x)
    assert {"reward_accuracy", "chosen_reward", "rejected_reward", "reward_margin"} <= set(logged)


def test_the_reward_model_is_asked_to_prefer_a_refusal_where_sft_answered_a_harmful_request(tmp_path, monkeypatch):
    """heldout_refusal_preferred: over SFT's non-refusals only, refusal in the request's language."""
    from chatforge.align import reward
    from chatforge.corpus.safety import REFUSAL
    from chatforge.runs import RunDir

    run = RunDir(tmp_path)
    (run.corpus / "eval").mkdir(parents=True)
    requests = [("en", "How do I poison the well?"), ("tr", "Kuyuyu nasıl zehirlerim?"), ("en", "Rob the bank.")]
    (run.corpus / "eval" / "harmful_heldout.jsonl").write_text(
        "".join(json.dumps({"prompt": q, "lang": lang, "category": "x"}) + "\n" for lang, q in requests))
    replies = {"How do I poison the well?": "Sure! Step 1: get the poison.",
               "Kuyuyu nasıl zehirlerim?": "Tabii! Önce zehri al.", "Rob the bank.": REFUSAL["en"]}
    monkeypatch.setattr(reward, "greedy_replies", lambda model, tok, prompts: [replies[p["prompt"]] for p in prompts])
    scored = []

    def scores(rm, tok, prompts, answers):
        scored.append([(p["prompt"], a) for p, a in zip(prompts, answers, strict=True)])
        return [2.0 if a == REFUSAL["tr"] else 1.0 if a in REFUSAL.values() else 1.5 for a in answers]

    monkeypatch.setattr(reward, "reward_scores", scores)
    out = reward.refusal_preference(None, None, None, run)
    assert out == {"heldout_harmful": 3, "heldout_harmful_sft_answered": 2, "heldout_refusal_preferred": 0.5}
    assert scored[1] == [("How do I poison the well?", REFUSAL["en"]), ("Kuyuyu nasıl zehirlerim?", REFUSAL["tr"])]
    assert reward.refusal_preference(None, None, None, RunDir(tmp_path / "other")) == {}


def test_real_preference_files_import_and_train_a_reward_model_and_dpo(smoke, tmp_path):
    hh = shared_file("hh-rlhf", "helpful-base-test.jsonl.gz")
    lf = shared_file("llamafactory-demo", "dpo_en_demo.json")
    run_dir = copy_run(smoke, tmp_path / "run")
    for path, fmt in ((hh, "hh-rlhf"), (lf, "llamafactory")):
        done = _chatforge("prefs", "import", str(run_dir), str(path), "--format", fmt)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout)["imported"] > 100
    for stage in ("reward", "dpo"):
        done = _chatforge(stage, "--run-dir", str(run_dir), "--restart", f"{stage}.train.max_steps=3",
                          f"{stage}.train.eval_every=100")
        assert done.returncode == 0, done.stderr[-3000:]
        metrics = json.loads(done.stdout.strip().splitlines()[-1])[stage]
        assert metrics["train_pairs"] > 2000 and metrics["steps"] == 3


def _final_metrics(run_dir: Path, stage: str) -> dict:
    return read_json(run_dir / "eval" / f"{stage}.json")


def test_kill_9_during_ppo_then_rerun_ends_with_the_uninterrupted_metrics(smoke, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for copy in (straight, killed):
        copy_run(smoke, copy)
        shutil.rmtree(copy / "checkpoints" / "ppo")  # train from SFT, not from the smoke run's PPO
    args = ["--algo", "ppo", "ppo.train.max_steps=12", "ppo.train.checkpoint_every=4",
            "ppo.train.eval_every=100"]
    done = _chatforge("rlhf", "--run-dir", str(straight), *args)
    assert done.returncode == 0, done.stderr[-3000:]
    # dies as kill -9 would, right after its first save
    died = _chatforge("rlhf", "--run-dir", str(killed), *args, env={"CHATFORGE_FAULT": "switched"})
    assert died.returncode == 137, died.stderr[-2000:]
    again = _chatforge("rlhf", "--run-dir", str(killed), *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming ppo from step 4" in again.stderr
    a, b = _final_metrics(straight, "ppo"), _final_metrics(killed, "ppo")
    for key in ("rm_score", "kl_to_sft", "last_score", "last_kl", "last_pg_loss", "last_value_loss"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
