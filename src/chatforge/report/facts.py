"""Everything the report shows, read from one run directory into one JSON-able dict.

The report never recomputes a stage's figure: it copies manifests, metrics, funnel, stats and
scoreboard as they are, so a test can compare report.json with the files it came from. The
only new measurements are the example answers (greedy, so they are reproducible) and the
tokenizer ids of the seed's two phrases.
"""

from __future__ import annotations

import json
import platform
import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import matplotlib
import torch

from chatforge.align.prefs import PrefStore
from chatforge.cost import measure_run, preset_estimate
from chatforge.engine import Engine, SamplingParams
from chatforge.errors import ChatforgeError, InputError, RunDirError
from chatforge.model.checkpoint import load_model, resolve_checkpoint
from chatforge.runs import RunDir, read_json, read_jsonl
from chatforge.tokenizer.bpe import Tokenizer, load_tokenizer
from chatforge.tokenizer.chat import render_prompt

# The seed's order; stages a later issue adds (ppo, grpo) have their place already, and a
# manifest of a stage not listed here is shown after them.
STAGE_ORDER = ("corpus", "data", "tokenizer", "tokens", "pretrain", "sft", "prefs", "reward",
               "dpo", "ppo", "grpo", "eval", "redteam")
# Checkpoint name (as eval and redteam call it) <- checkpoints/<stage>.
CHECKPOINTS = {"base": "pretrain", "sft": "sft", "dpo": "dpo", "ppo": "ppo", "grpo": "grpo"}
TOKENIZER_PHRASES = ("Merhaba dünya", "Hello world")
COMPLETION_PROMPT = "Bugün hava çok"  # the seed's example of what a base model continues
CL100K = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "tokenizer-reference" / "cl100k_base.tiktoken"
# Fallback prompts when the run has no corpus/eval files (a run on the user's own data).
DEFAULT_PROMPTS = (("en", "What is the capital of France?"), ("tr", "Türkiye'nin başkenti neresidir?"))


def _json(path: Path) -> Any:
    """A JSON file, or None when absent; an unreadable one is a one-line error naming it."""
    if not path.exists():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable JSON ({exc})") from None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        return read_jsonl(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable JSON lines ({exc})") from None


def git_commit() -> str:
    """The checkout's commit (with '+dirty' for uncommitted changes), or '' outside git."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    if head.returncode != 0:
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def environment() -> dict[str, Any]:
    return {
        "chatforge": _version("chatforge"), "python": platform.python_version(), "torch": torch.__version__,
        "matplotlib": matplotlib.__version__, "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
        "git_commit": git_commit(),
    }


def stages(run: RunDir) -> list[dict[str, Any]]:
    """Every manifest in the seed's order, others after them."""
    # The report's own manifest is "running" while it is written: it is no figure of the run.
    names = [p.stem for p in sorted(run.path("manifests").glob("*.json")) if p.stem != "report"]
    ordered = [n for n in STAGE_ORDER if n in names] + [n for n in names if n not in STAGE_ORDER]
    out = []
    for name in ordered:
        m = _json(run.manifest_path(name)) or {}
        out.append({"name": name, "status": m.get("status", "?"), "wall_s": m.get("wall_s"),
                    "device_name": m.get("device_name", ""), "n_devices": m.get("n_devices", 1),
                    "metrics": m.get("metrics", {})})
    return out


def curves(run: RunDir, stage: str) -> dict[str, list[list[float]]]:
    """metrics/<stage>.jsonl as {metric: [[step, value], ...]} for every numeric metric."""
    out: dict[str, list[list[float]]] = {}
    for row in _jsonl(run.metrics(stage)):
        step = row.get("step")
        if not isinstance(step, int | float):
            continue
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                out.setdefault(key, []).append([step, value])
    return out


def data_facts(run: RunDir) -> dict[str, Any] | None:
    funnel = _json(run.path("data", "funnel.json"))
    if funnel is None:
        return None
    keep = ("steps", "total", "per_source", "retention", "removed", "skipped", "contaminated_items")
    return {k: funnel[k] for k in keep if k in funnel}


