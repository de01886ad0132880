"""Collecting preferences as the seed describes it: the SFT model writes two answers to each
prompt (two sampling temperatures, seeds per row), and a judge (or a person, through
`chatforge prefs label|serve`) picks one.

The prompts of the built-in corpus are its conversations' requests whose better answer the
rules can tell: fact and arithmetic questions (the answer is known) and harmful requests
(they must be refused), from the training conversations for training pairs and from the
held-out ones for held-out pairs (reward-model accuracy, DPO margins). Every generated pair
records the model and the sampling settings of each answer; a new generation (another SFT
model, other settings) is told apart by its `generation` key, so the training stages read
the pairs of the current generation plus whatever was imported.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from chatforge.align.judges import HTTPJudge, Judge, RewardModelJudge, RuleJudge, agreement
from chatforge.align.pairs import prompt_messages
from chatforge.align.prefs import Pair, PrefStore
from chatforge.config import Config
from chatforge.device import pick_device
from chatforge.engine import Engine, SamplingParams
from chatforge.errors import ConfigError
from chatforge.model.checkpoint import load_checkpoint, load_model, resolve_checkpoint
from chatforge.model.gpt import GPT
from chatforge.runs import RunDir, files_digest, read_jsonl
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import render_prompt

JUDGED_KINDS = ("fact", "arithmetic", "refusal")
IMPORT_FORMATS = ("jsonl", "hh-rlhf", "llamafactory")


def corpus_prompts(run: RunDir, n_train: int, n_heldout: int, seed: int) -> list[dict]:
    """Requests of the corpus's conversations the rule judge can decide, with their split."""
    out = []
    for split, name, n in (("train", "sft_train.jsonl", n_train), ("heldout", "sft_heldout.jsonl", n_heldout)):
        rows = [r for r in read_jsonl(run.corpus / name) if r.get("kind") in JUDGED_KINDS]
        random.Random(seed).shuffle(rows)
        for r in rows[:n]:
            messages = r["messages"][:-1]  # the dialogue up to the answer
            out.append({"prompt": messages[-1]["content"], "messages": messages if len(messages) > 1 else None,
                        "kind": r["kind"], "answer": r.get("answer", ""), "lang": r.get("lang", ""),
                        "split": split})
    return out


def generate_pairs(model: GPT, tok: Tokenizer, prompts: Sequence[dict], temperatures: Sequence[float],
                   max_new_tokens: int, seed: int, generation: str, model_name: str) -> list[dict]:
    """Two sampled answers per prompt (one per temperature), as rows for PrefStore.add_pairs.
    Prompts that leave no room for an answer within the context are left out."""
    engine = Engine(model, tok)
    room = model.cfg.seq_len - min(max_new_tokens, model.cfg.seq_len // 2)
    rendered = [(p, render_prompt(tok, prompt_messages(p))) for p in prompts]
    prompts = [p for p, x in rendered if len(x) <= room]
    ids = [x for _, x in rendered if len(x) <= room]
    answers = []
    for k, t in enumerate(temperatures):
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=t, top_k=0, top_p=1.0,
                                seed=seed + 100_003 * k)
        answers.append(engine.generate(ids, params))
    rows = []
    for i, p in enumerate(prompts):
        a, b = answers[0][i], answers[1][i]
        common = {"kind": p["kind"], "answer": p["answer"], "lang": p["lang"], "generation": generation,
                  "model": model_name, "messages": p["messages"]}
        meta = [{**common, "temperature": t, "seed": seed + 100_003 * k + i, "finish_reason": c.finish_reason}
                for k, (t, c) in enumerate(zip(temperatures, (a, b), strict=True))]
        rows.append({"prompt": p["prompt"], "response_a": a.text, "response_b": b.text,
                     "meta_a": meta[0], "meta_b": meta[1], "source": "generated", "split": p["split"]})
    return rows


def make_judge(name: str, run: RunDir, cfg: Config, device: str = "cpu") -> Judge:
    if name == "rule":
        return RuleJudge()
    if name == "reward":
        rm = load_checkpoint(run.checkpoint("reward"), device).eval()
        return RewardModelJudge(rm, load_tokenizer(run.tokenizer))
    if name == "http":
        if not cfg.prefs.judge_url:
            raise ConfigError("prefs.judge=http needs prefs.judge_url (an OpenAI-compatible endpoint)")
        return HTTPJudge(cfg.prefs.judge_url, cfg.prefs.judge_model)
    raise ConfigError(f"unknown judge {name!r}: choose rule, reward or http")


def judge_pairs(store: PrefStore, judge: Judge, pairs: Sequence[Pair]) -> dict[str, int]:
    """Label every pair as the judge decides (labeller `judge:<name>`); counts per choice."""
    labeller = f"judge:{judge.name}"
    done = {lab.pair_id for lab in store.labels(labeller=labeller)}
    todo = [p for p in pairs if p.id not in done]
    choices = judge.choose(todo)
    store.label_many([(p.id, c) for p, c in zip(todo, choices, strict=True)], labeller)
    return {c: choices.count(c) for c in ("A", "B", "tie")}


