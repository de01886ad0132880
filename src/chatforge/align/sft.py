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
import hashlib
import json
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from torch import Tensor

from chatforge.align.conversations import Messages, read_conversations
from chatforge.config import Config, TrainConfig
from chatforge.device import pick_device
from chatforge.engine import Engine, SamplingParams
from chatforge.errors import ConfigError, InputError, RunDirError
from chatforge.model.checkpoint import load_model
from chatforge.model.gpt import GPT
from chatforge.pipeline import StageResult
from chatforge.runs import RunDir, atomic_write_json, read_json
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import render_conversation, render_prompt
from chatforge.train.loop import TrainTask, train

IGNORE = -100


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
    targets = tokens[:, 1:].masked_fill(~mask[:, 1:], IGNORE)
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
        self.n_targets = int((self.y != IGNORE).sum())
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

    def batch(self, rows: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Rows trimmed to their longest real length (padding-only columns dropped)."""
        index = torch.tensor(rows)
        width = int(self.lengths[index].max())
        return self.x[index, :width], self.y[index, :width]


@torch.no_grad()
def masked_loss(model: GPT, data: SFTData, batch_size: int) -> float:
    """Mean cross-entropy over all target tokens of `data` (batches of similar length)."""
    device = next(model.parameters()).device
    order = sorted(range(len(data)), key=lambda r: int(data.lengths[r]))
    total, count = 0.0, 0
    for i in range(0, len(order), batch_size):
        x, y = data.batch(order[i : i + batch_size])
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total += F.cross_entropy(
            logits.view(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE, reduction="sum"
        ).item()
        count += int((y != IGNORE).sum())
    return total / max(count, 1)


# ---- exact match on held-out fact questions ----

_TRAILING = ".!?。,;:…'\"”’)"


def normalise_answer(text: str) -> str:
    """Case-, whitespace- and trailing-punctuation-insensitive form (Turkish dotted I kept)."""
    # Dotless and dotted i compare as one letter, so Turkish and English casing agree.
    text = unicodedata.normalize("NFC", text).lower().replace("\u0307", "").replace("ı", "i")
    text = " ".join(text.split())
    return text.strip().strip(_TRAILING + "“‘(").strip()


MAX_ANSWER_WORDS = 24


def answer_matches(reply: str, answer: str, ended: bool) -> bool:
    """Whether a reply gives `answer`.

    Accepted: the normalised reply equals the answer, or a reply that ended its own turn
    (stop token or stop string) within MAX_ANSWER_WORDS words and contains the answer as
    whole words ("The capital of Varnholm is Kestrel." for "Kestrel"). A reply that runs
    on to the token limit never counts unless it is exactly the answer, so a rambling model
    that happens to mention the answer scores nothing.
    """
    r, a = normalise_answer(reply), normalise_answer(answer)
    if not a:
        return False
    if r == a:
        return True
    if not ended or len(r.split()) > MAX_ANSWER_WORDS:
        return False
    return re.search(rf"(?<!\w){re.escape(a)}(?!\w)", r) is not None


def read_fact_questions(path: Path) -> list[dict]:
    """Held-out fact questions {"question", "answer", "lang", "fact_id"} from JSONL."""
    if not path.is_file():
        raise RunDirError(f"{path}: missing (run the corpus stage first)")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: record {i}: invalid JSON ({exc.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str) or not isinstance(rec.get("answer"), str):
            raise InputError(f"{path}: record {i}: needs string 'question' and 'answer'")
        out.append(rec)
    return out


def score_facts(
    model: GPT, tok: Tokenizer, questions: Sequence[dict], prompt_style: str = "chat",
    max_new_tokens: int = 48, batch_size: int = 32,
) -> dict:
    """Greedy answers to fact questions and their exact-match rate, overall and per language.

    `chat` asks in the chat template; `qa` gives a base model its natural completion format
    ("Question: ...\\nAnswer:", stopping at the end of the line) so it is not judged only on a
    format it never saw.
    """
    engine = Engine(model, tok)
    if prompt_style == "chat":
        prompts = [render_prompt(tok, [{"role": "user", "content": q["question"]}]) for q in questions]
        params = SamplingParams(max_new_tokens=max_new_tokens)
    elif prompt_style == "qa":
        prompts = [[tok.bos_id] + tok.encode(f"Question: {q['question']}\nAnswer:") for q in questions]
        params = SamplingParams(max_new_tokens=max_new_tokens, stop=("\n",))
    else:
        raise ValueError(f"unknown prompt style {prompt_style!r}")
    ctx = model.cfg.seq_len
    prompts = [p[-(ctx - 1):] for p in prompts]
    hits: list[bool] = []
    examples = []
    for i in range(0, len(prompts), batch_size):
        for q, c in zip(questions[i : i + batch_size], engine.generate(prompts[i : i + batch_size], params), strict=True):
            ok = answer_matches(c.text, q["answer"], ended=c.finish_reason == "stop")
            hits.append(ok)
            if len(examples) < 5:
                examples.append({"question": q["question"], "answer": q["answer"], "reply": c.text, "correct": ok})
    by_lang: dict[str, list[bool]] = defaultdict(list)
    by_seen: dict[str, list[bool]] = defaultdict(list)
    for q, ok in zip(questions, hits, strict=True):
        by_lang[q.get("lang", "?")].append(ok)
        if "seen_in_sft" in q:  # the fact (not this question) appears in the SFT data
            by_seen["seen_in_sft" if q["seen_in_sft"] else "unseen_in_sft"].append(ok)
    return {
        "exact_match": sum(hits) / max(len(hits), 1),
        "n": len(hits),
        "by_lang": {k: sum(v) / len(v) for k, v in sorted(by_lang.items())},
        "by_fact_in_sft": {k: sum(v) / len(v) for k, v in sorted(by_seen.items())},
        "prompt": prompt_style,
        "examples": examples,
    }


# ---- the stage ----


def _file_digest(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p).encode())
        h.update(p.read_bytes() if p.is_file() else b"")
    return h.hexdigest()


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
    sample_prompts: Sequence[str], mix_pretrain: float = 0.0, pretrain_shards=None,
) -> TrainTask:
    """The SFT TrainTask: epoch-ordered rows (plus optional pre-training rows), masked loss."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    local_accum = max(1, t.grad_accum // world)
    n_pre = round(mix_pretrain * t.batch_size) if pretrain_shards is not None else 0
    n_sft = t.batch_size - n_pre
    calls = {"step": -1, "micro": 0}

    def train_batch(gen: torch.Generator, step: int) -> tuple[Tensor, Tensor]:
        # The loop calls this `local_accum` times per step; count micro-batches within a step
        # so positions depend only on (step, rank, micro) and resume exactly.
        if step != calls["step"]:
            calls.update(step=step, micro=0)
        k = step * t.grad_accum + rank * local_accum + calls["micro"]
        calls["micro"] += 1
        x, y = data.batch(data.batch_rows(k, n_sft))
        if n_pre:
            px, py = pretrain_shards.get_batch(n_pre, x.size(1), gen)
            x, y = torch.cat([x, px]), torch.cat([y, py])
        return x, y

    def loss_fn(m, batch):
        x, y = batch
        return m(x, targets=y)

    def evaluate(m) -> dict[str, float]:
        return {"val_loss": masked_loss(m, heldout, t.batch_size)}

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
    if not 0 <= cfg.sft.mix_pretrain < 1:
        raise ConfigError(f"sft.mix_pretrain={cfg.sft.mix_pretrain}: must be in [0, 1)")
    device = pick_device(cfg.run.device)
    base_dir = run.checkpoint("pretrain")
    if not (base_dir / "model.safetensors").exists():
        raise RunDirError(f"{base_dir}: no pre-trained model (run the pretrain stage first)")
    tok = load_tokenizer(run.tokenizer)
    train_files = [run.corpus / "sft_train.jsonl"] + [Path(p) for p in cfg.sft.data]
    heldout_file = run.corpus / "sft_heldout.jsonl"
    for p in [*train_files, heldout_file]:
        if not p.is_file():
            raise InputError(f"{p}: no such conversation file")
    seq = read_json(base_dir / "model.json")["config"]["seq_len"]
    data = SFTData(tok, _read_all(train_files, console), seq, cfg.sft.pack, cfg.run.seed)
    held = SFTData(tok, read_conversations(heldout_file)[0][: cfg.sft.val_conversations], seq, False, 0)
    questions = read_fact_questions(run.corpus / "facts_heldout.jsonl")

    base = load_model(base_dir, device).eval()
    base_scores = score_facts(base, tok, questions, "chat")
    base_scores["exact_match_qa_prompt"] = score_facts(base, tok, questions, "qa")["exact_match"]
    base_scores["val_loss"] = masked_loss(base, held, cfg.sft.train.batch_size)
    console.print(
        f"  base model: held-out facts exact match {base_scores['exact_match']:.1%} "
        f"(QA prompt {base_scores['exact_match_qa_prompt']:.1%}), SFT val loss {base_scores['val_loss']:.3f}"
    )

    tcfg = cfg.sft.train
    if tcfg.epochs > 0:
        n_sft = tcfg.batch_size - round(cfg.sft.mix_pretrain * tcfg.batch_size)
        steps = math.ceil(tcfg.epochs * data.batches_per_epoch(n_sft) / tcfg.grad_accum)
        tcfg = dataclasses.replace(tcfg, max_steps=max(1, steps))
    pretrain_shards = None
    if cfg.sft.mix_pretrain > 0:
        from chatforge.tokenizer.shards import TokenShards

        pretrain_shards = TokenShards(run.tokens, "train")
    model = base  # trained in place; the base figures are already taken
    model.train()
    samples = [q["question"] for q in questions[:3]]
    task = make_task(model, tok, data, held, tcfg, samples, cfg.sft.mix_pretrain, pretrain_shards)
    key = hashlib.sha256(
        (cfg.section_hash("run.seed", "sft") + _file_digest([*train_files, base_dir / "model.safetensors"])).encode()
    ).hexdigest()[:16]
    result = train(task, tcfg, run.checkpoint("sft"), run.metrics("sft"), seed=cfg.run.seed, key=key,
                   device=device, console=console, stage="sft")
    model.eval()
    sft_scores = score_facts(model, tok, questions, "chat")
    sft_scores["val_loss"] = masked_loss(model, held, tcfg.batch_size)
    sft_scores.update(steps=result.steps, final_loss=result.final_loss, tokens_per_s=result.tokens_per_s,
                      train_rows=len(data), train_conversations=data.n_conversations)
    atomic_write_json(run.eval("sft"), {"base": base_scores, "sft": sft_scores, "samples": result.samples})
    for s in result.samples:
        console.print(f"  [dim]sample:[/dim] {s!r}")
    metrics = {
        "base_exact_match": base_scores["exact_match"],
        "base_exact_match_qa_prompt": base_scores["exact_match_qa_prompt"],
        "sft_exact_match": sft_scores["exact_match"],
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

