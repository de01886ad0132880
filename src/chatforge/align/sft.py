"""Supervised fine-tuning: teach the pre-trained model the chat format on conversations.

Each conversation is rendered with the one chat template; the loss covers only assistant
tokens (targets are -100 elsewhere), so the model learns to answer, not to imitate users.
By default each row holds one conversation, padded to the longest row of its batch, so a
conversation is trained exactly as it is served (alone, from position 0). `sft.pack=true`
packs conversations into full rows with best-fit decreasing (as TRL does): fewer padding
tokens, but the model has no block-diagonal attention mask, so a packed conversation can
attend to the one before it, and with a fixed packing the model can learn its row
neighbours instead of the answers (seen on small data: train loss 0, held-out loss high).

The stage trains with the shared loop, reports validation loss on held-out conversations,
and scores held-out built-in fact questions by exact match for the base and the SFT model.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from rich.console import Console
from torch import Tensor

from chatforge.align.conversations import Messages, read_conversations
from chatforge.answer_memo import remembered
from chatforge.config import Config, TrainConfig
from chatforge.device import pick_device
from chatforge.engine import Engine, SamplingParams
from chatforge.errors import InputError
from chatforge.eval.chat_eval import read_chat_items, score_chat
from chatforge.eval.facts import read_fact_questions, score_facts
from chatforge.eval.lm import masked_loss
from chatforge.model.checkpoint import load_model, resolve_checkpoint
from chatforge.model.gpt import GPT
from chatforge.model.loss import IGNORE_INDEX
from chatforge.runs import RunDir, atomic_write_json, files_digest
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import render_conversation, render_prompt
from chatforge.tokenizer.shards import TokenShards
from chatforge.train.loop import TrainTask, identity, init_distributed, train


def encode_conversations(
    tok: Tokenizer, conversations: Sequence[Messages], max_tokens: int
) -> list[tuple[list[int], list[bool]]]:
    """Rendered (ids, loss mask) pairs cut to `max_tokens`; drops those left with no target."""
    out = []
    for msgs in conversations:
        ids, mask = render_conversation(tok, msgs)
        ids, mask = ids[:max_tokens], mask[:max_tokens]
        if any(mask[1:]):  # position 0 is never a target
            out.append((ids, mask))
    return out


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Bins of item indices, each bin's lengths summing to at most `capacity`."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, bin index), sorted
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"item {i} has {n} tokens, more than the row capacity {capacity}")
        j = bisect.bisect_left(free, (n, -1))
        if j < len(free):
            space, b = free.pop(j)
        else:
            space, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if space - n > 0:
            bisect.insort(free, (space - n, b))
    return bins


def build_rows(
    examples: Sequence[tuple[list[int], list[bool]]], row_tokens: int, pad_id: int, pack: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """(inputs, targets, lengths): rows of `row_tokens - 1` inputs; targets -100 off the mask."""
    groups = (
        best_fit_decreasing([len(ids) for ids, _ in examples], row_tokens)
        if pack else [[i] for i in range(len(examples))]
    )
    n = len(groups)
    tokens = torch.full((n, row_tokens), pad_id, dtype=torch.long)
    mask = torch.zeros(n, row_tokens, dtype=torch.bool)
    lengths = torch.zeros(n, dtype=torch.long)
    for r, group in enumerate(groups):
        pos = 0
        for i in group:
            ids, m = examples[i]
            tokens[r, pos : pos + len(ids)] = torch.tensor(ids)
            mask[r, pos : pos + len(ids)] = torch.tensor(m)
            pos += len(ids)
        lengths[r] = pos
    targets = tokens[:, 1:].masked_fill(~mask[:, 1:], IGNORE_INDEX)
    return tokens[:, :-1].contiguous(), targets.contiguous(), lengths - 1


class SFTData:
    """Training rows and a sampler whose batches depend only on (seed, batch number).

    Each epoch visits every row once: rows are shuffled, sorted by length within windows of
    `LENGTH_WINDOW` batches (so a batch holds rows of similar length and trims little
    padding), cut into batches, and the batches shuffled. Being a pure function of the batch
    number, the order resumes exactly from a checkpoint.
    """

    LENGTH_WINDOW = 64

    def __init__(
        self, tok: Tokenizer, conversations: Sequence[Messages], seq_len: int, pack: bool, seed: int
    ):
        examples = encode_conversations(tok, conversations, seq_len + 1)
        if not examples:
            raise InputError("no SFT conversation has an assistant token within the context length")
        self.x, self.y, self.lengths = build_rows(examples, seq_len + 1, tok.pad_id, pack)
        self.n_conversations = len(examples)
        self.seed = seed
        self._epoch: tuple[int, int, list[list[int]]] | None = None

    def __len__(self) -> int:
        return self.x.size(0)

    def batches_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def epoch_batches(self, epoch: int, batch_size: int) -> list[list[int]]:
        """Row indices of every batch of one epoch, in training order."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self), generator=gen).tolist()
        lengths = self.lengths.tolist()
        window = batch_size * self.LENGTH_WINDOW
        batches = []
        for i in range(0, len(perm), window):
            chunk = sorted(perm[i : i + window], key=lambda r: lengths[r])
            batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
        order = torch.randperm(len(batches), generator=gen).tolist()
        return [batches[o] for o in order]

    def batch_rows(self, k: int, batch_size: int) -> list[int]:
        """Rows of global batch number `k`."""
        epoch, i = divmod(k, self.batches_per_epoch(batch_size))
        if self._epoch is None or self._epoch[:2] != (epoch, batch_size):
            self._epoch = (epoch, batch_size, self.epoch_batches(epoch, batch_size))
        return self._epoch[2][i]

    def length_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Every row once, in batches of similar length (for evaluation)."""
        order = sorted(range(len(self)), key=lambda r: int(self.lengths[r]))
        for i in range(0, len(order), batch_size):
            yield self.batch(order[i : i + batch_size])

    def batch(self, rows: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Rows trimmed to their longest real length (padding-only columns dropped)."""
        index = torch.tensor(rows)
        width = int(self.lengths[index].max())
        return self.x[index, :width], self.y[index, :width]


