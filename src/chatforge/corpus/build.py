"""Pipeline stage `corpus`: generate the built-in world and write its texts into run/corpus/.

Outputs (all written atomically):
  world.json            entities and facts: the ground truth of every question
  pretrain.jsonl        {"id", "source", "lang", "text"} pre-training documents
  sft_train.jsonl       {"id", "kind", "lang", "messages", "answer", "meta"} conversations
  sft_heldout.jsonl     held-out conversations (validation loss, held-out fact questions)
  rl_{train,heldout}.jsonl  fresh word problems (same layout) for GRPO, none asked in SFT
  facts_heldout.jsonl   {"question", "answer", "lang", "fact_id", "relation", "seen_in_sft"}:
                        the held-out fact questions that score SFT (exact match)
  eval/chat_heldout.jsonl  the chat evaluation's items, held-out phrasings (eval/chat_eval.py)
  eval/*.jsonl          safety and bias sets (harmful, benign look-alikes, bias pairs; corpus/safety.py)
  eval/contrast_prefs_train.jsonl  right answers against one wrong fact (corpus/contrast.py)
  eval/{mc,word_problems,code,truthful}/  held-out benchmark-layout sets (corpus/evalsets.py)
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from chatforge.config import Config, CorpusConfig
from chatforge.corpus import chat, contrast, evalsets, safety, text
from chatforge.corpus.world import World
from chatforge.runs import RunDir, atomic_write_json, atomic_write_text
from chatforge.stage import StageResult

RL_PROBLEMS = 1000  # GRPO's cpu preset uses ~500 (60 steps x 8 prompts)
RL_HELDOUT = 256  # GRPO's held-out word problems: enough to see a few points of accuracy


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def generate(cfg: CorpusConfig) -> dict[str, Any]:
    """Everything the stage writes, in memory: world, documents, conversations, mentions."""
    world = World.build(cfg.seed, cfg)
    split = chat.fact_split(world, cfg, cfg.seed)
    docs, mentions = text.pretrain_corpus(world, cfg, cfg.seed,
                                          split.training_questions(world, cfg.languages))
    train, heldout = chat.conversations(world, cfg, cfg.seed, split)
    chat_items = chat.chat_eval_items(world, cfg, heldout)
    rl = chat.rl_problems(world, cfg, cfg.seed, train + heldout, RL_PROBLEMS + RL_HELDOUT)
    facts_heldout = chat.heldout_fact_questions(heldout)
    return {"world": world, "docs": docs, "mentions": mentions, "train": train,
            "rl": rl[:RL_PROBLEMS], "rl_heldout": rl[RL_PROBLEMS:], "heldout": heldout, "facts_heldout": facts_heldout, "chat_heldout": chat_items,
            "contrast": contrast.contrast_pairs(world, train, cfg.seed),
            "safety": safety.generate(world, list(cfg.languages), cfg.seed),
            "evalsets": evalsets.build(world, facts_heldout, train, docs, cfg.seed, cfg.eval_items,
                                       list(cfg.languages))}


def run(cfg: Config, run: RunDir) -> StageResult:
    """Generate the corpus of `cfg.corpus` into `run.corpus` and report its counts."""
    started = time.perf_counter()
    out = generate(cfg.corpus)
    files = {
        "pretrain.jsonl": _jsonl(out["docs"]),
        "sft_train.jsonl": _jsonl(out["train"]),
        "sft_heldout.jsonl": _jsonl(out["heldout"]),
        "rl_train.jsonl": _jsonl(out["rl"]),
        "rl_heldout.jsonl": _jsonl(out["rl_heldout"]),
        "facts_heldout.jsonl": _jsonl(out["facts_heldout"]),
    }
    files |= {f"eval/{stem}.jsonl": _jsonl(rows) for stem, rows in out["safety"].items()}
    files["eval/chat_heldout.jsonl"] = _jsonl(out["chat_heldout"])
    files["eval/contrast_prefs_train.jsonl"] = _jsonl(out["contrast"])
    files |= {f"eval/{path}": body for path, body in out["evalsets"].items()}
    for name, body in files.items():
        atomic_write_text(run.corpus / name, body)
    atomic_write_json(run.corpus / "world.json", out["world"].to_json())

    docs, mentions = out["docs"], out["mentions"]
    per_fact = [mentions[f.id, lang] for f in out["world"].facts for lang in cfg.corpus.languages]
    metrics = {
        "entities": len(out["world"].entities),
        "facts": len(out["world"].facts),
        "documents": len(docs),
        "chars": sum(len(d["text"]) for d in docs),
        "docs_per_source": dict(sorted(Counter(d["source"] for d in docs).items())),
        "docs_per_lang": dict(sorted(Counter(d["lang"] for d in docs).items())),
        "chars_per_source": _sum_by(docs, "source"),
        "mentions_min": min(per_fact),
        "mentions_mean": round(sum(per_fact) / len(per_fact), 1),
        "sft_train": len(out["train"]),
        "sft_heldout": len(out["heldout"]),
        "rl_train": len(out["rl"]),
        "rl_heldout": len(out["rl_heldout"]),
        "sft_train_per_kind": dict(sorted(Counter(c["kind"] for c in out["train"]).items())),
        "sft_train_per_lang": dict(sorted(Counter(c["lang"] for c in out["train"]).items())),
        "facts_heldout": len(out["facts_heldout"]),
        "facts_heldout_unseen": sum(not q["seen_in_sft"] for q in out["facts_heldout"]),
        "safety_sets": {stem: len(rows) for stem, rows in out["safety"].items()},
        "contrast_pairs": len(out["contrast"]),
        "build_s": round(time.perf_counter() - started, 2),
    }
    outputs = {name: str(run.corpus / name) for name in [*files, "world.json"]}
    summary = (f"{metrics['documents']} documents ({metrics['chars'] / 1e6:.1f} M chars), "
               f"{metrics['facts']} facts stated >= {metrics['mentions_min']}x per language, "
               f"{metrics['sft_train']} SFT conversations, {metrics['facts_heldout']} held-out questions")
    return StageResult(outputs=outputs, metrics=metrics, summary=summary)


def _sum_by(docs: list[dict[str, str]], key: str) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for d in docs:
        totals[d[key]] += len(d["text"])
    return dict(sorted(totals.items()))
