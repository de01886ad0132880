"""`chatforge eval` and the pipeline's `eval` stage: tasks per checkpoint, rows, scoreboard.

Checkpoint names map to stage directories (base = checkpoints/pretrain, sft, dpo, ppo, grpo).
The base model is prompted as a base model (few-shot plain text), every later checkpoint as a
chat model (zero-shot, chat template). Results land in fixed places that other stages and the
report read: `eval/<checkpoint>.json` (metrics per task, merged into what is there: the SFT
stage keeps its own keys in eval/sft.json), `eval/<checkpoint>/<task>.jsonl` (one row per item)
and `eval/scoreboard.json` (the built-in held-out figures per checkpoint; keys are merged, so
later stages may add theirs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chatforge.align.ppo import reward_and_kl
from chatforge.answer_memo import remembered
from chatforge.config import Config
from chatforge.device import pick_device
from chatforge.engine import SamplingParams
from chatforge.errors import ConfigError, InputError, RunDirError
from chatforge.eval import humaneval
from chatforge.eval.facts import answer_matches, read_fact_questions
from chatforge.eval.harness import (
    EvalModel,
    TaskResult,
    add_metric,
    generate,
    prompt_hash,
    write_rows,
)
from chatforge.eval.refusal import is_refusal
from chatforge.eval.tasks import code, gsm8k, mmlu, ppl, truthfulqa
from chatforge.model.checkpoint import load_model, resolve_checkpoint
from chatforge.runs import RunDir, atomic_write_json, read_json
from chatforge.stage import StageResult
from chatforge.tokenizer.bpe import load_tokenizer

CHECKPOINTS = {"base": "pretrain", "sft": "sft", "dpo": "dpo", "ppo": "ppo", "grpo": "grpo"}
TASKS = ("mmlu", "gsm8k", "humaneval", "truthfulqa", "ppl", "builtin")
BUILTIN = ("qa", "mc", "word_problems", "code", "truthful", "refusal", "over_refusal")
# scoreboard key <- (task, metric)
SCOREBOARD = {
    "qa_exact_match": ("builtin_qa", "exact_match"),
    "word_problem_accuracy": ("builtin_word_problems", "exact_match_flexible"),
    "mc_accuracy": ("builtin_mc", "acc"),
    "code_pass@1": ("builtin_code", "pass@1"),
    "truthful_mc1": ("builtin_truthful", "mc1"),
    "refusal_rate": ("builtin_refusal", "refusal_rate"),
    "over_refusal": ("builtin_over_refusal", "refusal_rate"),
}
REPLY_TOKENS = 48  # a fact answer or a refusal needs no more


def present_checkpoints(run: RunDir) -> list[str]:
    """Checkpoint names whose stage directory holds a checkpoint, in pipeline order."""
    out = []
    for name, stage in CHECKPOINTS.items():
        try:
            resolve_checkpoint(run.checkpoint(stage))
        except RunDirError:
            continue
        out.append(name)
    return out


def _under(data_dir: Path | None, task: str, *names: str) -> Path:
    """A task's files: DIR/<name> for the first name that exists, else DIR itself."""
    if data_dir is None:
        raise ConfigError(f"--tasks {task}: needs --data-dir (a folder in the official layout)")
    for name in names:
        if (data_dir / name).exists():
            return data_dir / name
    return data_dir


def _first_file(root: Path, patterns: Sequence[str], task: str) -> Path:
    if root.is_file():
        return root
    for pattern in patterns:
        found = sorted(root.rglob(pattern))
        if found:
            return found[0]
    raise InputError(f"{root}: no {task} file ({', '.join(patterns)})")


def _builtin(em: EvalModel, corpus: Path, limit: int | None, shots: int | None, samples: int,
             ) -> dict[str, TaskResult]:
    """Every built-in set the corpus wrote, scored by the same code as the real benchmarks."""
    ev = corpus / "eval"
    small = _with(em, max_new_tokens=REPLY_TOKENS)
    out = {"builtin_qa": _facts(small, read_fact_questions(corpus / "facts_heldout.jsonl")[:limit])}
    if (ev / "mc" / "test").is_dir():
        out["builtin_mc"] = mmlu.score(em, mmlu.load(ev / "mc", "test"), mmlu.load(ev / "mc", "dev"),
                                       shots=5 if shots is None else shots, limit=limit, name="builtin_mc")
    if (ev / "word_problems" / "test.jsonl").is_file():
        wp = ev / "word_problems"
        out["builtin_word_problems"] = gsm8k.score(
            em, gsm8k.read(wp / "test.jsonl"), gsm8k.read(wp / "train.jsonl"),
            shots=3 if shots is None else shots, limit=limit, name="builtin_word_problems")
    if (ev / "code" / "test.jsonl").is_file():
        problems = humaneval.load_problems(ev / "code" / "test.jsonl").items
        out["builtin_code"] = code.score(em, problems, samples=samples, limit=limit, name="builtin_code")
    if (ev / "truthful" / "mc_task.json").is_file():
        out["builtin_truthful"] = truthfulqa.score(em, truthfulqa.read(ev / "truthful" / "mc_task.json"),
                                                   limit=limit, name="builtin_truthful")
    for task, stem in (("builtin_refusal", "harmful_heldout"), ("builtin_over_refusal", "benign_heldout")):
        if (ev / f"{stem}.jsonl").is_file():
            out[task] = _refusals(small, _spread(_prompts(ev / f"{stem}.jsonl"), limit), task)
    return out