# ---- the stage ----


def _read_all(paths: Sequence[Path], console: Console) -> list[Messages]:
    convs: list[Messages] = []
    for p in paths:
        c, stats = read_conversations(p)
        convs += c
        if stats.skipped or p.parent.name != "corpus":
            console.print(f"  [dim]{stats.summary()}[/dim]")
    return convs


def make_task(
    model: GPT, tok: Tokenizer, data: SFTData, heldout: SFTData, t: TrainConfig,
    sample_prompts: Sequence[str], mix_pretrain: float = 0.0,
    pretrain_shards: TokenShards | None = None,
) -> TrainTask:
    """The SFT TrainTask: epoch-ordered rows (plus optional pre-training rows), masked loss.

    Micro-batch `micro` of step `step` is global batch number step * grad_accum + micro of the
    epoch order, whichever rank draws it: each conversation is trained once per epoch at any
    world size.
    """
    n_pre = round(mix_pretrain * t.batch_size) if pretrain_shards is not None else 0
    n_sft = t.batch_size - n_pre

    def train_batch(gen: torch.Generator, step: int, micro: int) -> tuple[Tensor, Tensor]:
        x, y = data.batch(data.batch_rows(step * t.grad_accum + micro, n_sft))
        if n_pre:
            px, py = pretrain_shards.get_batch(n_pre, x.size(1), gen)
            x, y = torch.cat([x, px]), torch.cat([y, py])
        return x, y

    def loss_fn(m, batch):
        x, y = batch
        return m(x, targets=y), {}

    def evaluate(m) -> dict[str, float]:
        return {"val_loss": masked_loss(m, heldout.length_batches(t.batch_size))}

    def sample(m) -> list[str]:
        engine = Engine(m, tok)
        prompts = [render_prompt(tok, [{"role": "user", "content": q}]) for q in sample_prompts]
        replies = engine.generate_text(prompts, SamplingParams(max_new_tokens=64))
        return [f"{q} -> {r}" for q, r in zip(sample_prompts, replies, strict=True)]

    return TrainTask(
        model=model, train_batch=train_batch, loss_fn=loss_fn,
        tokens_per_batch=round(n_sft * float(data.lengths.float().mean())) + n_pre * model.cfg.seq_len,
        flops_per_token=model.flops_per_token(),
        evaluate=evaluate, sample=sample, save_extra={"stage": "sft"},
    )


