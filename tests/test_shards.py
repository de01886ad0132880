"""Token shards: split by document, bos-separated, counted; seeded batches; the two pipeline stages."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import shared_file

from chatforge.config import Config
from chatforge.errors import RunDirError
from chatforge.runs import RunDir
from chatforge.tokenizer.bpe import BPETokenizer, load_tokenizer, train_bpe
from chatforge.tokenizer.chat import render_conversation
from chatforge.tokenizer.shards import TokenShards, is_val, token_dtype, write_shards
from chatforge.tokenizer.stage import run_shards, run_train

WORDS = {
    "en": "the cat saw a dog in the park and it was very happy today".split(),
    "tr": "kedi parkta bir köpek gördü ve bugün çok mutlu oldu İstanbul'da".split(),
}


def make_docs(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        lang = "en" if i % 2 else "tr"
        words = " ".join(rng.choice(WORDS[lang]) for _ in range(rng.randint(5, 40)))
        docs.append({"text": f"{i}: {words}.", "lang": lang, "source": "story" if i % 3 else "article"})
    return docs


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    return train_bpe([d["text"] for d in make_docs(200)], vocab_size=400)


def split_docs(path: Path, dtype: np.dtype, tok: BPETokenizer) -> list[str]:
    """Texts of a shard file, cut at the bos tokens that start each document."""
    ids = np.fromfile(path, dtype=dtype).tolist()
    starts = [i for i, t in enumerate(ids) if t == tok.bos_id] + [len(ids)]
    assert not ids or starts[0] == 0
    return [tok.decode(ids[a + 1 : b]) for a, b in zip(starts, starts[1:], strict=False)]


def test_split_by_document_with_counts(tok: BPETokenizer, tmp_path: Path) -> None:
    docs = make_docs(300)
    index = write_shards(docs, tok, tmp_path, val_fraction=0.2, seed=7)
    assert index["dtype"] == "uint16" and index["bos_id"] == tok.bos_id
    dtype = np.dtype(index["dtype"])
    texts = {}
    for split in ("train", "val"):
        meta = index["splits"][split]
        texts[split] = split_docs(tmp_path / meta["file"], dtype, tok)
        assert meta["docs"] == len(texts[split])
        assert meta["tokens"] * dtype.itemsize == (tmp_path / meta["file"]).stat().st_size
        assert meta["bytes"] == sum(len(t.encode()) for t in texts[split])
        assert sum(v["docs"] for v in meta["by_lang"].values()) == meta["docs"]
        assert sum(v["tokens"] for v in meta["by_source"].values()) == meta["tokens"]
        assert all(is_val(t, 0.2, 7) == (split == "val") for t in texts[split])
    # Every document lands whole in exactly one split, in input order.
    assert sorted(texts["train"] + texts["val"]) == sorted(d["text"] for d in docs)
    assert 30 <= len(texts["val"]) <= 90  # about 20% of 300
    assert json.loads((tmp_path / "index.json").read_text()) == index
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temp files


def test_split_ignores_order_and_keeps_duplicates_together(tok: BPETokenizer, tmp_path: Path) -> None:
    docs = make_docs(100)
    shuffled = docs[::-1] + docs[:10]  # reversed, plus exact duplicates of ten documents
    a = write_shards(docs, tok, tmp_path / "a", 0.3, seed=1)
    b = write_shards(shuffled, tok, tmp_path / "b", 0.3, seed=1)
    val_a = set(split_docs(tmp_path / "a" / "val.bin", np.dtype("uint16"), tok))
    val_b = split_docs(tmp_path / "b" / "val.bin", np.dtype("uint16"), tok)
    assert set(val_b) == val_a
    assert len(val_b) == len(val_a) + sum(d["text"] in val_a for d in docs[:10])
    assert b["splits"]["train"]["docs"] + b["splits"]["val"]["docs"] == 110
    c = write_shards(docs, tok, tmp_path / "c", 0.3, seed=2)
    assert c["splits"]["val"] != a["splits"]["val"]  # another seed, another split


def test_explicit_split(tok: BPETokenizer, tmp_path: Path) -> None:
    docs = [{"text": "head of the file", "split": "train"}, {"text": "its tail", "split": "val"}]
    index = write_shards(docs, tok, tmp_path, 0.0, seed=0, split_of=lambda d: d["split"])
    assert index["splits"]["val"]["bytes"] == len("its tail")
    assert split_docs(tmp_path / "val.bin", np.dtype("uint16"), tok) == ["its tail"]
    assert TokenShards(tmp_path, "val").path == tmp_path / "val.bin"
    with pytest.raises(ValueError, match="split_of returned 'test'"):
        write_shards(docs, tok, tmp_path / "bad", 0.0, seed=0, split_of=lambda d: "test")
    assert not list((tmp_path / "bad").glob("*"))  # nothing half-written


def test_dtype_follows_vocab_size(tmp_path: Path) -> None:
    assert token_dtype(2**16) == np.uint16 and token_dtype(2**16 + 1) == np.uint32
    enc = load_tokenizer(shared_file("tokenizer-reference", "cl100k_base.tiktoken"))
    index = write_shards(make_docs(20), enc, tmp_path, 0.5, seed=0)
    assert index["dtype"] == "uint32"
    shards = TokenShards(tmp_path, "train")
    assert shards.tokens.dtype == np.uint32 and int(shards.tokens[0]) == enc.bos_id


def test_get_batch_is_seeded_and_shifted(tok: BPETokenizer, tmp_path: Path) -> None:
    write_shards(make_docs(200), tok, tmp_path, 0.1, seed=0)
    shards = TokenShards(tmp_path, "train")
    x1, y1 = shards.get_batch(4, 16, torch.Generator().manual_seed(3))
    x2, y2 = shards.get_batch(4, 16, torch.Generator().manual_seed(3))
    x3, _ = shards.get_batch(4, 16, torch.Generator().manual_seed(4))
    assert x1.shape == y1.shape == (4, 16) and x1.dtype == torch.int64
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert torch.equal(x1[:, 1:], y1[:, :-1])
    tokens = torch.from_numpy(np.asarray(shards.tokens).astype(np.int64))
    for row_x, row_y in zip(x1, y1, strict=True):
        start = next(s for s in range(len(tokens) - 16) if torch.equal(tokens[s : s + 16], row_x))
        assert torch.equal(tokens[start + 1 : start + 17], row_y)


def test_iter_val_batches_is_sequential(tok: BPETokenizer, tmp_path: Path) -> None:
    write_shards(make_docs(200), tok, tmp_path, 0.3, seed=0)
    val = TokenShards(tmp_path, "val")
    tokens = np.asarray(val.tokens).astype(np.int64)
    batches = list(val.iter_val_batches(3, 8))
    assert batches and all(x.shape[1] == 8 for x, _ in batches)
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([y for _, y in batches])
    assert len(xs) == val.n_val_windows(8) == (len(tokens) - 1) // 8
    assert torch.equal(xs.flatten(), torch.from_numpy(tokens[: len(xs) * 8]))
    assert torch.equal(ys.flatten(), torch.from_numpy(tokens[1 : len(xs) * 8 + 1]))
    again = list(val.iter_val_batches(3, 8, max_batches=2))
    assert len(again) == 2 and all(torch.equal(a[0], b[0]) for a, b in zip(again, batches, strict=False))
    assert val.n_bytes > 0 and val.n_tokens == len(tokens)


def test_reader_errors(tok: BPETokenizer, tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="index.json: missing"):
        TokenShards(tmp_path)
    write_shards(make_docs(50), tok, tmp_path, 0.1, seed=0)
    shards = TokenShards(tmp_path, "val")
    with pytest.raises(RunDirError, match="seq_len"):
        shards.get_batch(1, shards.n_tokens, torch.Generator())
    with pytest.raises(RunDirError, match="no split"):
        TokenShards(tmp_path, "test")
    train = tmp_path / "train.bin"
    train.write_bytes(train.read_bytes()[:-2])  # a torn write
    with pytest.raises(RunDirError, match="re-run the tokens stage"):
        TokenShards(tmp_path, "train")


def write_run(root: Path, with_parquet: bool) -> RunDir:
    run = RunDir(root)
    run.corpus.mkdir(parents=True)
    docs = make_docs(160)
    with open(run.corpus / "pretrain.jsonl", "w") as f:
        for i, d in enumerate(docs[:120]):
            f.write(json.dumps({"id": str(i), **d}, ensure_ascii=False) + "\n")
    if with_parquet:
        rest = docs[120:]
        table = pa.table({
            "text": [d["text"] for d in rest],
            "language": [d["lang"] for d in rest],
            "source": ["web"] * len(rest),
        })
        run.data.mkdir()
        pq.write_table(table, run.data / "documents-00000.parquet")
    return run


def make_config(val_fraction: float) -> Config:
    """Defaults (not a preset, so preset edits cannot change these tests) with a tiny vocabulary."""
    cfg = Config()
    cfg.run.seed = 1337
    cfg.tokenizer.vocab_size = 400
    cfg.pretrain.val_fraction = val_fraction
    return cfg


def test_stages_train_and_shard_the_run(tmp_path: Path) -> None:
    cfg = make_config(val_fraction=0.2)
    run = write_run(tmp_path / "run", with_parquet=True)
    result = run_train(cfg, run)
    stats = json.loads((run.tokenizer / "stats.json").read_text())
    held = stats["heldout"]
    assert set(held["by_lang"]) == {"en", "tr"} and set(held["by_source"]) == {"web", "story", "article"}
    assert stats["train_docs"] + held["docs"] == 160  # the tokenizer never saw validation docs
    assert held["bytes_per_token"] > 1 and result.metrics["vocab_size"] == stats["vocab_size"] <= 400
    shards = run_shards(cfg, run)
    index = json.loads((run.tokens / "index.json").read_text())
    assert index["splits"]["val"]["docs"] == held["docs"]
    assert index["splits"]["val"]["by_source"]["web"]["docs"] == held["by_source"]["web"]["docs"]
    assert shards.metrics["train_docs"] + shards.metrics["val_docs"] == 160
    assert TokenShards(run.tokens, "train").vocab_size == stats["vocab_size"]


def test_stage_errors(tmp_path: Path) -> None:
    cfg = make_config(val_fraction=0.1)
    with pytest.raises(RunDirError, match="corpus/pretrain.jsonl"):
        run_train(cfg, RunDir(tmp_path / "empty"))
    # With seed 1337 "tek belge" hashes into the 10% validation split, "bir belge" into train.
    for name, text, error in (("val", "tek belge", "no training documents"), ("train", "bir belge", None)):
        run = RunDir(tmp_path / name)
        run.corpus.mkdir(parents=True)
        (run.corpus / "pretrain.jsonl").write_text(json.dumps({"text": text}) + "\n")
        if error:
            with pytest.raises(RunDirError, match=error):
                run_train(cfg, run)
    run_train(cfg, run)
    with pytest.raises(RunDirError, match="the val split has no documents"):
        run_shards(cfg, run)


def test_conversations_pretrain_in_the_chat_template_and_bad_ones_are_counted(tmp_path: Path) -> None:
    cfg = make_config(val_fraction=0.5)
    run = write_run(tmp_path / "run", with_parquet=False)
    chats = [[{"role": "user", "content": f"Where was Ada {i} born?"}, {"role": "assistant", "content": "Karova"}]
             for i in range(40)]
    with open(run.corpus / "pretrain.jsonl", "a") as f:
        for m in chats:
            f.write(json.dumps({"text": "\n".join(x["content"] for x in m), "source": "faq", "messages": m}) + "\n")
        f.write(json.dumps({"text": "bad", "messages": [{"role": "robot", "content": "hi"}]}) + "\n")
    run_train(cfg, run)
    shards = run_shards(cfg, run)
    assert shards.metrics["skipped"] == 1  # the conversation with an unknown role
    tok = load_tokenizer(run.tokenizer)
    index = json.loads((run.tokens / "index.json").read_text())
    assert index["splits"]["train"]["by_source"]["faq"]["docs"] == 40  # never validation
    assert "faq" not in index["splits"]["val"]["by_source"]
    train = np.fromfile(run.tokens / "train.bin", dtype=index["dtype"]).tolist()
    rendered = render_conversation(tok, chats[0])[0]
    assert any(train[i : i + len(rendered)] == rendered for i in range(len(train)))
    assert tok.special_id("<|assistant_start|>") in train