def _with(em: EvalModel, **changes: Any) -> EvalModel:
    return EvalModel(**({k: getattr(em, k) for k in ("model", "tok", "style", "batch_size", "max_new_tokens",
                                                      "seed")} | changes))


def _facts(em: EvalModel, questions: list[dict]) -> TaskResult:
    """Held-out fact questions: a chat turn for chat models, "Question: ..\\nAnswer:" for base
    models (their natural format), exact match as in chatforge.eval.facts."""
    if em.style == "chat":
        prompts, params = [em.prompt(q["question"]) for q in questions], SamplingParams(max_new_tokens=em.max_new_tokens)
    else:
        prompts = [[em.tok.bos_id] + em.tok.encode(f"Question: {q['question']}\nAnswer:") for q in questions]
        params = SamplingParams(max_new_tokens=em.max_new_tokens, stop=("\n",))
    rows = []
    for i, (q, p, c) in enumerate(zip(questions, prompts, generate(em, prompts, params), strict=True)):
        ok = answer_matches(c.text, q["answer"], ended=c.finish_reason == "stop")
        rows.append({"task": "builtin_qa", "doc_id": i, "prompt_hash": prompt_hash(p), "pred": c.text,
                     "gold": q["answer"], "correct": ok, "lang": q.get("lang")})
    metrics: dict[str, float] = {"n": len(rows)}
    add_metric(metrics, "exact_match", [r["correct"] for r in rows])
    return TaskResult(rows, metrics)


def _prompts(path: Path) -> list[dict]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: record {i}: invalid JSON ({e.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str):
            raise InputError(f"{path}: record {i}: needs a string 'prompt'")
        out.append(rec)
    return out


def _spread(records: list[dict], limit: int | None) -> list[dict]:
    """At most `limit` records taken in turn from each (language, category), in file order:
    the files list English first, so their first rows would be English alone."""
    if limit is None or len(records) <= limit:
        return records
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r.get("lang"), r.get("category")), []).append(r)
    turns = [g[i] for i in range(max(map(len, groups.values()))) for g in groups.values() if i < len(g)]
    return turns[:limit]


def _refusals(em: EvalModel, records: list[dict], task: str) -> TaskResult:
    """Share of requests the model refuses (chatforge.eval.refusal.is_refusal on the reply)."""
    prompts = [em.prompt(r["prompt"]) for r in records]
    params = SamplingParams(max_new_tokens=em.max_new_tokens, stop=("\n\n",) if em.style == "base" else ())
    rows = []
    for i, (r, p, c) in enumerate(zip(records, prompts, generate(em, prompts, params), strict=True)):
        refused = is_refusal(c.text)
        rows.append({"task": task, "doc_id": i, "prompt_hash": prompt_hash(p), "pred": c.text,
                     "gold": "refuse" if task == "builtin_refusal" else "help",
                     "correct": refused == (task == "builtin_refusal"), "refused": refused,
                     "lang": r.get("lang"), "category": r.get("category")})
    metrics: dict[str, float] = {"n": len(rows)}
    add_metric(metrics, "refusal_rate", [r["refused"] for r in rows])
    return TaskResult(rows, metrics)


