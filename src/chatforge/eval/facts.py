"""Exact match on the built-in held-out fact questions, for base and chat models alike."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from chatforge.engine import Engine, SamplingParams
from chatforge.errors import InputError, RunDirError
from chatforge.model.gpt import GPT
from chatforge.tokenizer.bpe import Tokenizer
from chatforge.tokenizer.chat import render_prompt

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


def read_records(path: Path, valid: Callable[[object], bool], needs: str) -> list[dict]:
    """The records of an evaluation JSONL file the corpus stage wrote; a missing file or a
    malformed record (not JSON, or not `valid`) is a one-line error naming it."""
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
        if not valid(rec):
            raise InputError(f"{path}: record {i}: needs {needs}")
        out.append(rec)
    return out


def read_fact_questions(path: Path) -> list[dict]:
    """Held-out fact questions {"question", "answer", "lang", "fact_id"} from JSONL."""
    return read_records(
        path, lambda r: isinstance(r, dict) and isinstance(r.get("question"), str) and isinstance(r.get("answer"), str),
        "string 'question' and 'answer'",
    )


def score_facts(
    model: GPT, tok: Tokenizer, questions: Sequence[dict], prompt_style: str = "chat",
    max_new_tokens: int = 48, batch_size: int = 32,
) -> dict:
    """Greedy answers to fact questions and their exact-match rate, overall and per language.

    `chat` asks in the chat template; `qa` gives a base model its natural completion format
    ("Question: ...\\nAnswer:", stopping at the end of the line) so it is not judged only on a
    format it never saw.
    """
    engine = Engine(model, tok, batch_size)
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
    for q, c in zip(questions, engine.generate(prompts, params), strict=True):
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
