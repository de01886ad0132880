"""Pre-training: next-token prediction (cross-entropy) on token shards.

Two entry points: `run` is the pipeline stage (run/tokens -> checkpoints/pretrain) and
`pretrain_file` is `chatforge pretrain`: `--text FILE` (tokenizer on the first 90% of the
file, model, bits per byte on the last 10%) or `--data SPEC...` (`pretrain.inputs`, read by
the tokenizer and tokens stages' own functions into the output directory).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from pathlib import Path

import torch
from rich.console import Console

from chatforge.config import Config, TokenizerConfig
from chatforge.device import compute_dtype, pick_device
from chatforge.engine import Engine, SamplingParams
from chatforge.errors import ChatforgeError, InputError
from chatforge.eval.lm import evaluate_bpb
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.runs import RunDir, atomic_write_json, atomic_write_text, files_digest, read_json
from chatforge.stage import StageResult
from chatforge.tokenizer import stage as tokenizer_stage
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer, train_bpe
from chatforge.tokenizer.inputs import resolve
from chatforge.tokenizer.shards import TokenShards, write_shards
from chatforge.train.loop import TrainResult, TrainTask, barrier, identity, init_distributed, train

SAMPLE_PROMPTS = ("", "The", "Bir")


def build_model(cfg: Config, vocab_size: int, device: torch.device) -> GPT:
    torch.manual_seed(cfg.run.seed)
    fp32 = compute_dtype(device, cfg.pretrain.train.precision) == torch.float32
    return GPT(GPTConfig.from_model_config(cfg.model, vocab_size, fp32)).to(device)


def make_task(model: GPT, tok: Tokenizer, train_shards: TokenShards, val_shards: TokenShards,
              cfg: Config, n_samples: int = 3) -> TrainTask:
    t = cfg.pretrain.train
    seq = model.cfg.seq_len

    def train_batch(gen: torch.Generator, step: int, micro: int):
        return train_shards.get_batch(t.batch_size, seq, gen)

    def loss_fn(m, batch):
        x, y = batch
        return m(x, targets=y), {}

    def evaluate(m):
        return evaluate_bpb(m, val_shards, seq, t.batch_size, t.eval_batches)

    def sample(m):
        prompts = [[tok.bos_id] + tok.encode(p) for p in SAMPLE_PROMPTS[:n_samples]]
        params = SamplingParams(max_new_tokens=48, temperature=0.8, top_k=50, seed=cfg.run.seed,
                                stop_ids=(tok.bos_id,))
        completions = Engine(m, tok).generate(prompts, params)
        return [p + c.text for p, c in zip(SAMPLE_PROMPTS, completions, strict=False)]

    return TrainTask(
        model=model, train_batch=train_batch, loss_fn=loss_fn,
        tokens_per_batch=t.batch_size * seq, flops_per_token=model.flops_per_token(),
        evaluate=evaluate, sample=sample,
    )


def _identity(cfg: Config) -> dict:
    """The stage's own settings that decide the weights: seed, model shape, training."""
    return identity(cfg.pretrain.train, seed=cfg.run.seed, model=dataclasses.asdict(cfg.model))


def _upstream(tokens_dir: Path) -> dict:
    return {"tokens": files_digest([tokens_dir / "index.json"])}


def _summary(result: TrainResult, model: GPT) -> dict:
    return {
        "final_loss": result.final_loss,
        "val_loss": result.eval.get("val_loss"),
        "val_bpb": result.eval.get("val_bpb"),
        "steps": result.steps,
        "params": model.num_params(),
        "width": model.cfg.n_embd,
        "tokens": result.tokens,
        "tokens_per_s": result.tokens_per_s,
        "mfu": result.mfu,
        "wall_s": result.wall_s,
    }


