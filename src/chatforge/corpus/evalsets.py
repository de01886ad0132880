"""Held-out evaluation sets from the invented world, in the official benchmark layouts.

Written by the corpus stage into `corpus/eval/`, so the same readers and scorers run on them as
on the real benchmarks:
  mc/{test,dev}/<subject>_{test,dev}.csv   MMLU layout (header, answers 0-3): a held-out fact
                                           question, the true answer and three other values of
                                           the same relation; dev = 5 training facts per subject
  word_problems/{test,train}.jsonl         GSM8K layout: {question, answer: worked answer ending
                                           "#### N"}; train = few-shot exemplars only
  code/test.jsonl                          HumanEval layout (task_id, prompt, canonical_solution,
                                           test, entry_point) plus the chat `request`
  truthful/mc_task.json                    TruthfulQA layout: the true statement of a held-out
                                           fact against the same statement with the relation's
                                           most common other values (the popular answer a model
                                           that only learnt frequencies would give)
Held out: the MC and truthful questions are the held-out fact phrasings (never in SFT); word
problems and code items whose text appears in an SFT conversation or pre-training document are
dropped and regenerated (the generators draw from a seed of their own).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from chatforge.corpus import programs, tasks
from chatforge.corpus.facts import Fact
from chatforge.corpus.templates import fact_question, fact_sentence, n_question_variants
from chatforge.corpus.world import World

HEADER = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
DEV_PER_SUBJECT = 5
WORD_PROBLEM_SHOTS = 8


def _values(world: World, relation: str, lang: str) -> Counter[str]:
    return Counter(f.answer(lang) for f in world.facts if f.relation == relation)


def _subject(fact: Fact, lang: str) -> str:
    return f"{lang}_{fact.subject_kind}"


def _mc_row(rng: random.Random, world: World, fact: Fact, lang: str, question: str) -> list[str] | None:
    """question, four choices (the true answer at a seeded position), answer index; None when
    the relation has fewer than four distinct values."""
    others = sorted(set(_values(world, fact.relation, lang)) - {fact.answer(lang)})
    if len(others) < 3:
        return None
    choices = rng.sample(others, 3)
    gold = rng.randrange(4)
    choices.insert(gold, fact.answer(lang))
    return [question, *choices, str(gold)]


def _csv(rows: Iterable[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buf.getvalue()


def multiple_choice(world: World, heldout: list[dict], rng: random.Random, limit: int,
                    langs: list[str]) -> dict[str, str]:
    """{relative path: CSV text} of the MMLU-layout set, per subject (language + entity kind)."""
    test: dict[str, list[list[str]]] = {}
    for q in heldout[:limit]:
        fact = world.fact(q["fact_id"])
        row = _mc_row(rng, world, fact, q["lang"], q["question"])
        if row is not None:
            test.setdefault(_subject(fact, q["lang"]), []).append(row)
    held = {(q["fact_id"], q["lang"]) for q in heldout}
    dev: dict[str, list[list[str]]] = {}
    for fact in world.facts:
        for lang in langs:
            subject = _subject(fact, lang)
            if subject not in test or (fact.id, lang) in held or len(dev.get(subject, [])) >= DEV_PER_SUBJECT:
                continue
            variant = rng.randrange(n_question_variants(fact.relation, lang))
            row = _mc_row(rng, world, fact, lang, fact_question(fact, lang, variant))
            if row is not None:
                dev.setdefault(subject, []).append(row)
    files = {f"mc/test/{s}_test.csv": _csv(rows) for s, rows in sorted(test.items())}
    files |= {f"mc/dev/{s}_dev.csv": _csv(rows) for s, rows in sorted(dev.items())}
    return files


def truthful(world: World, heldout: list[dict], limit: int) -> list[dict[str, Any]]:
    """TruthfulQA-layout items: true statements (label 1) first, then popular false ones (0)."""
    out = []
    for q in heldout[:limit]:
        fact, lang = world.fact(q["fact_id"]), q["lang"]
        values = _values(world, fact.relation, lang)
        popular = [v for v, _ in values.most_common() if v != fact.answer(lang)][:3]
        if len(popular) < 3:
            continue
        by_value = {f.answer(lang): f for f in world.facts if f.relation == fact.relation}

        true = list(dict.fromkeys([fact_sentence(fact, lang, 0), fact_sentence(fact, lang, 1)]))
        false = [_claim(fact, by_value[v], lang) for v in popular]
        if len(set(false) | set(true)) < len(false) + len(true):
            continue
        out.append({"question": q["question"], "lang": lang, "fact_id": fact.id,
                    "mc1_targets": {true[0]: 1} | dict.fromkeys(false, 0),
                    "mc2_targets": dict.fromkeys(true, 1) | dict.fromkeys(false, 0)})
    return out


def _claim(fact: Fact, other: Fact, lang: str) -> str:
    """`fact`'s statement with `other`'s value of the same relation: a false claim."""
    return fact_sentence(dataclasses.replace(fact, object=other.object, object_tr=other.object_tr,
                                             object_id=other.object_id), lang, 0)


def word_problems(world: World, rng: random.Random, n: int, seen: set[str], seen_text: str,
                  langs: list[str]) -> tuple[list[dict], list[dict]]:
    """(test, few-shot train) in GSM8K layout, none of whose questions training contains."""
    items: list[dict] = []
    questions: set[str] = set()
    tries = 0
    while len(items) < n + WORD_PROBLEM_SHOTS * len(langs) and tries < 20 * (n + 10):
        tries += 1
        p = tasks.word_problem(rng, world, langs[len(items) % len(langs)])
        if p.question in seen or p.question in questions or p.question in seen_text:
            continue
        questions.add(p.question)
        items.append({"question": p.question, "answer": f"{p.solution}\n#### {p.answer}", "lang": p.lang})
    shots = items[: WORD_PROBLEM_SHOTS * len(langs)]
    return items[len(shots):], shots


def humaneval_item(task: programs.CodeTask, i: int) -> dict[str, str]:
    """A CodeTask as a HumanEval record: the prompt stops after the docstring."""
    call, value = task.example
    doc = f'    """{task.doc}\n    >>> {call}\n    {value}\n    """\n'
    prelude = task.prelude + "\n\n\n" if task.prelude else ""
    body = "".join(f"    {line}\n" for line in task.body.splitlines())
    asserts = "".join("    " + t.replace(f"assert {task.name}(", "assert candidate(", 1) + "\n" for t in task.tests)
    return {"task_id": f"Builtin/{i}", "prompt": f"{prelude}{task.signature}\n{doc}", "canonical_solution": body,
            "test": f"\n\ndef check(candidate):\n{asserts}", "entry_point": task.name, "request": task.request,
            "lang": task.lang}


def code(world: World, rng: random.Random, n: int, seen: set[str], langs: list[str]) -> list[dict]:
    """HumanEval-layout items whose request and tests no SFT conversation has."""
    out: list[dict] = []
    keys: set[tuple[str, ...]] = set()
    tries = 0
    while len(out) < n and tries < 20 * (n + 10):
        tries += 1
        task = programs.code_task(rng, world, langs[len(out) % len(langs)])
        key = (task.request, *task.tests)
        if task.request in seen or key in keys:
            continue
        keys.add(key)
        out.append(humaneval_item(task, len(out)))
    return out


def build(world: World, heldout_facts: list[dict], train: list[dict], docs: list[dict], seed: int,
          n_items: int, langs: list[str]) -> dict[str, str]:
    """{path under corpus/eval/: file text} of every built-in set."""
    rng = random.Random(f"chatforge-evalsets-{seed}")
    seen = {m["content"] for c in train for m in c["messages"] if m["role"] == "user"}
    seen_text = "\n".join(d["text"] for d in docs if d["source"] == "arithmetic")
    files = multiple_choice(world, heldout_facts, rng, n_items, langs)
    test, shots = word_problems(world, rng, n_items, seen, seen_text, langs)
    files["word_problems/test.jsonl"] = _jsonl(test)
    files["word_problems/train.jsonl"] = _jsonl(shots)
    files["code/test.jsonl"] = _jsonl(code(world, rng, n_items, seen, langs))
    files["truthful/mc_task.json"] = json.dumps(truthful(world, heldout_facts, n_items), ensure_ascii=False, indent=1)
    return files


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
