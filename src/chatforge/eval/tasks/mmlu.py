"""MMLU as lm-evaluation-harness scores it, for the real files and the built-in set alike.

Prompt: "The following are multiple choice questions (with answers) about {subject}.\\n\\n",
then `shots` dev questions in file order, each "{question}\\nA. ..\\nB. ..\\nC. ..\\nD. ..\\nAnswer: X"
and "\\n\\n", then the test question ending in "Answer:"; the prediction is the argmax of the
log-likelihoods of " A".." D". A chat model gets the question zero-shot in a user turn and the
letters without the space (what its reply starts with). Accuracy per subject, per category and
overall as the micro average over questions (lm-eval's group weighting by size).

Files: `<dir>/{test,dev}/<subject>_{test,dev}.csv` with a header row and answers 0-3 (HF
`cais/mmlu` columns) or the original hendrycks layout, headerless with answers A-D; either
layout is recognised per file. Parquet: `test-*.parquet` / `dev-*.parquet` anywhere under the
directory with HF's columns (question, subject, choices, answer). A malformed row is skipped
and counted.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from chatforge.errors import InputError
from chatforge.eval.harness import (
    EvalModel,
    LoglikRequest,
    TaskResult,
    add_metric,
    encode_pair,
    loglikelihoods,
    prompt_hash,
)

LETTERS = ("A", "B", "C", "D")
HEADER = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
_STEM = ("abstract_algebra anatomy astronomy college_biology college_chemistry college_computer_science "
         "college_mathematics college_physics computer_security conceptual_physics electrical_engineering "
         "elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science "
         "high_school_mathematics high_school_physics high_school_statistics machine_learning")
_HUMANITIES = ("formal_logic high_school_european_history high_school_us_history high_school_world_history "
               "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy "
               "prehistory professional_law world_religions")
_SOCIAL = ("econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics "
           "high_school_microeconomics high_school_psychology human_sexuality professional_psychology "
           "public_relations security_studies sociology us_foreign_policy")
_OTHER = ("business_ethics clinical_knowledge college_medicine global_facts human_aging management marketing "
          "medical_genetics miscellaneous nutrition professional_accounting professional_medicine virology")
# lm-eval's four MMLU groups; a subject outside the 57 (the built-in set's) is its own category.
CATEGORY = {s: cat for cat, names in (("stem", _STEM), ("humanities", _HUMANITIES),
                                       ("social_sciences", _SOCIAL), ("other", _OTHER))
            for s in names.split()}


@dataclass
class Item:
    subject: str
    doc_id: int  # index of the record in its source file
    question: str
    choices: list[str]
    answer: int  # 0-3


@dataclass
class Split:
    """Items per subject (file order) and the rows that could not be read, by reason."""

    by_subject: dict[str, list[Item]] = field(default_factory=lambda: defaultdict(list))
    skipped: Counter[str] = field(default_factory=Counter)


def _answer(value: object) -> int | None:
    text = str(value).strip().upper()
    if text in LETTERS:
        return LETTERS.index(text)
    return int(text) if text in ("0", "1", "2", "3") else None


def read_csv(path: Path, subject: str, into: Split) -> None:
    """One subject's file in either layout (header + 0-3, or headerless + A-D)."""
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines(keepends=True)))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read MMLU CSV: {e}") from e
    if rows and [c.strip().lower() for c in rows[0]] == HEADER:
        rows = rows[1:]
    for i, row in enumerate(rows):
        answer = _answer(row[5]) if len(row) == 6 else None
        if answer is None:
            into.skipped["bad_row"] += 1
            continue
        into.by_subject[subject].append(Item(subject, i, row[0], list(row[1:5]), answer))


def read_parquet(path: Path, into: Split) -> None:
    try:
        records = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: cannot read MMLU Parquet: {e}") from e
    per_subject: Counter[str] = Counter()
    for rec in records:
        choices, answer = rec.get("choices"), _answer(rec.get("answer"))
        if not isinstance(rec.get("question"), str) or not isinstance(choices, list) or len(choices) != 4 \
                or answer is None:
            into.skipped["bad_row"] += 1
            continue
        subject = str(rec.get("subject") or path.parent.name)
        into.by_subject[subject].append(Item(subject, per_subject[subject], rec["question"],
                                             [str(c) for c in choices], answer))
        per_subject[subject] += 1


def load(root: Path, split: str) -> Split:
    """Every subject of `split` (test, dev, val) under `root`, in CSV or Parquet."""
    out = Split()
    files = sorted((root / split).glob(f"*_{split}.csv")) if (root / split).is_dir() else []
    for path in files:
        read_csv(path, path.name[: -len(f"_{split}.csv")], out)
    if not files:
        for path in sorted(root.rglob(f"{split}-*.parquet")):
            read_parquet(path, out)
    if not out.by_subject:
        raise InputError(f"{root}: no MMLU {split} files ({split}/<subject>_{split}.csv or {split}-*.parquet)")
    return out


def doc_text(item: Item) -> str:
    lines = [item.question.strip()] + [f"{L}. {c}" for L, c in zip(LETTERS, item.choices, strict=True)]
    return "\n".join(lines) + "\nAnswer:"


def description(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def request(em: EvalModel, item: Item, shots: list[Item]) -> LoglikRequest:
    if em.style == "chat":
        ctx = em.prompt(description(item.subject) + doc_text(item))
        return LoglikRequest(ctx, [em.tok.encode(L) for L in LETTERS])
    text = description(item.subject) + "".join(f"{doc_text(s)} {LETTERS[s.answer]}\n\n" for s in shots)
    text += doc_text(item)
    pairs = [encode_pair(em.tok, text, f" {L}") for L in LETTERS]
    return LoglikRequest([em.tok.bos_id] + pairs[0][0], [c for _, c in pairs])


def score(em: EvalModel, test: Split, dev: Split, *, shots: int = 5, limit: int | None = None,
          name: str = "mmlu") -> TaskResult:
    """Accuracy per subject, per category and overall (micro); `limit` items per subject."""
    items = [it for s in sorted(test.by_subject) for it in test.by_subject[s][:limit]]
    if not items:
        raise InputError(f"{name}: no test items")
    reqs = [request(em, it, dev.by_subject.get(it.subject, [])[:shots]) for it in items]
    rows, by_subject, by_category = [], defaultdict(list), defaultdict(list)
    for it, req, scores in zip(items, reqs, loglikelihoods(em, reqs), strict=True):
        lls = [ll for ll, _ in scores]
        pred = max(range(4), key=lambda k: lls[k])
        ok = float(pred == it.answer)
        by_subject[it.subject].append(ok)
        by_category[CATEGORY.get(it.subject, it.subject)].append(ok)
        rows.append({"task": f"{name}/{it.subject}", "doc_id": it.doc_id, "prompt_hash": prompt_hash(req.context),
                     "pred": LETTERS[pred], "gold": LETTERS[it.answer], "correct": bool(ok), "loglik": lls})
    metrics: dict[str, float] = {}
    add_metric(metrics, "acc", [r["correct"] for r in rows])
    metrics["n"] = len(rows)
    for group, prefix in ((by_category, "category"), (by_subject, "subject")):
        for key, vals in sorted(group.items()):
            metrics[f"acc/{prefix}/{key}"] = sum(vals) / len(vals)
    metrics["skipped_rows"] = sum(test.skipped.values()) + sum(dev.skipped.values())
    return TaskResult(rows, metrics)
