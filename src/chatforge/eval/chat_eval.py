"""The built-in chat evaluation: what a person trying the model would notice, in figures.

Items (corpus/eval/chat_heldout.jsonl, written by the corpus stage; every prompt in a phrasing
training never used) are scored by kind:
- fact, followup: the reply gives the answer (`eval.facts.answer_matches`); a follow-up asks
  with a pronoun about the subject of the turn before ("And when was she born?").
- open ("Tell me about X"): the reply passes when it states at least OPEN_MIN_FACTS of X's facts
  in a sentence of the pre-training templates and no sentence contradicts one (the sentence
  frame of one of X's facts with another value in the value's place). A wrong claim phrased in
  no template frame goes unnoticed: the figure is an upper bound on fluency-with-truth.
- compare: the reply names the right one of the two first.
- unknown: the share of questions about things the world lacks answered "I don't know".
- arithmetic: the answer given, with the calculator tool and (same items) without it, by
  number of digits and operator.
`score_chat` returns every rate overall and per language, so the evaluation stage's
scoreboard and the SFT stage can both report it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from chatforge.corpus.facts import Fact
from chatforge.corpus.templates import fact_sentence, n_sentence_variants
from chatforge.engine import Completion, Engine, SamplingParams
from chatforge.eval.facts import answer_matches, normalise_answer, read_records
from chatforge.model.gpt import GPT
from chatforge.tokenizer.bpe import Tokenizer
from chatforge.tokenizer.chat import render_prompt_within

KINDS = ("fact", "open", "followup", "compare", "unknown", "arithmetic")
OPEN_MIN_FACTS = 2
MAX_TOKENS = {"open": 160}  # other kinds: DEFAULT_MAX_TOKENS
DEFAULT_MAX_TOKENS = 64
OP_NAMES = {"+": "add", "-": "sub", "×": "mul"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def read_chat_items(path: Path) -> list[dict]:
    """Chat evaluation items from JSONL; a malformed record is an error naming it."""
    return read_records(
        path, lambda r: isinstance(r, dict) and r.get("kind") in KINDS and isinstance(r.get("messages"), list),
        f"'kind' (one of {', '.join(KINDS)}) and 'messages'",
    )


def _words(text: str) -> list[str]:
    return [w.strip(".,;:!?\"()") for w in normalise_answer(text).split()]


_ARTICLES = {"a", "an"}  # agree with the value that follows: "an engineer" / "a teacher"


def _object_span(words: list[str], answer: str) -> set[int]:
    """Positions of the fact's value in a sentence (Turkish suffixes allowed: karova'da), with
    the English article before it, which changes with the value."""
    target = _words(answer)
    for i in range(len(words) - len(target) + 1):
        if all(words[i + j].startswith(t) for j, t in enumerate(target)):
            start = i - 1 if i > 0 and words[i - 1] in _ARTICLES else i
            return set(range(start, i + len(target)))
    return set()


def _contradicts(reply: list[str], true: list[str], obj: set[int]) -> bool:
    """`reply` is `true`'s sentence frame with something else where the value stands."""
    p = 0
    while p < min(len(reply), len(true)) and reply[p] == true[p]:
        p += 1
    q = 0
    while q < min(len(reply), len(true)) - p and reply[-1 - q] == true[-1 - q]:
        q += 1
    middle = set(range(p, len(true) - q))
    replaced = len(reply) - p - q
    return bool(middle) and middle <= obj and 0 < replaced <= len(obj) + 2 and p + q >= 2


def score_open(reply: str, facts: Sequence[Fact], lang: str) -> tuple[int, int]:
    """(facts stated correctly, facts contradicted) in an open-request reply."""
    frames = [(f, _words(fact_sentence(f, lang, v))) for f in facts
              for v in range(n_sentence_variants(f.relation, lang))]
    correct, wrong = set(), set()
    for sentence in _SENTENCE_END.split(reply.strip()):
        words = _words(sentence)
        if not words:
            continue
        hits = {f.id for f, true in frames if words == true}
        if hits:
            correct |= hits
            continue
        wrong |= {f.id for f, true in frames if _contradicts(words, true, _object_span(true, f.answer(lang)))}
    return len(correct), len(wrong - correct)