def generation_key(cfg: Config, run: RunDir) -> str:
    """What the current generated pairs came from: the SFT weights and the sampling settings."""
    weights = resolve_checkpoint(run.checkpoint("sft")) / "model.safetensors"
    p = cfg.prefs
    return f"{files_digest([weights])}-{p.temperatures}-{p.max_new_tokens}-{p.prompts}-{p.heldout_prompts}-{cfg.run.seed}"


def current_pairs(store: PrefStore, generation: str) -> list[Pair]:
    return [p for p in store.pairs(source="generated") if p.meta_a.get("generation") == generation]


def training_preferences(store: PrefStore, generation: str) -> tuple[list[dict], list[dict]]:
    """(train, held-out) preferences: the current generation's pairs and every imported or
    hand-made one, never pairs generated by an earlier SFT model."""
    stale = {p.id for p in store.pairs(source="generated") if p.meta_a.get("generation") != generation}
    prefs = [x for x in store.preferences() if x["pair_id"] not in stale]
    return [x for x in prefs if x["split"] != "heldout"], [x for x in prefs if x["split"] == "heldout"]


def import_preferences(store: PrefStore, spec: str, split: str = "train") -> dict:
    """`FORMAT:PATH` (jsonl, hh-rlhf, llamafactory) into the store."""
    fmt, sep, path = spec.partition(":")
    if not sep or fmt not in IMPORT_FORMATS:
        raise ConfigError(f"prefs.data item {spec!r}: expected FORMAT:PATH with FORMAT one of {', '.join(IMPORT_FORMATS)}")
    reader = {"jsonl": store.import_jsonl, "hh-rlhf": store.import_hh_rlhf,
              "llamafactory": store.import_llamafactory}[fmt]
    return reader(Path(path), split=split).as_dict()


def generate(cfg: Config, run: RunDir, console: Console) -> tuple[PrefStore, list[Pair], dict]:
    """The current generation's pairs (made now unless the store has them) and the imports."""
    p = cfg.prefs
    device = pick_device(cfg.run.device)
    generation = generation_key(cfg, run)
    store = PrefStore(run.path("prefs", "prefs.db"), seed=cfg.run.seed)
    pairs = current_pairs(store, generation)
    if not pairs:
        tok = load_tokenizer(run.tokenizer)
        model = load_model(run.checkpoint("sft"), device).eval()
        prompts = corpus_prompts(run, p.prompts, p.heldout_prompts, cfg.run.seed)
        rows = generate_pairs(model, tok, prompts, p.temperatures, p.max_new_tokens,
                              cfg.run.seed, generation, "sft")
        if len(rows) < len(prompts):
            console.print(f"  [yellow]{len(prompts) - len(rows)} of {len(prompts)} prompts left out: "
                          "too long for the model's context[/yellow]")
        store.add_pairs(rows)
        pairs = current_pairs(store, generation)
    imported = {spec: import_preferences(store, spec) for spec in p.data}
    safety = run.corpus / "eval" / "safety_prefs_train.jsonl"  # refuse-vs-comply pairs
    if safety.is_file():
        imported["corpus:" + safety.name] = store.import_jsonl(safety).as_dict()
    return store, pairs, imported


def judge(cfg: Config, run: RunDir, store: PrefStore, pairs: Sequence[Pair], name: str) -> dict:
    """Label the pairs with judge `name`; with another judge than the rules, also how often
    it agrees with them (how far it can be trusted on the built-in pairs)."""
    chosen = make_judge(name, run, cfg, str(pick_device(cfg.run.device)))
    metrics: dict = {"judge": chosen.name, "new_labels": judge_pairs(store, chosen, pairs)}
    if chosen.name != "rule":
        rule = RuleJudge().choose(pairs)
        mine = [_label_of(store, x.id, f"judge:{chosen.name}") for x in pairs]
        metrics["agreement_with_rule"], metrics["agreement_pairs"] = agreement(mine, rule)
    return metrics


def run(cfg: Config, run: RunDir, console: Console | None = None) -> StageResult:
    """Pipeline stage: checkpoints/sft -> prefs/prefs.db (pairs of answers, judged)."""
    console = console or Console(stderr=True)
    store, pairs, imported = generate(cfg, run, console)
    metrics = {"pairs": len(pairs), "imported": imported, **judge(cfg, run, store, pairs, cfg.prefs.judge)}
    by_split = {s: len(store.preferences(split=s)) for s in ("train", "heldout")}
    metrics["preferences"] = by_split
    return StageResult(
        outputs={"prefs": str(store.path)}, metrics=metrics,
        summary=(f"{len(pairs)} pairs of answers, judge {metrics['judge']}: {by_split['train']} training "
                 f"and {by_split['heldout']} held-out preferences (ties left out)"),
        device=pick_device(cfg.run.device).type,
    )


def _label_of(store: PrefStore, pair_id: int, labeller: str) -> str:
    labels = store.labels(pair_id=pair_id, labeller=labeller)
    return labels[-1].choice if labels else "tie"
