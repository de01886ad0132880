"""GSM8K (and the built-in word problems, in its layout) scored as lm-eval's `gsm8k` v3.

Base models get `shots` worked examples from the train file, drawn once with a seeded sampler
(the same for every item), each "Question: ..\\nAnswer: <worked answer ending '#### N'>\\n\\n",
then "Question: ..\\nAnswer:"; chat models get the question zero-shot in a user turn. Greedy
decoding stops at "Question:" (lm-eval's stop) and also at a blank line, where a few-shot
answer ends, so a small model does not ramble to the token limit.

Both of lm-eval's answer filters are reported: strict (`#### N`) and flexible (the last number
in the reply); both compare after lm-eval's clean-up (commas, "$", everything up to "#### " and
a trailing period removed; case ignored).
Files: `test.jsonl` / `train.jsonl` ({question, answer}), or `test-*.parquet` / `train-*.parquet`.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from chatforge.engine import SamplingParams
from chatforge.errors import InputError
from chatforge.eval.harness import EvalModel, TaskResult, add_metric, generate, prompt_hash

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")
INVALID = "[invalid]"
STOP = ("Question:", "</s>", "<|im_end|>", "\n\n")


def _extract(regex: re.Pattern[str], text: str, group_select: int) -> str:
    """lm-eval's RegexFilter: the `group_select`-th match, first non-empty group of a tuple."""
    found = regex.findall(text)
    if not found:
        return INVALID
    match = found[group_select]
    if isinstance(match, tuple):
        groups = [m for m in match if m]
        if not groups:
            return INVALID
        match = groups[0]
    return match.strip()


def strict_answer(text: str) -> str:
    return _extract(STRICT, text, 0)


def flexible_answer(text: str) -> str:
    return _extract(FLEXIBLE, text, -1)


def clean(text: str) -> str:
    """lm-eval's exact_match preprocessing: drop the ignored patterns, then ignore case."""
    for pattern in IGNORE:
        text = re.sub(pattern, "", text)
    return text.lower()


def matches(pred: str, gold_answer: str) -> bool:
    """Exact match of an extracted answer against the gold worked answer ('... #### 72')."""
    return clean(pred) == clean(gold_answer)


@dataclass
class Problems:
    items: list[dict]  # {question, answer, doc_id}
    skipped: Counter[str] = field(default_factory=Counter)


def read(path: Path) -> Problems:
    """{question, answer} records from JSONL or Parquet; a bad record is skipped and counted."""
    out = Problems([])
    try:
        if path.suffix == ".parquet":
            records: list[object] = pq.read_table(path).to_pylist()
        else:
            records = []
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError:
                        out.skipped["invalid_json"] += 1
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read word problems: {e}") from e
    except Exception as e:  # pyarrow's errors for a damaged Parquet file
        raise InputError(f"{path}: cannot read word problems: {e}") from e
    for n, rec in enumerate(records):
        if isinstance(rec, dict) and isinstance(rec.get("question"), str) and isinstance(rec.get("answer"), str) \
                and "####" in rec["answer"]:
            out.items.append({"question": rec["question"], "answer": rec["answer"], "doc_id": n})
        else:
            out.skipped["missing_field"] += 1
    if not out.items:
        raise InputError(f"{path}: no {{question, answer '... #### N'}} record")
    return out


def find(root: Path, split: str) -> Path | None:
    """`<split>.jsonl` in `root`, or a `<split>-*.parquet` anywhere under it."""
    if (root / f"{split}.jsonl").is_file():
        return root / f"{split}.jsonl"
    return next(iter(sorted(root.rglob(f"{split}-*.parquet"))), None)


def prompt_text(question: str, shots: list[dict[str, str]]) -> str:
    head = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots)
    return f"{head}Question: {question}\nAnswer:"


def score(em: EvalModel, test: Problems, train: Problems | None, *, shots: int = 5,
          limit: int | None = None, name: str = "gsm8k") -> TaskResult:
    """Strict and flexible exact match over the first `limit` test problems."""
    items = test.items[:limit]
    pool = train.items if train is not None else []
    chosen = random.Random(em.seed).sample(pool, min(shots, len(pool))) if em.style == "base" else []
    prompts = [em.prompt(it["question"]) if em.style == "chat" else
               [em.tok.bos_id] + em.tok.encode(prompt_text(it["question"], chosen)) for it in items]
    params = SamplingParams(max_new_tokens=em.max_new_tokens, stop=STOP if em.style == "base" else ())
    rows = []
    for it, p, c in zip(items, prompts, generate(em, prompts, params), strict=True):
        strict, flexible = strict_answer(c.text), flexible_answer(c.text)
        gold = clean(it["answer"])
        rows.append({"task": name, "doc_id": it["doc_id"], "prompt_hash": prompt_hash(p), "pred": flexible,
                     "pred_strict": strict, "gold": gold, "correct": matches(flexible, it["answer"]),
                     "correct_strict": matches(strict, it["answer"]), "reply": c.text})
    metrics: dict[str, float] = {}
    add_metric(metrics, "exact_match_flexible", [r["correct"] for r in rows])
    add_metric(metrics, "exact_match_strict", [r["correct_strict"] for r in rows])
    metrics["n"] = len(rows)
    metrics["shots"] = len(chosen)
    return TaskResult(rows, metrics)