def _judge(item: dict, c: Completion) -> bool:
    kind, reply, ended = item["kind"], c.text, c.finish_reason == "stop"
    if kind == "open":
        facts = [Fact(**f) for f in item["meta"]["facts"]]
        n_right, n_wrong = score_open(reply, facts, item["lang"])
        return n_right >= min(OPEN_MIN_FACTS, len(facts)) and n_wrong == 0
    if kind == "compare":
        r, win, other = normalise_answer(reply), normalise_answer(item["answer"]), normalise_answer(item["meta"]["other"])
        i, j = r.find(win), r.find(other)
        return i >= 0 and (j < 0 or i < j)
    if kind == "unknown":
        return normalise_answer(item["answer"]) in normalise_answer(reply)
    return answer_matches(reply, item["answer"], ended)


def _generate(engine: Engine, tok: Tokenizer, items: Sequence[dict], tools: tuple[str, ...],
              batch_size: int) -> list[Completion]:
    ctx = engine.context_length
    out: list[Completion] = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        budget = max(MAX_TOKENS.get(it["kind"], DEFAULT_MAX_TOKENS) for it in chunk)
        prompts = [render_prompt_within(tok, it["messages"], ctx - 1) for it in chunk]
        out += engine.generate(prompts, SamplingParams(max_new_tokens=budget, tools=tools))
    return out


def _rate(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else 0.0


def score_chat(model: GPT, tok: Tokenizer, items: Sequence[dict], batch_size: int = 32,
               n_examples: int = 2) -> dict:
    """Greedy replies to every item and the pass rates: {"scores": {name: rate}, "by_lang":
    {name: {lang: rate}}, "n": {name: count}, "examples": [...]}. Names are the kinds, with
    arithmetic split as "arith{digits}_{add|sub|mul}_tool" / "_no_tool", plus "idk_on_known" (facts
    wrongly answered "I don't know")."""
    engine = Engine(model, tok)
    order = sorted(range(len(items)), key=lambda i: (items[i]["kind"], i))  # similar lengths together
    ordered = [items[i] for i in order]
    runs = [("", ordered, ("calculator",))]
    arith = [it for it in ordered if it["kind"] == "arithmetic"]
    runs.append(("_no_tool", arith, ()))
    groups: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    examples: list[dict] = []
    markers = {it["lang"]: it["answer"] for it in items if it["kind"] == "unknown"}
    for suffix, subset, tools in runs:
        for it, c in zip(subset, _generate(engine, tok, subset, tools, batch_size), strict=True):
            ok = _judge(it, c)
            name = it["kind"]
            if name == "arithmetic":
                name = f"arith{it['meta']['digits']}_{OP_NAMES[it['meta']['op']]}{suffix or '_tool'}"
            groups[name][it["lang"]].append(ok)
            if it["kind"] == "fact" and it["lang"] in markers:
                groups["idk_on_known"][it["lang"]].append(
                    normalise_answer(markers[it["lang"]]) in normalise_answer(c.text))
            if sum(e["name"] == name for e in examples) < n_examples:
                examples.append({"name": name, "prompt": it["messages"][-1]["content"], "reply": c.text,
                                 "calls": [p["text"] for p in c.parts if p["type"] != "text"], "correct": ok})
    return {
        "scores": {k: _rate([h for v in g.values() for h in v]) for k, g in sorted(groups.items())},
        "by_lang": {k: {lang: _rate(v) for lang, v in sorted(g.items())} for k, g in sorted(groups.items())},
        "n": {k: sum(len(v) for v in g.values()) for k, g in sorted(groups.items())},
        "examples": examples,
    }