def evaluate_model(em: EvalModel, tasks: Sequence[str], *, corpus: Path | None, data_dir: Path | None,
                   limit: int | None = None, shots: int | None = None, samples: int = 1) -> dict[str, TaskResult]:
    """Run `tasks` (names of TASKS) on one model; the real benchmarks read `data_dir`."""
    out: dict[str, TaskResult] = {}
    for task in tasks:
        if task == "builtin":
            if corpus is None or not (corpus / "facts_heldout.jsonl").is_file():
                raise RunDirError("--tasks builtin: needs a run directory whose corpus stage ran")
            out |= _builtin(em, corpus, limit, shots, samples)
        elif task == "mmlu":
            root = _under(data_dir, task, "mmlu", "data")
            out[task] = mmlu.score(em, mmlu.load(root, "test"), mmlu.load(root, "dev"),
                                   shots=5 if shots is None else shots, limit=limit)
        elif task == "gsm8k":
            root = _under(data_dir, task, "gsm8k")
            test, train = gsm8k.find(root, "test"), gsm8k.find(root, "train")
            if test is None:
                raise InputError(f"{root}: no GSM8K test.jsonl or test-*.parquet")
            out[task] = gsm8k.score(em, gsm8k.read(test), gsm8k.read(train) if train else None,
                                    shots=5 if shots is None else shots, limit=limit)
        elif task == "humaneval":
            path = _first_file(_under(data_dir, task, "humaneval"),
                               ("HumanEval.jsonl.gz", "HumanEval.jsonl", "*.parquet"), task)
            out[task] = code.score(em, humaneval.load_problems(path).items, samples=samples, limit=limit)
        elif task == "truthfulqa":
            path = _first_file(_under(data_dir, task, "truthfulqa"),
                               ("mc_task.json", "*multiple_choice*", "*.parquet"), task)
            out[task] = truthfulqa.score(em, truthfulqa.read(path), limit=limit)
        elif task == "ppl":
            root = _under(data_dir, task)
            files = [root] if root.is_file() else sorted(root.glob("*.txt"))
            if not files:
                raise InputError(f"{root}: no *.txt file for --tasks ppl")
            for f in files:
                out[f"ppl/{f.stem}"] = ppl.score(em, f, limit=limit)
        else:
            raise ConfigError(f"--tasks: unknown task {task!r} (tasks: {', '.join(TASKS)})")
    return out


def write_results(eval_dir: Path, checkpoint: str, results: dict[str, TaskResult]) -> dict[str, dict[str, float]]:
    """Rows per task and eval/<checkpoint>.json (merged with its other keys); the metrics."""
    summary = {task: r.metrics for task, r in results.items()}
    for task, r in results.items():
        write_rows(eval_dir / checkpoint / f"{task.replace('/', '_')}.jsonl", r.rows)
    path = eval_dir / f"{checkpoint}.json"
    existing = read_json(path) if path.is_file() else {}
    atomic_write_json(path, _finite(existing | summary))
    return summary


def scoreboard_entry(summary: dict[str, dict[str, float]]) -> dict[str, float]:
    return {key: summary[task][metric] for key, (task, metric) in SCOREBOARD.items()
            if task in summary and metric in summary[task]}