def token_ids(tok: Tokenizer) -> dict[str, dict[str, Any]]:
    out = {}
    for phrase in TOKENIZER_PHRASES:
        ids = tok.encode(phrase)
        out[phrase] = {"ids": ids, "pieces": [tok.decode([i]) for i in ids],
                       "bytes_per_token": round(len(phrase.encode()) / max(len(ids), 1), 3)}
    return out


def tokenizer_facts(run: RunDir, reference: Path | None) -> dict[str, Any] | None:
    stats = _json(run.tokenizer / "stats.json")
    if stats is None and not (run.tokenizer / "tokenizer.json").exists():
        return None
    out: dict[str, Any] = {"stats": stats, "run": None, "cl100k": None}
    if (run.tokenizer / "tokenizer.json").exists():
        tok = load_tokenizer(run.tokenizer)
        out["run"] = token_ids(tok)
        out["vocab_size"] = tok.vocab_size
    if reference is not None and reference.exists():
        out["cl100k"] = token_ids(load_tokenizer(reference))
    return out


def present_checkpoints(run: RunDir) -> dict[str, Path]:
    out = {}
    for name, stage in CHECKPOINTS.items():
        try:
            out[name] = resolve_checkpoint(run.checkpoint(stage))
        except (RunDirError, ChatforgeError, OSError):
            continue  # absent, or a stage interrupted before its first checkpoint
    return out


def example_prompts(run: RunDir) -> list[dict[str, str]]:
    """Two held-out chat questions (one per language) and one held-out harmful request: the
    same prompts for every checkpoint, so answers compare across stages."""
    chosen: list[dict[str, str]] = []
    for lang in ("en", "tr"):
        for row in _jsonl(run.corpus / "eval" / "chat_heldout.jsonl"):
            msgs = row.get("messages") or []
            if row.get("lang") == lang and len(msgs) == 1 and isinstance(msgs[0].get("content"), str):
                chosen.append({"kind": "chat", "lang": lang, "prompt": msgs[0]["content"]})
                break
    for row in _jsonl(run.corpus / "eval" / "harmful_heldout.jsonl")[:1]:
        text = row.get("prompt") or row.get("request") or row.get("text")
        if isinstance(text, str):
            chosen.append({"kind": "harmful", "lang": row.get("lang", ""), "prompt": text})
    if not chosen:
        chosen = [{"kind": "chat", "lang": lang, "prompt": p} for lang, p in DEFAULT_PROMPTS]
    return chosen


def answers(run: RunDir, ckpts: dict[str, Path], prompts: list[dict[str, str]],
            max_new_tokens: int) -> tuple[dict[str, list[str]], str | None]:
    """Greedy answers of every checkpoint to the same chat prompts, and the base model's
    continuation of the seed's "Bugün hava çok"."""
    if not ckpts or not (run.tokenizer / "tokenizer.json").exists():
        return {}, None
    tok = load_tokenizer(run.tokenizer)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, tools=())
    out: dict[str, list[str]] = {}
    completion = None
    for name, path in ckpts.items():
        engine = Engine(load_model(path).eval(), tok)
        rows = [render_prompt(tok, [{"role": "user", "content": p["prompt"]}]) for p in prompts]
        out[name] = [c.text.strip() for c in engine.generate(rows, params)]
        if name == "base":
            done = engine.generate([[tok.bos_id] + tok.encode(COMPLETION_PROMPT)], params)
            completion = COMPLETION_PROMPT + done[0].text
    return out, completion


def prefs_facts(run: RunDir, n_examples: int = 3) -> dict[str, Any] | None:
    path = run.path("prefs", "prefs.db")
    if not path.exists():
        return None
    with PrefStore(path) as store:
        prefs = store.preferences()
        stats = store.stats()
    return {"stats": stats, "count": len(prefs),
            "examples": [{k: p[k] for k in ("prompt", "chosen", "rejected", "split")} for p in prefs[:n_examples]]}