def run(cfg: Config, run: RunDir) -> StageResult:
    """Pipeline stage: pre-train on run/tokens, write checkpoints/pretrain and samples."""
    device = pick_device(cfg.run.device)
    tok = load_tokenizer(run.tokenizer)
    train_shards, val_shards = TokenShards(run.tokens, "train"), TokenShards(run.tokens, "val")
    model = build_model(cfg, tok.vocab_size, device)
    task = make_task(model, tok, train_shards, val_shards, cfg)
    result = train(
        task, cfg.pretrain.train, run.checkpoint("pretrain"), run.metrics("pretrain"),
        seed=cfg.run.seed, ident=_identity(cfg), upstream=_upstream(run.tokens), device=device,
        stage="pretrain", restart=run.restart,
    )
    if not init_distributed(device).main:
        return StageResult(device=device.type)  # rank 0 reports and writes
    summary = _summary(result, model)
    atomic_write_text(run.path("samples", "pretrain.txt"), "\n---\n".join(result.samples) + "\n")
    atomic_write_json(run.eval("pretrain"), summary)
    console = Console(stderr=True)
    for s in result.samples:
        console.print(f"  [dim]sample:[/dim] {s!r}")
    return StageResult(
        outputs={"checkpoint": str(run.checkpoint("pretrain"))},
        metrics=summary,
        summary=f"val_bpb {summary['val_bpb']:.3f}, {summary['tokens_per_s']:,.0f} tok/s, "
                f"MFU {summary['mfu']:.0%}, {model.cfg.n_layer} x {model.cfg.n_embd} wide",
        device=device.type,
    )


def split_text_file(path: Path, val_fraction: float) -> tuple[str, str]:
    """Split a UTF-8 file into the first (1 - f) and last f of its bytes, on a char boundary."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: byte {exc.start}: not valid UTF-8 ({exc.reason})") from None
    cut = int(len(data) * (1 - val_fraction))
    while 0 < cut < len(data) and (data[cut] & 0xC0) == 0x80:
        cut += 1  # never split inside a multi-byte character
    head = data[:cut].decode("utf-8")
    return head, text[len(head):]


def pretrain_file(cfg: Config, text_path: Path | None, out: Path, restart: bool = False) -> dict:
    """Tokenizer + pre-training + bits per byte on held-out text: the tail of one text file, or
    (`text_path` None) the hash-split validation documents of `pretrain.inputs`.

    `pretrain.tokenizer`, when set, is used instead of training a tokenizer. Re-running with the
    same `out` and input reuses the tokenizer and shards and resumes training; another input
    (or split, or tokenizer) is refused unless `restart`.
    """
    started = time.time()
    out = Path(out)
    given = cfg.pretrain.tokenizer
    tokenizer_source = files_digest(sorted(Path(given).glob("*"))) if given else dataclasses.asdict(cfg.tokenizer)
    if text_path is not None:
        train_text, val_text = split_text_file(Path(text_path), cfg.pretrain.val_fraction)
        if not val_text.strip():
            raise InputError(f"{text_path}: nothing left for validation at val_fraction={cfg.pretrain.val_fraction}")
        label = f"{text_path}'s"
        source = {"text": files_digest([text_path]), "val_fraction": cfg.pretrain.val_fraction,
                  "tokenizer": tokenizer_source}
    else:
        inputs = resolve(cfg.pretrain)  # on every rank: a bad spec fails everywhere at once
        label = "the inputs'"
        source = {"inputs": cfg.pretrain.inputs, "files": files_digest(inputs.files),
                  "max_chars": cfg.pretrain.max_chars, "val_fraction": cfg.pretrain.val_fraction,
                  "seed": cfg.run.seed, "tokenizer": tokenizer_source}
    device = pick_device(cfg.run.device)
    ddp = init_distributed(device)
    tok_dir, tokens_dir = out / "tokenizer", out / "tokens"
    if ddp.main:
        _claim_output(out, source, label, restart)
        if text_path is not None:
            _prepare_text(cfg, train_text, val_text, out)
        else:
            _prepare_inputs(cfg, RunDir(out))
    barrier(ddp)  # rank 0 prepares the tokenizer and shards first
    tok = load_tokenizer(given if given and text_path is not None else tok_dir)
    train_shards, val_shards = TokenShards(tokens_dir, "train"), TokenShards(tokens_dir, "val")
    model = build_model(cfg, tok.vocab_size, device)
    task = make_task(model, tok, train_shards, val_shards, cfg, n_samples=1)
    result = train(
        task, cfg.pretrain.train, out / "checkpoint", out / "metrics.jsonl", seed=cfg.run.seed,
        ident=_identity(cfg), upstream=_upstream(tokens_dir), device=device, stage="pretrain",
        restart=restart,
    )
    # The whole held-out split, not a sample of it.
    full = evaluate_bpb(model, val_shards, model.cfg.seq_len, cfg.pretrain.train.batch_size, None)
    summary = _summary(result, model)
    summary.update(full)
    summary["wall_s"] = time.time() - started
    summary["train_s"] = result.wall_s
    summary["sample"] = result.samples[0] if result.samples else ""
    summary["resumed_from_step"] = result.resumed_from
    summary["world_size"] = ddp.world
    if ddp.main:
        atomic_write_json(out / "result.json", summary)
    return summary


def _prepare_text(cfg: Config, train_text: str, val_text: str, out: Path) -> None:
    """out/tokenizer (unless pretrain.tokenizer is given) and out/tokens from one file's head and tail."""
    tok_dir, tokens_dir = out / "tokenizer", out / "tokens"
    if cfg.pretrain.tokenizer:
        tok = load_tokenizer(cfg.pretrain.tokenizer)
    elif (tok_dir / "tokenizer.json").exists():
        tok = load_tokenizer(tok_dir)
    else:
        tok = _train_file_tokenizer(train_text, cfg.tokenizer)
        tok.save(tok_dir)
    if not (tokens_dir / "index.json").exists() or not (tokens_dir / "val.bin").exists():
        docs = [{"text": train_text, "split": "train"}, {"text": val_text, "split": "val"}]
        write_shards(docs, tok, tokens_dir, val_fraction=0.0, seed=0, split_of=lambda d: d["split"])


