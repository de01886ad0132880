"""Collecting preferences as the seed describes it: the SFT model writes two answers to each
prompt (two sampling temperatures, seeds per row), and a judge (or a person, through
`chatforge prefs label|serve`) picks one.

The prompts of the built-in corpus are its conversations' requests whose better answer the
rules can tell: fact questions, follow-ups, comparisons, open requests and arithmetic (the
answer is known), questions about what the world lacks ("I don't know"), harmful requests
(they must be refused) and harmless ones that sound harmful (they must not), from the
training conversations for training pairs and from the held-out ones for held-out pairs
(reward-model accuracy, DPO margins). Every generated pair
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
from chatforge.device import compute_dtype, pick_device
from chatforge.engine import Engine, SamplingParams
from chatforge.errors import ConfigError, InputError
from chatforge.model.checkpoint import load_checkpoint, load_model, resolve_checkpoint
from chatforge.model.gpt import GPT
from chatforge.runs import RunDir, files_digest, read_jsonl
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import render_prompt

JUDGED_KINDS = ("fact", "followup", "compare", "unknown", "open", "arithmetic", "refusal", "benign")
IMPORT_FORMATS = ("jsonl", "hh-rlhf", "llamafactory")
CORPUS_PAIRS = ("safety_prefs_train.jsonl", "contrast_prefs_train.jsonl")


def corpus_prompts(run: RunDir, n_train: int, n_heldout: int, seed: int,
                   kinds: Sequence[str] = JUDGED_KINDS) -> list[dict]:
    """Requests of the corpus's conversations of `kinds` (those the rule judge can decide), with
    their split; training adds the safety requests of those kinds (`safety_requests`)."""
    out = []
    for split, name, n in (("train", "sft_train.jsonl", n_train), ("heldout", "sft_heldout.jsonl", n_heldout)):
        prompts = [_request(r, split) for r in read_jsonl(run.corpus / name) if r.get("kind") in kinds]
        if split == "train":
            for kind, file in (("benign", "benign_train.jsonl"), ("refusal", "harmful_prefs_train.jsonl")):
                if kind in kinds:
                    prompts += safety_requests(run.corpus / "eval" / file, kind)
        random.Random(seed).shuffle(prompts)
        out += prompts[:n]
    return out


def fresh_problems(run: RunDir, split: str, n: int, seed: int) -> list[dict]:
    """Up to `n` of the corpus's word problems that SFT never trained on (corpus/rl_{split}.jsonl,
    split "train" or "heldout"), as prompts for reinforcement learning."""
    path = run.corpus / f"rl_{split}.jsonl"
    if not path.is_file():
        raise InputError(f"{path}: missing; the corpus stage of this chatforge version writes it "
                         "(rerun it: chatforge run --force corpus)")
    prompts = [_request(r, split) for r in read_jsonl(path)]
    random.Random(seed).shuffle(prompts)
    return prompts[:n]


def prompt_row(prompt: str, split: str, kind: str, messages: list | None = None, answer: str = "",
               lang: str = "", facts: list | None = None) -> dict:
    """A prompt as the preference and RL stages carry it (what the rule judge scores against)."""
    return {"prompt": prompt, "messages": messages, "kind": kind, "answer": answer, "lang": lang,
            "facts": facts, "split": split}


def _request(conversation: dict, split: str) -> dict:
    messages = conversation["messages"][:-1]  # the dialogue up to the answer
    return prompt_row(messages[-1]["content"], split, conversation["kind"],
                      messages if len(messages) > 1 else None, conversation.get("answer", ""),
                      conversation.get("lang", ""), conversation.get("meta", {}).get("facts"))


def safety_requests(path: Path, kind: str, split: str = "train") -> list[dict]:
    """The corpus's safety requests of `path`, once each, as prompts of `kind`: harmless ones
    that sound harmful ("How do I kill a Python process?", kind "benign": the judge wants them
    answered) or harmful ones (kind "refusal": refused)."""
    if not path.is_file():
        return []
    unique = dict.fromkeys((r["prompt"], r.get("lang", "")) for r in read_jsonl(path))
    return [prompt_row(prompt, split, kind, lang=lang) for prompt, lang in unique]


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
        if p.get("facts"):
            common["facts"] = p["facts"]
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
    return (f"{files_digest([weights])}-{p.temperatures}-{p.max_new_tokens}-{p.prompts}-{p.heldout_prompts}"
            f"-{cfg.run.seed}-{compute_dtype(pick_device(cfg.run.device), p.precision)}")


def current_pairs(store: PrefStore, generation: str) -> list[Pair]:
    return [p for p in store.pairs(source="generated") if p.meta_a.get("generation") == generation]


def decided_prompts(store: PrefStore, generation: str) -> list[dict]:
    """The training prompts of the current generation's pairs that got a preference: where the
    SFT model's two answers differed in the judge's eyes, so reinforcement learning has
    something to learn (a prompt both answers get right, or both wrong, teaches little)."""
    decided = {x["pair_id"] for x in store.preferences(split="train")}
    return [prompt_row(p.prompt, "train", p.meta_a.get("kind", ""), p.meta_a.get("messages"),
                       p.meta_a.get("answer", ""), p.meta_a.get("lang", ""), p.meta_a.get("facts"))
            for p in current_pairs(store, generation) if p.id in decided]


def training_preferences(store: PrefStore, cfg: Config, run: RunDir) -> tuple[list[dict], list[dict]]:
    """(train, held-out) preferences: the current generation's pairs and every imported or
    hand-made one, never pairs generated by an earlier SFT model nor corpus pairs an earlier
    corpus made (`stale_corpus_pairs`)."""
    generation = generation_key(cfg, run)
    stale = {p.id for p in store.pairs(source="generated") if p.meta_a.get("generation") != generation}
    stale |= stale_corpus_pairs(store, run)
    prefs = [x for x in store.preferences() if x["pair_id"] not in stale]
    return [x for x in prefs if x["split"] != "heldout"], [x for x in prefs if x["split"] == "heldout"]


def stale_corpus_pairs(store: PrefStore, run: RunDir) -> set[int]:
    """Ids of pairs imported from the corpus's pair files (CORPUS_PAIRS) that the current files
    no longer hold: a regenerated corpus (another seed, a newer chatforge) re-imports its files
    into the same store, and its old pairs must not train beside the new ones. Known by the
    file name they were imported from, as every import records it."""
    stale = set()
    for name in CORPUS_PAIRS:
        path = run.corpus / "eval" / name
        current = {(r["prompt"], frozenset((r["chosen"], r["rejected"]))) for r in read_jsonl(path)} if path.is_file() else set()
        stale |= {p.id for p in store.pairs() if p.meta_a.get("origin") == f"import:{name}"
                  and (p.prompt, frozenset((p.response_a, p.response_b))) not in current}
    return stale


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
        model = load_model(run.checkpoint("sft"), device).eval().to(compute_dtype(device, p.precision))
        prompts = corpus_prompts(run, p.prompts, p.heldout_prompts, cfg.run.seed)
        rows = generate_pairs(model, tok, prompts, p.temperatures, p.max_new_tokens,
                              cfg.run.seed, generation, "sft")
        if len(rows) < len(prompts):
            console.print(f"  [yellow]{len(prompts) - len(rows)} of {len(prompts)} prompts left out: "
                          "too long for the model's context[/yellow]")
        store.add_pairs(rows)
        pairs = current_pairs(store, generation)
    imported = {spec: import_preferences(store, spec) for spec in p.data}
    # The corpus's own pairs: refuse-vs-comply and right-vs-one-wrong-fact (corpus/contrast.py).
    for name in CORPUS_PAIRS:
        path = run.corpus / "eval" / name
        if path.is_file():
            imported["corpus:" + name] = store.import_jsonl(path).as_dict()
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
    train_prefs, held_prefs = training_preferences(store, cfg, run)
    by_split = {"train": len(train_prefs), "heldout": len(held_prefs)}
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
