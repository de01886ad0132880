"""pretrain.inputs / `chatforge pretrain --data`: every input kind reaches the tokenizer and
tokens stages, token shards are used in place only with the tokenizer that wrote them, and bad
specs or missing files fail in one line before anything trains."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import chatforge_cli

from chatforge.config import Config, load_config
from chatforge.errors import ConfigError, InputError, RunDirError
from chatforge.pipeline import run_pipeline
from chatforge.runs import RunDir
from chatforge.tokenizer.bpe import train_bpe
from chatforge.tokenizer.inputs import InputDocuments, resolve
from chatforge.tokenizer.shards import TokenShards, write_shards
from chatforge.tokenizer.stage import run_shards, run_train

WORDS = "river stone light town bread song market bridge lamp garden window rain".split()
TINY = ["model.depth=1", "model.head_dim=32", "model.seq_len=32", "tokenizer.vocab_size=300",
        "pretrain.train.batch_size=2", "pretrain.train.compile=false", "pretrain.train.eval_batches=1"]


def texts(n: int = 80, salt: int = 0) -> list[str]:
    """`n` distinct small documents; `salt` shifts the word choice (another corpus)."""
    return [" ".join(WORDS[(i * 7 + j * (3 + salt)) % len(WORDS)] for j in range(12 + i % 5)) + f" {i}."
            for i in range(n)]


def config(*inputs: str, **pretrain: object) -> Config:
    cfg = Config()
    cfg.tokenizer.vocab_size = 300
    cfg.pretrain.val_fraction = 0.2
    cfg.pretrain.inputs = list(inputs)
    for key, value in pretrain.items():
        setattr(cfg.pretrain, key, value)
    return cfg


def write_parquet(path: Path, rows: list[str | None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": rows, "language": ["en"] * len(rows)}), path)
    return path


def write_jsonl(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    return path


def shards_of(run: RunDir) -> dict:
    return json.loads((run.tokens / "index.json").read_text())["splits"]


def stage_docs(cfg: Config, root: Path) -> tuple[dict, dict]:
    """The tokenizer and tokens stages on an empty run directory: (their metrics, shard splits)."""
    run = RunDir(root)
    trained = run_train(cfg, run)
    shards = run_shards(cfg, run)
    return {"tokenizer": trained.metrics, "tokens": shards.metrics}, shards_of(run)


@pytest.mark.parametrize("layout", ["file", "directory", "glob", "prefixed"])
def test_parquet_inputs_feed_both_stages_and_skip_empty_rows(tmp_path, layout):
    docs = texts()
    write_parquet(tmp_path / "pq" / "a.parquet", docs[:50] + [None, "  "])
    write_parquet(tmp_path / "pq" / "b.parquet", docs[50:])
    spec = {"file": str(tmp_path / "pq" / "a.parquet"), "directory": str(tmp_path / "pq"),
            "glob": str(tmp_path / "pq" / "*.parquet"), "prefixed": f"parquet:{tmp_path / 'pq'}"}[layout]
    metrics, splits = stage_docs(config(spec), tmp_path / "run")
    n = 50 if layout == "file" else 80
    assert splits["train"]["docs"] + splits["val"]["docs"] == n
    assert splits["train"]["bytes"] + splits["val"]["bytes"] == sum(len(t.encode()) for t in docs[:n])
    assert metrics["tokens"]["skipped"] == 2 and metrics["tokenizer"]["skipped"] == 2  # None, blank
    assert set(splits["train"]["by_lang"]) == {"en"}


def test_jsonl_and_txt_inputs_are_read_in_order_and_bad_lines_counted(tmp_path):
    docs = texts()
    jsonl = write_jsonl(tmp_path / "a.jsonl", docs[:40])
    with jsonl.open("a") as f:
        f.write("{not json\n" + json.dumps({"body": "no text field"}) + "\n")
    txt = tmp_path / "b.txt"
    txt.write_text("\n\n".join(docs[40:]) + "\n")  # paragraphs are documents
    metrics, splits = stage_docs(config(str(jsonl), str(txt)), tmp_path / "run")
    assert splits["train"]["docs"] + splits["val"]["docs"] == 80
    assert metrics["tokens"]["skipped"] == 2
    assert set(splits["train"]["by_source"]) == {"jsonl", "text"}
    stats = json.loads((tmp_path / "run" / "tokenizer" / "stats.json").read_text())
    assert stats["skipped"] == {"bad_json": 1, "missing_field": 1}
    assert stats["train_docs"] == splits["train"]["docs"]  # the tokenizer saw only training text


def test_max_chars_reads_whole_documents_up_to_the_bound(tmp_path):
    docs = texts()
    path = write_jsonl(tmp_path / "a.jsonl", docs)
    bound = sum(len(t) for t in docs[:30])
    read = InputDocuments(resolve(config(str(path), max_chars=bound).pretrain).readers, bound)
    assert [d["text"] for d in read] == docs[:30] and read.chars == bound
    read.max_chars = bound + 1  # past the bound inside document 31: it is read whole, then stop
    assert len(list(read)) == 31
    _, splits = stage_docs(config(str(path), max_chars=bound), tmp_path / "run")
    assert splits["train"]["docs"] + splits["val"]["docs"] == 30


def test_hf_input_reads_a_local_file_with_the_datasets_loaders(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    docs = texts()
    path = write_parquet(tmp_path / "rows.parquet", docs)
    _, splits = stage_docs(config(f"hf:{path}"), tmp_path / "run")
    assert splits["train"]["docs"] + splits["val"]["docs"] == 80
    assert set(splits["val"]["by_source"]) == {"hf"}


def test_a_given_tokenizer_is_used_as_is_and_measured_on_held_out_documents(tmp_path):
    tok_dir = tmp_path / "tok"
    train_bpe(texts(200, salt=1), 300).save(tok_dir)
    path = write_jsonl(tmp_path / "a.jsonl", texts())
    run = RunDir(tmp_path / "run")
    (run.tokenizer).mkdir(parents=True)
    (run.tokenizer / "old.tiktoken").write_text("")  # a stale tokenizer of another kind
    result = run_train(config(str(path), tokenizer=str(tok_dir)), run)
    assert (run.tokenizer / "tokenizer.json").read_text() == (tok_dir / "tokenizer.json").read_text()
    assert not (run.tokenizer / "old.tiktoken").exists()
    stats = json.loads((run.tokenizer / "stats.json").read_text())
    assert stats["tokenizer"] == str(tok_dir) and "train_docs" not in stats
    assert stats["heldout"]["docs"] > 0 and result.metrics["bytes_per_token"] == stats["heldout"]["bytes_per_token"]


def make_shards(tmp_path: Path, salt: int = 0) -> tuple[Path, Path]:
    """A tokenizer directory and shards it wrote, as another run would have left them."""
    tok = train_bpe(texts(200, salt), 300)
    tok_dir, shard_dir = tmp_path / f"tok{salt}", tmp_path / f"shards{salt}"
    tok.save(tok_dir)
    write_shards(({"text": t} for t in texts(200, salt)), tok, shard_dir, val_fraction=0.2, seed=3)
    return tok_dir, shard_dir


def test_token_shards_are_used_in_place_with_their_tokenizer(tmp_path):
    tok_dir, shard_dir = make_shards(tmp_path)
    cfg = config(str(shard_dir), tokenizer=str(tok_dir))
    run = RunDir(tmp_path / "run")
    run_train(cfg, run)
    result = run_shards(cfg, run)
    assert (run.tokenizer / "tokenizer.json").read_text() == (tok_dir / "tokenizer.json").read_text()
    assert not (run.tokens / "train.bin").exists()  # no copy: the index points at the files
    own, theirs = TokenShards(run.tokens, "train"), TokenShards(shard_dir, "train")
    assert own.path == (shard_dir / "train.bin").resolve() and (own.tokens == theirs.tokens).all()
    assert result.metrics["val_docs"] == json.loads((shard_dir / "index.json").read_text())["splits"]["val"]["docs"]


def test_shards_of_another_tokenizer_are_refused(tmp_path):
    _, shard_dir = make_shards(tmp_path, salt=0)
    other_dir, _ = make_shards(tmp_path, salt=1)  # same vocabulary size, other merges
    small = tmp_path / "small"
    train_bpe(texts(200), 290).save(small)
    for tok, message in ((small, "shards of a 300-token vocabulary .* has 290 tokens"),
                         (other_dir, "does not re-encode to the same ids .* another tokenizer")):
        cfg = config(str(shard_dir), tokenizer=str(tok))
        run = RunDir(tmp_path / f"run-{tok.name}")
        run_train(cfg, run)
        with pytest.raises(RunDirError, match=message):
            run_shards(cfg, run)


@pytest.mark.parametrize(("inputs", "extra", "error", "message"), [
    (["warc:crawl.warc.gz"], [], ConfigError, "clean them with `chatforge data`"),
    (["data/corpus.csv"], [], InputError, "no such file or directory"),
    (["{tmp}/notes.csv"], [], ConfigError, "its name tells no format"),
    (["hf:HuggingFaceFW/fineweb-edu"], [], ConfigError, "set pretrain.max_chars"),
    (["{tmp}/shards"], [], ConfigError, "need pretrain.tokenizer"),
    (["{tmp}/shards", "{tmp}/a.jsonl"], ["pretrain.tokenizer={tmp}"], ConfigError, "must be the only input"),
    (["{tmp}/missing/*.parquet"], [], InputError, "no file or directory matches"),
    (["{tmp}/a.jsonl"], ["pretrain.tokenizer={tmp}/no-tok"], InputError, "no such tokenizer"),
])
def test_bad_specs_are_refused_in_one_line(tmp_path, inputs, extra, error, message):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "index.json").write_text("{}")
    (tmp_path / "notes.csv").write_text("text\nhello\n")
    write_jsonl(tmp_path / "a.jsonl", texts(3))
    items = [i.format(tmp=tmp_path) for i in inputs]
    cfg = load_config("smoke", ["pretrain.inputs=" + ",".join(items), *(e.format(tmp=tmp_path) for e in extra)])
    with pytest.raises(error, match=message) as caught:
        resolve(cfg.pretrain)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("preset", ["d12", "d20"])
def test_the_gpu_presets_name_a_hub_corpus_read_for_their_token_budget(preset):
    p = load_config(preset).pretrain
    assert p.inputs == ["hf:karpathy/fineweb-edu-100b-shuffle"] and p.max_chars > 0
    assert resolve(p).readers == p.inputs  # valid offline: nothing is opened before the stages
    budget = p.train.max_steps * p.train.batch_size * p.train.grad_accum * load_config(preset).model.seq_len
    assert 4 <= p.max_chars * (1 - p.val_fraction) / budget <= 6  # characters per token, about 4.8


def test_an_hf_input_without_the_datasets_package_fails_before_any_stage(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    cfg = load_config("d12")
    with pytest.raises(InputError, match=r"needs the 'datasets' package: pip install 'chatforge\[hf\]'"):
        resolve(cfg.pretrain)


def test_max_chars_must_not_be_negative():
    with pytest.raises(ConfigError, match="pretrain.max_chars=-1: must be at least 0"):
        load_config("smoke", ["pretrain.max_chars=-1"])


def test_editing_an_input_file_reruns_the_tokenizer_and_tokens_stages(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", texts())
    cfg = load_config("smoke", [f"pretrain.inputs={path}", *TINY, "pretrain.val_fraction=0.2"])
    run = RunDir(tmp_path / "run")
    first = run_pipeline(cfg, run, only=["tokenizer", "tokens"])
    assert first["tokens"]["metrics"]["train_docs"] + first["tokens"]["metrics"]["val_docs"] == 80
    again = run_pipeline(cfg, run, only=["tokenizer", "tokens"])
    assert again["tokens"]["started"] == first["tokens"]["started"]  # up to date, skipped
    write_jsonl(path, texts(60))
    edited = run_pipeline(cfg, run, only=["tokenizer", "tokens"])
    assert edited["tokens"]["metrics"]["train_docs"] + edited["tokens"]["metrics"]["val_docs"] == 60


def test_pretrain_cli_trains_on_data_specs_and_token_shards(tmp_path):
    path = write_parquet(tmp_path / "a.parquet", texts(200))
    done = chatforge_cli("pretrain", "--data", str(path), "--out", str(tmp_path / "out"),
                         "--max-steps", "2", "--preset", "smoke", *TINY, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["steps"] == 2 and result["val_bpb"] > 0
    out = tmp_path / "out"
    assert json.loads((out / "source.json").read_text())["inputs"] == [str(path)]
    # The shards just written, used in place by a second run with their tokenizer.
    done = chatforge_cli("pretrain", "--data", str(out / "tokens"), "--tokenizer", str(out / "tokenizer"),
                         "--out", str(tmp_path / "again"), "--max-steps", "2", "--preset", "smoke", *TINY,
                         timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["val_bpb"] == pytest.approx(result["val_bpb"])


@pytest.mark.parametrize("args", [
    ["--data", "{tmp}/missing.parquet"],
    ["--text", "{tmp}/t.txt", "--data", "{tmp}/t.txt"],
    [],
])
def test_pretrain_cli_input_errors_are_one_line(tmp_path, args):
    (tmp_path / "t.txt").write_text("some text\n")
    done = chatforge_cli("pretrain", *[a.format(tmp=tmp_path) for a in args], "--out", str(tmp_path / "out"),
                         timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert ("missing.parquet" if args and args[0] == "--data" else "exactly one of") in done.stderr
    assert not (tmp_path / "out").exists()


def test_run_with_a_missing_input_fails_before_any_stage(tmp_path):
    done = chatforge_cli("run", "--preset", "smoke", "--run-dir", str(tmp_path / "run"),
                         f"pretrain.inputs={tmp_path / 'gone.jsonl'}", timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "gone.jsonl" in done.stderr and not (tmp_path / "run" / "corpus").exists()