def run(cfg: Config, run: RunDir, console: Console | None = None) -> StageResult:
    """Pipeline stage: checkpoints/pretrain -> checkpoints/sft, and eval/sft.json."""
    console = console or Console(stderr=True)
    device = pick_device(cfg.run.device)
    base_dir = run.checkpoint("pretrain")
    tok = load_tokenizer(run.tokenizer)
    # The corpus's conversations, its safety set when it has one (refusals of harmful requests
    # and help with their benign look-alikes), then the user's files.
    safety = run.corpus / "eval" / "safety_sft_train.jsonl"
    corpus_files = [run.corpus / "sft_train.jsonl"] + ([safety] if safety.is_file() else [])
    user_files = [Path(p) for p in cfg.sft.data]
    train_files = corpus_files + user_files
    heldout_file = run.corpus / "sft_heldout.jsonl"
    for p in [*train_files, heldout_file]:
        if not p.is_file():
            raise InputError(f"{p}: no such conversation file")
    base = load_model(base_dir, device).eval()
    seq = base.cfg.seq_len
    data = SFTData(tok, _read_all(train_files, console), seq, cfg.sft.pack, cfg.run.seed)
    held = SFTData(tok, read_conversations(heldout_file)[0][: cfg.sft.val_conversations], seq, False, 0)
    questions = read_fact_questions(run.corpus / "facts_heldout.jsonl")
    tcfg = cfg.sft.train
    main = init_distributed(device).main  # under torchrun, rank 0 alone scores and writes
    if main:
        with remembered(run.answers):
            base_scores = score_facts(base, tok, questions, "chat")
            base_scores["exact_match_qa_prompt"] = score_facts(base, tok, questions, "qa")["exact_match"]
        base_scores["val_loss"] = masked_loss(base, held.length_batches(tcfg.batch_size))
        console.print(
            f"  base model: held-out facts exact match {base_scores['exact_match']:.1%} "
            f"(QA prompt {base_scores['exact_match_qa_prompt']:.1%}), SFT val loss {base_scores['val_loss']:.3f}"
        )

    if tcfg.epochs > 0:
        n_sft = tcfg.batch_size - round(cfg.sft.mix_pretrain * tcfg.batch_size)
        steps = math.ceil(tcfg.epochs * data.batches_per_epoch(n_sft) / tcfg.grad_accum)
        tcfg = dataclasses.replace(tcfg, max_steps=max(1, steps))
    pretrain_shards = TokenShards(run.tokens, "train") if cfg.sft.mix_pretrain > 0 else None
    model = base  # trained in place; the base figures are already taken
    model.train()
    samples = [q["question"] for q in questions[:3]]
    task = make_task(model, tok, data, held, tcfg, samples, cfg.sft.mix_pretrain, pretrain_shards)
    ident = identity(tcfg, seed=cfg.run.seed, mix_pretrain=cfg.sft.mix_pretrain, pack=cfg.sft.pack,
                     data=files_digest(user_files))
    upstream = {"corpus": files_digest(corpus_files),
                "base": files_digest([resolve_checkpoint(base_dir) / "model.safetensors"])}
    result = train(task, tcfg, run.checkpoint("sft"), run.metrics("sft"), seed=cfg.run.seed, ident=ident,
                   upstream=upstream, device=device, console=console, stage="sft", restart=run.restart)
    if not main:
        return StageResult(device=device.type)
    model.eval()
    with remembered(run.answers):
        sft_scores = score_facts(model, tok, questions, "chat")
    sft_scores["val_loss"] = masked_loss(model, held.length_batches(tcfg.batch_size))
    chat_file = run.corpus / "eval" / "chat_heldout.jsonl"
    if chat_file.is_file():  # corpora written before the chat evaluation existed lack it
        sft_scores["chat"] = score_chat(model, tok, read_chat_items(chat_file))
        console.print("  chat eval: " + ", ".join(
            f"{k} {v:.0%}" for k, v in sft_scores["chat"]["scores"].items()))
    sft_scores.update(steps=result.steps, final_loss=result.final_loss, tokens_per_s=result.tokens_per_s,
                      train_rows=len(data), train_conversations=data.n_conversations)
    atomic_write_json(run.eval("sft"), {"base": base_scores, "sft": sft_scores, "samples": result.samples})
    for s in result.samples:
        console.print(f"  [dim]sample:[/dim] {s!r}")
    metrics = {
        "base_exact_match": base_scores["exact_match"],
        "base_exact_match_qa_prompt": base_scores["exact_match_qa_prompt"],
        "sft_exact_match": sft_scores["exact_match"],
        **{f"chat_{k}": v for k, v in sft_scores.get("chat", {}).get("scores", {}).items()},
        "base_val_loss": base_scores["val_loss"],
        "val_loss": sft_scores["val_loss"],
        "steps": result.steps,
        "tokens_per_s": result.tokens_per_s,
        "wall_s": result.wall_s,
    }
    return StageResult(
        outputs={"checkpoint": str(run.checkpoint("sft")), "eval": str(run.eval("sft"))},
        metrics=metrics,
        summary=(
            f"held-out facts exact match: base {base_scores['exact_match']:.1%} "
            f"(QA prompt {base_scores['exact_match_qa_prompt']:.1%}) -> SFT {sft_scores['exact_match']:.1%} "
            f"of {sft_scores['n']}; val loss {base_scores['val_loss']:.3f} -> {sft_scores['val_loss']:.3f}"
        ),
        device=device.type,
    )

