"""Pre-training: next-token prediction (cross-entropy) on token shards.

Two entry points: `run` is the pipeline stage (built-in corpus -> checkpoints/pretrain) and
`pretrain_file` is the one-file path of `chatforge pretrain --text FILE` (tokenizer on the
first 90% of the file, model, bits per byte on the last 10%).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from pathlib import Path

import torch
import torch.distributed as dist
from rich.console import Console

from chatforge.config import Config, TokenizerConfig
from chatforge.device import pick_device
from chatforge.engine import Engine, SamplingParams
from chatforge.errors import InputError, RunDirError
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.pipeline import StageResult
from chatforge.runs import RunDir, atomic_write_json, atomic_write_text
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer, train_bpe
from chatforge.tokenizer.shards import TokenShards, write_shards
from chatforge.train.loop import TrainResult, TrainTask, init_distributed, train

SAMPLE_PROMPTS = ("", "The", "Bir")


def build_model(cfg: Config, vocab_size: int, device: torch.device) -> GPT:
    torch.manual_seed(cfg.run.seed)
    return GPT(GPTConfig.from_model_config(cfg.model, vocab_size)).to(device)


@torch.no_grad()
def evaluate_bpb(
    model: GPT, shards: TokenShards, seq_len: int, batch_size: int, max_batches: int | None
) -> dict[str, float]:
    """Mean validation loss (nats/token) and bits per byte over sequential windows.

    Bits per byte divides by the bytes the tokens stand for, so models with different
    tokenizers (or none, like char-level nanoGPT) compare fairly.
    """
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for x, y in shards.iter_val_batches(batch_size, seq_len, max_batches):
        loss = model(x.to(device), targets=y.to(device))
        total += loss.item() * y.numel()
        count += y.numel()
    if count == 0:
        raise RunDirError(f"{shards.path}: validation split is shorter than one window of {seq_len + 1} tokens")
    loss = total / count
    return {"val_loss": loss, "val_bpb": loss / math.log(2) * shards.n_tokens / shards.n_bytes}


def make_task(model: GPT, tok: Tokenizer, train_shards: TokenShards, val_shards: TokenShards,
              cfg: Config, n_samples: int = 3) -> TrainTask:
    t = cfg.pretrain
    seq = model.cfg.seq_len

    def train_batch(gen: torch.Generator, step: int):
        return train_shards.get_batch(t.batch_size, seq, gen)

    def loss_fn(m, batch):
        x, y = batch
        return m(x, targets=y)

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


def _train_key(cfg: Config, tokens_dir: Path) -> str:
    index = (tokens_dir / "index.json").read_bytes()
    blob = cfg.section_hash("run.seed", "model", "pretrain") + hashlib.sha256(index).hexdigest()
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _summary(result: TrainResult, model: GPT) -> dict:
    return {
        "final_loss": result.final_loss,
        "val_loss": result.eval.get("val_loss"),
        "val_bpb": result.eval.get("val_bpb"),
        "steps": result.steps,
        "params": model.num_params(),
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
        task, cfg.pretrain, run.checkpoint("pretrain"), run.metrics("pretrain"),
        seed=cfg.run.seed, key=_train_key(cfg, run.tokens), device=device, stage="pretrain",
    )
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
                f"MFU {summary['mfu']:.0%}",
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


def pretrain_file(cfg: Config, text_path: Path, out: Path, tokenizer_dir: Path | None = None) -> dict:
    """Tokenizer + pre-training + bits per byte on the held-out tail of one text file.

    Re-running with the same `out` reuses the tokenizer and shards and resumes training.
    """
    started = time.time()
    out = Path(out)
    train_text, val_text = split_text_file(Path(text_path), cfg.pretrain.val_fraction)
    if not val_text.strip():
        raise InputError(f"{text_path}: nothing left for validation at val_fraction={cfg.pretrain.val_fraction}")
    device = pick_device(cfg.run.device)
    ddp = init_distributed(device)
    tok_dir = out / "tokenizer"
    if ddp.world > 1 and not ddp.main:
        dist.barrier()  # rank 0 prepares the tokenizer and shards first
    if tokenizer_dir is not None:
        tok = load_tokenizer(tokenizer_dir)
    elif (tok_dir / "tokenizer.json").exists():
        tok = load_tokenizer(tok_dir)
    else:
        tok = _train_file_tokenizer(train_text, cfg.tokenizer)
        tok.save(tok_dir)
    tokens_dir = out / "tokens"
    if not (tokens_dir / "index.json").exists() or not (tokens_dir / "val.bin").exists():
        docs = [{"text": train_text, "split": "train"}, {"text": val_text, "split": "val"}]
        write_shards(docs, tok, tokens_dir, val_fraction=0.0, seed=0, split_of=lambda d: d["split"])
    if ddp.world > 1 and ddp.main:
        dist.barrier()
    train_shards, val_shards = TokenShards(tokens_dir, "train"), TokenShards(tokens_dir, "val")
    model = build_model(cfg, tok.vocab_size, device)
    task = make_task(model, tok, train_shards, val_shards, cfg, n_samples=1)
    result = train(
        task, cfg.pretrain, out / "checkpoint", out / "metrics.jsonl", seed=cfg.run.seed,
        key=_train_key(cfg, tokens_dir), device=device, stage="pretrain",
    )
    # The whole held-out tail, not a sample of it.
    full = evaluate_bpb(model, val_shards, model.cfg.seq_len, cfg.pretrain.batch_size, None)
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


def _train_file_tokenizer(text: str, tcfg: TokenizerConfig) -> Tokenizer:
    # Paragraph-sized pieces let the trainer parallelise without changing the statistics.
    pieces = [p for p in re.split(r"(?<=\n\n)", text) if p]
    return train_bpe(pieces, vocab_size=tcfg.vocab_size, min_frequency=tcfg.min_frequency)

