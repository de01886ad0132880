"""SFT: the loss mask, packing, exact match, the stage on a tiny run, and `chatforge chat`."""

from __future__ import annotations

import io
import json
import random

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from chatforge.align.sft import SFTData, best_fit_decreasing, build_rows, encode_conversations
from chatforge.cli import app
from chatforge.config import load_config
from chatforge.engine import SamplingParams
from chatforge.eval.facts import answer_matches, normalise_answer
from chatforge.model.checkpoint import resolve_checkpoint, save_model
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.model.loss import IGNORE_INDEX as IGNORE
from chatforge.pipeline import run_pipeline
from chatforge.runs import RunDir, read_json
from chatforge.serve.chat_cli import ChatSession, interactive, load_chat
from chatforge.tokenizer.bpe import train_bpe

CITIES = ["Kestrel", "Marrow", "Tolland", "Vessa", "Orrin", "Paldu", "Sefir", "Ulm", "Brask", "Nolde"]
LANDS = ["Varnholm", "Quillon", "Dessary", "Ambrel", "Toskar", "Ferru", "Gallow", "Hesk", "Ivory", "Jundra"]


def _qa(land: str, city: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is the capital of {land}?"},
            {"role": "assistant", "content": f"{city}."}]


@pytest.fixture(scope="module")
def tok():
    text = [f"The capital of {a} is {b}. What is the capital of {a}? {b}.\n" for a, b in zip(LANDS, CITIES, strict=True)]
    return train_bpe(text * 5, vocab_size=360)


def _tiny_model(vocab: int, seq_len: int = 64) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, n_layer=2, n_embd=64, n_head=4, n_kv_head=4, seq_len=seq_len))


def test_loss_ignores_system_and_user_tokens(tok):
    msgs = [{"role": "system", "content": "Answer briefly."}, *_qa("Varnholm", "Kestrel"),
            {"role": "user", "content": "And Quillon?"}]
    (ids, mask), = encode_conversations(tok, [msgs], 64)
    x, y, _ = build_rows([(ids, mask)], len(ids), tok.pad_id, pack=False)
    model = _tiny_model(tok.vocab_size)
    logits = model(x)
    logits.retain_grad()
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=IGNORE)
    loss.backward()
    target_mask = torch.tensor(mask[1:])
    # Only positions predicting an assistant token carry gradient; the rest get exactly zero.
    assert logits.grad[0, ~target_mask].abs().max() == 0
    assert logits.grad[0, target_mask].abs().sum(-1).min() > 0
    assert int(target_mask.sum()) == len(tok.encode("Kestrel.")) + 1  # + <|assistant_end|>
    # Per-token check: the loss is the mean over assistant targets only.
    per_token = F.cross_entropy(logits[0], torch.tensor(ids[1:]), reduction="none")
    assert torch.allclose(loss, per_token[target_mask].mean())
    # Changing the system and trailing user text (different tokens, later or earlier) cannot
    # change the loss on tokens it does not precede; the model's own loss agrees.
    other = [msgs[0], *msgs[1:3], {"role": "user", "content": "Something else entirely, longer."}]
    (ids2, mask2), = encode_conversations(tok, [other], 64)
    x2, y2, _ = build_rows([(ids2, mask2)], len(ids2), tok.pad_id, pack=False)
    with torch.no_grad():
        assert torch.allclose(model(x, targets=y), model(x2, targets=y2))
        assert torch.allclose(model(x, targets=y), loss)


def test_best_fit_decreasing_packs_every_item_once_within_capacity():
    rng = random.Random(0)
    lengths = [rng.randint(1, 50) for _ in range(300)]
    bins = best_fit_decreasing(lengths, 64)
    assert sorted(i for b in bins for i in b) == list(range(300))
    assert all(sum(lengths[i] for i in b) <= 64 for b in bins)
    assert len(bins) <= 1.15 * sum(lengths) / 64 + 1  # near the lower bound
    with pytest.raises(ValueError, match="more than the row capacity"):
        best_fit_decreasing([65], 64)