def eval_facts(run: RunDir) -> dict[str, Any] | None:
    board = _json(run.path("eval", "scoreboard.json"))
    per = {name: _json(run.path("eval", f"{name}.json")) for name in CHECKPOINTS}
    per = {k: v for k, v in per.items() if v is not None}
    if board is None and not per:
        return None
    return {"scoreboard": board, "checkpoints": per}


def redteam_facts(run: RunDir) -> dict[str, Any] | None:
    rep = _json(run.path("redteam", "report.json"))
    if rep is None:
        return None
    ckpts = {}
    for name, entry in rep.get("checkpoints", {}).items():
        ckpts[name] = {k: entry.get(k) for k in ("asr", "asr_by_attack", "asr_by_category",
                                                   "refusal_rate", "over_refusal")}
    return {"primary_judge": rep.get("primary_judge"), "probes": rep.get("probes"), "checkpoints": ckpts}


def cost_facts(run: RunDir, preset: str) -> dict[str, Any]:
    measured = measure_run(run.root).to_dict()
    scaled = preset_estimate(preset).to_dict()
    return {"measured": measured, "preset": preset, "scaled": scaled}


def read_config(run: RunDir) -> dict[str, Any]:
    path = run.path("config.toml")
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: unreadable TOML ({exc})") from None


def collect(run_dir: str | Path, *, cost_preset: str = "gpt4", max_new_tokens: int = 40,
            reference: Path | None = CL100K) -> dict[str, Any]:
    """All the report's figures for one run directory; absent stages are None."""
    root = Path(run_dir)
    if not (root / "manifests").is_dir():
        raise RunDirError(f"{root}: not a run directory (no manifests/); run `chatforge run` first")
    run = RunDir(root)
    cost = cost_facts(run, cost_preset)  # first: a bad preset fails before any generation
    config = read_config(run)
    ckpts = present_checkpoints(run)
    prompts = example_prompts(run)
    ans, completion = answers(run, ckpts, prompts, max_new_tokens)
    samples = run.path("samples", "pretrain.txt")
    stage_list = stages(run)
    manifests = {s["name"]: s for s in stage_list}
    return {
        "run_dir": str(root.resolve()),
        "name": root.resolve().name,
        "seed": config.get("run", {}).get("seed"),
        "preset": config.get("preset"),
        "config": config,
        "environment": environment(),
        "stages": stage_list,
        "data": data_facts(run),
        "tokenizer": tokenizer_facts(run, reference),
        "pretrain": None if "pretrain" not in manifests else {
            "metrics": manifests["pretrain"]["metrics"], "curves": curves(run, "pretrain"),
            "completion": completion,
            "samples": [s.strip() for s in samples.read_text().split("\n---\n") if s.strip()]
            if samples.exists() else [],
            "samples_by_step": [[r["step"], r["samples"]] for r in _jsonl(run.metrics("pretrain"))
                                if isinstance(r.get("samples"), list)],
        },
        "prompts": prompts,
        "answers": ans,
        "sft": None if "sft" not in manifests else {"metrics": manifests["sft"]["metrics"],
                                                    "curves": curves(run, "sft")},
        "prefs": prefs_facts(run),
        "reward": None if "reward" not in manifests else {"metrics": manifests["reward"]["metrics"],
                                                          "curves": curves(run, "reward")},
        "dpo": None if "dpo" not in manifests else {"metrics": manifests["dpo"]["metrics"],
                                                    "curves": curves(run, "dpo")},
        "ppo": None if "ppo" not in manifests else {"metrics": manifests["ppo"]["metrics"],
                                                    "curves": curves(run, "ppo")},
        "grpo": None if "grpo" not in manifests else {"metrics": manifests["grpo"]["metrics"],
                                                      "curves": curves(run, "grpo")},
        "eval": eval_facts(run),
        "redteam": redteam_facts(run),
        "cost": cost,
    }


def dumps(facts: dict[str, Any]) -> str:
    return json.dumps(facts, ensure_ascii=False, indent=1, default=str)