def update_scoreboard(eval_dir: Path, entries: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Merge these keys into eval/scoreboard.json: other stages' keys (rm_score...) stay."""
    path = eval_dir / "scoreboard.json"
    board = read_json(path) if path.is_file() else {}
    for checkpoint, entry in entries.items():
        board[checkpoint] = {**board.get(checkpoint, {}), **entry}
    atomic_write_json(path, _finite(board))
    return board


def _finite(obj: Any) -> Any:
    """NaN (a standard error of one item) as null: JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def side_by_side(board: dict[str, dict[str, Any]], checkpoints: Sequence[str]) -> Table:
    """The scoreboard as a table, one column per checkpoint."""
    table = Table(title="built-in held-out scores")
    table.add_column("metric")
    for c in checkpoints:
        table.add_column(c, justify="right")
    keys = list(dict.fromkeys(k for c in checkpoints for k in board.get(c, {})))
    for k in keys:
        table.add_row(k, *[_fmt(board.get(c, {}).get(k)) for c in checkpoints])
    return table


def metrics_table(summary: dict[str, dict[str, dict[str, float]]]) -> Table:
    """Headline metrics (no per-subject breakdowns) of every task, one column per checkpoint."""
    names = list(summary)
    table = Table(title="evaluation")
    table.add_column("task")
    table.add_column("metric")
    for n in names:
        table.add_column(n, justify="right")
    rows = dict.fromkeys((t, m) for s in summary.values() for t, ms in s.items() for m in ms
                         if "/" not in m and not m.endswith("_stderr") and m not in ("n", "skipped_rows"))
    for t, m in rows:
        cells = []
        for n in names:
            v, se = summary[n].get(t, {}).get(m), summary[n].get(t, {}).get(f"{m}_stderr")
            cells.append(_fmt(v) + (f" ± {se:.3f}" if isinstance(se, float) and math.isfinite(se) else ""))
        table.add_row(t, m, *cells)
    return table


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def load_for_eval(checkpoint_dir: Path, tokenizer_dir: Path, style: str, device: str, batch_size: int,
                  max_new_tokens: int, seed: int) -> EvalModel:
    model = load_model(checkpoint_dir, pick_device(device)).eval()
    return EvalModel(model, load_tokenizer(tokenizer_dir), style, batch_size, max_new_tokens, seed)


def style_of(checkpoint: str) -> str:
    return "base" if checkpoint in ("base", "pretrain") else "chat"


def run(cfg: Config, run: RunDir, console: Console | None = None) -> StageResult:
    """Pipeline stage: every checkpoint present, on the built-in sets -> eval/scoreboard.json.
    Answers the training stages already gave (same model, prompt and settings) are looked up."""
    with remembered(run.answers):
        return _run(cfg, run, console or Console(stderr=True))


def _run(cfg: Config, run: RunDir, console: Console) -> StageResult:
    present = present_checkpoints(run)
    if not present:
        raise RunDirError(f"{run.root}: no checkpoint to evaluate (run pretrain first)")
    e = cfg.eval
    summary, entries = {}, {}
    for name in present:
        em = load_for_eval(run.checkpoint(CHECKPOINTS[name]), run.tokenizer, style_of(name), cfg.run.device,
                           e.batch_size, e.max_new_tokens, cfg.run.seed)
        results = evaluate_model(em, ["builtin"], corpus=run.corpus, data_dir=None, limit=e.limit,
                                 samples=e.samples)
        summary[name] = write_results(run.root / "eval", name, results)
        entries[name] = scoreboard_entry(summary[name])
    # With a reward model: its score of every checkpoint's answers, and the RL ones' KL to SFT.
    for name, extra in reward_and_kl(run, cfg, {n: CHECKPOINTS[n] for n in present}).items():
        entries[name].update(extra)
    board = update_scoreboard(run.root / "eval", entries)
    console.print(side_by_side(board, present))
    head = ", ".join(f"{n} qa {entries[n].get('qa_exact_match', math.nan):.1%}" for n in present)
    return StageResult(outputs={"scoreboard": str(run.root / "eval" / "scoreboard.json")},
                       metrics=_finite(entries), summary=f"built-in held-out: {head}",
                       device=str(em.model.lm_head.weight.device.type))


def _targets(target: Path, checkpoints: Sequence[str]) -> tuple[list[tuple[str, Path]], Path, Path]:
    """(checkpoint name, directory) pairs, the tokenizer dir and the run root of a CLI target."""
    if (target / "checkpoints").is_dir():
        run = RunDir(target)
        present = present_checkpoints(run)
        names = list(checkpoints) or present
        for name in names:
            if name not in CHECKPOINTS:
                raise ConfigError(f"--checkpoints: unknown {name!r} (known: {', '.join(CHECKPOINTS)})")
            if name not in present:
                raise RunDirError(f"{run.checkpoint(CHECKPOINTS[name])}: no {name} checkpoint in this run")
        if not names:
            raise RunDirError(f"{target}: no checkpoint to evaluate")
        return [(n, run.checkpoint(CHECKPOINTS[n])) for n in names], run.tokenizer, target
    weights = resolve_checkpoint(target)
    root = next((p for p in (target, *target.resolve().parents) if (p / "tokenizer").is_dir()), None)
    if root is None:
        raise RunDirError(f"{target}: no tokenizer/ directory beside or above this checkpoint")
    stage = target.name if weights != target.resolve() or (target / "LATEST").is_file() else target.parent.name
    name = next((n for n, s in CHECKPOINTS.items() if s == stage), stage)
    if checkpoints and list(checkpoints) != [name]:
        raise ConfigError(f"--checkpoints: {target} is the {name} checkpoint only")
    return [(name, target)], root / "tokenizer", root


def cli_eval(target: Path, tasks: Sequence[str], checkpoints: Sequence[str], *, data_dir: Path | None,
             limit: int | None, shots: int | None, samples: int, batch_size: int, max_new_tokens: int,
             device: str, console: Console | None) -> dict[str, dict[str, dict[str, Any]]]:
    """`chatforge eval`: every task on every checkpoint named; returns {checkpoint: {task: metrics}}."""
    for t in tasks:
        if t not in TASKS:
            raise ConfigError(f"--tasks: unknown task {t!r} (tasks: {', '.join(TASKS)})")
    if not tasks:
        raise ConfigError("--tasks: name at least one task")
    jobs, tok_dir, root = _targets(Path(target), checkpoints)
    corpus = root / "corpus" if (root / "corpus").is_dir() else None
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name, path in jobs:
        em = load_for_eval(path, tok_dir, style_of(name), device, batch_size, max_new_tokens, seed=1234)
        results = evaluate_model(em, tasks, corpus=corpus, data_dir=data_dir, limit=limit, shots=shots,
                                 samples=samples)
        summary[name] = write_results(root / "eval", name, results)
        if "builtin" in tasks:
            update_scoreboard(root / "eval", {name: scoreboard_entry(summary[name])})
    if console is not None:
        console.print(metrics_table(summary))
    return _finite(summary)