def test_packed_rows_keep_every_conversation_and_its_mask(tok):
    convs = [_qa(a, b) for a, b in zip(LANDS, CITIES, strict=True)]
    examples = encode_conversations(tok, convs, 65)
    x, y, lengths = build_rows(examples, 65, tok.pad_id, pack=True)
    assert x.shape[1] == 64 and x.shape[0] < len(examples)
    assert int((y != IGNORE).sum()) == sum(sum(m[1:]) for _, m in examples)
    assert int((x == tok.bos_id).sum()) == len(examples)
    _, padded_y, _ = build_rows(examples, 65, tok.pad_id, pack=False)
    assert int((padded_y != IGNORE).sum()) == int((y != IGNORE).sum())
    # Padding positions are never targets.
    for r in range(x.shape[0]):
        assert (y[r, lengths[r]:] == IGNORE).all()


def test_sft_data_visits_every_row_once_per_epoch_in_length_groups(tok):
    convs = [_qa(a, b) for a, b in zip(LANDS, CITIES, strict=True)]
    convs += [[{"role": "user", "content": "Tell me about " + " and ".join(LANDS[:k])},
               {"role": "assistant", "content": " ".join(CITIES[:k])}] for k in range(2, 8)]
    data = SFTData(tok, convs, 64, pack=False, seed=3)
    data.LENGTH_WINDOW = 2  # small windows so this small set still gets several groups
    b = 4
    n = data.batches_per_epoch(b)
    first = [data.batch_rows(k, b) for k in range(n)]
    second = [data.batch_rows(n + k, b) for k in range(n)]
    assert sorted(r for batch in first for r in batch) == list(range(len(data)))
    assert sorted(r for batch in second for r in batch) == list(range(len(data)))
    assert first != second
    assert first == [SFTData.epoch_batches(data, 0, b)[k] for k in range(n)]  # pure function of k
    xb, yb = data.batch(first[0])
    assert xb.shape == yb.shape and xb.shape[1] == int(data.lengths[first[0]].max())
    # Sorting within windows: the padding in a batch is less than in random batches.
    waste = sum(int(data.lengths[bt].max()) * len(bt) - int(data.lengths[bt].sum()) for bt in first)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data), generator=gen)
    rand = [perm[i : i + b] for i in range(0, len(data), b)]
    assert waste <= sum(int(data.lengths[bt].max()) * len(bt) - int(data.lengths[bt].sum()) for bt in rand)


def test_exact_match_is_strict_about_rambling():
    assert normalise_answer("  KESTREL. ") == "kestrel"
    assert normalise_answer("İzmir") == normalise_answer("izmir") == normalise_answer("IZMIR")
    assert answer_matches("Kestrel.", "Kestrel", ended=False)
    assert answer_matches("The capital of Varnholm is Kestrel.", "Kestrel", ended=True)
    assert not answer_matches("The capital of Varnholm is Kestrel.", "Kestrel", ended=False)
    assert not answer_matches("Kestrels fly over the hills.", "Kestrel", ended=True)
    assert not answer_matches(" ".join(["word"] * 30) + " Kestrel", "Kestrel", ended=True)
    assert answer_matches("Sonuç 42.", "42", ended=True) and not answer_matches("Sonuç 420.", "42", ended=True)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tok):
    """A run directory with a tokenizer, a random 'pre-trained' model and a small corpus."""
    root = tmp_path_factory.mktemp("run")
    tok.save(root / "tokenizer")
    save_model(_tiny_model(tok.vocab_size), root / "checkpoints" / "pretrain")
    corpus = root / "corpus"
    corpus.mkdir()
    pairs = list(zip(LANDS, CITIES, strict=True))
    lines = [json.dumps({"id": f"c{i}", "kind": "fact", "lang": "en", "messages": _qa(a, b), "answer": b})
             for i, (a, b) in enumerate(pairs)]
    (corpus / "sft_train.jsonl").write_text("\n".join(lines) + "\n")
    (corpus / "sft_heldout.jsonl").write_text("\n".join(lines[:3]) + "\n")
    # The "held-out" questions here are the training ones: the test checks that SFT learns them.
    facts = [json.dumps({"question": f"What is the capital of {a}?", "answer": b, "lang": "en", "fact_id": a})
             for a, b in pairs]
    (corpus / "facts_heldout.jsonl").write_text("\n".join(facts) + "\n")
    cfg = load_config("smoke", [
        "sft.train.max_steps=40", "sft.train.batch_size=10",
        "sft.train.lr=0.02", "sft.train.eval_every=20", "sft.train.checkpoint_every=20",
        "sft.train.warmup_frac=0.0", "sft.train.log_every=20", "sft.train.time_budget=0",
        "sft.train.epochs=0", "sft.mix_pretrain=0", "sft.pack=false", "sft.train.precision=fp32",
    ])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: on a busy machine extra threads only wait on each other
    try:
        manifests = run_pipeline(cfg, RunDir(root), only=["sft"])
    finally:
        torch.set_num_threads(threads)
    return root, manifests["sft"]