def _prepare_inputs(cfg: Config, out: RunDir) -> None:
    """out/tokenizer and out/tokens from `pretrain.inputs`, by the pipeline's own two stages."""
    console = Console(stderr=True)
    if not (out.tokenizer / "stats.json").exists():  # stats.json is written after the tokenizer
        console.print(f"tokenizer: {tokenizer_stage.run_train(cfg, out).summary}", highlight=False)
    if not (out.tokens / "index.json").exists():  # index.json is written after the shards
        console.print(f"tokens: {tokenizer_stage.run_shards(cfg, out).summary}", highlight=False)


def _claim_output(out: Path, source: dict, label: str, restart: bool) -> None:
    """Make `out` hold a run on `source`: refuse another input's run unless `restart`, which
    drops its tokenizer and shards (the loop then replaces its checkpoint)."""
    record = out / "source.json"
    if record.is_file() and read_json(record) != source:
        old = read_json(record)
        changed = ", ".join(k for k in source if old.get(k) != source[k]) or "input"
        if not restart:
            raise ChatforgeError(
                f"{out}: holds a run on other input ({changed} differ from {label}); "
                "pass --restart to train afresh there, or choose another --out"
            )
        for sub in ("tokenizer", "tokens"):
            shutil.rmtree(out / sub, ignore_errors=True)
    atomic_write_json(record, source)


def _train_file_tokenizer(text: str, tcfg: TokenizerConfig) -> Tokenizer:
    # Paragraph-sized pieces let the trainer parallelise without changing the statistics.
    pieces = [p for p in re.split(r"(?<=\n\n)", text) if p]
    return train_bpe(pieces, vocab_size=tcfg.vocab_size, min_frequency=tcfg.min_frequency)