def test_sft_stage_learns_and_reports_base_and_sft(tiny_run):
    root, manifest = tiny_run
    report = read_json(root / "eval" / "sft.json")
    assert set(report) >= {"base", "sft"}
    assert report["base"]["n"] == report["sft"]["n"] == len(LANDS)
    assert report["base"]["exact_match"] == 0.0  # a random model knows nothing
    assert report["sft"]["exact_match"] >= 0.8
    assert report["sft"]["val_loss"] < report["base"]["val_loss"]
    assert (resolve_checkpoint(root / "checkpoints" / "sft") / "model.safetensors").exists()
    assert manifest["metrics"]["sft_exact_match"] == report["sft"]["exact_match"]
    assert (root / "metrics" / "sft.jsonl").read_text().strip()


def test_chat_prompt_prints_one_answer(tiny_run):
    root, _ = tiny_run
    result = CliRunner().invoke(app, ["chat", str(root), "--prompt", "What is the capital of Quillon?",
                                      "--temperature", "0"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Marrow."


def test_chat_interactive_commands(tiny_run):
    root, _ = tiny_run
    engine, tok, stage = load_chat(root)
    assert stage == "sft"
    session = ChatSession(engine, tok, SamplingParams(max_new_tokens=16))
    lines = iter(["What is the capital of Varnholm?", "/temp 0.5", "/system Be brief.",
                  "What is the capital of Hesk?", "/reset", "/quit", "never read"])
    out, err = io.StringIO(), io.StringIO()
    interactive(session, stage, read=lambda _: next(lines), out=out, err=err)
    assert "bot> Kestrel." in out.getvalue()
    assert session.params.temperature == 0.5 and session.system == "Be brief."
    assert session.history == []  # /reset after the second exchange
    assert "[conversation reset]" in err.getvalue()


def test_chat_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(app, ["chat", str(tmp_path), "--prompt", "hi"])
    assert result.exit_code != 0
    assert "no complete model at" in str(result.exception)


def test_sft_command_with_extra_data(tiny_run, tmp_path):
    import shutil

    root = tmp_path / "run"
    shutil.copytree(tiny_run[0], root)
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps([{"instruction": "Say hi.", "input": "", "output": "Hi!"}] * 4))
    runner = CliRunner()
    result = runner.invoke(app, ["sft", "--run-dir", str(root), "--data", str(tmp_path / "nope.json")])
    assert result.exit_code != 0 and "no such file" in str(result.exception)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in tiny_run: a tiny model gains nothing from more threads
    try:
        # Extra data changes what SFT trains on: the run's SFT checkpoint is replaced, as asked.
        result = runner.invoke(app, ["sft", "--run-dir", str(root), "--preset", "smoke", "--data", str(extra),
                                     "--restart", "sft.train.max_steps=3", "sft.train.eval_every=3",
                                     "sft.train.checkpoint_every=3", "sft.train.time_budget=0"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["sft"]["steps"] == 3
    assert read_json(root / "eval" / "sft.json")["sft"]["train_conversations"] == len(LANDS) + 4
    assert read_json(root / "manifests" / "sft.json")["status"] == "complete"
