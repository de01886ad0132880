"""lm-evaluation-harness on the exported model predicts, item by item, what chatforge's own
harness predicts on the chatforge model: MMLU (2 subjects, 5-shot) and TruthfulQA MC1/MC2.

lm-eval runs offline on local files (task YAMLs with dataset_path json and local data_files,
written from the items chatforge's readers parsed, so both see the same strings) and the HF
export, with add_bos_token=True as chatforge's base-model prompts start with <|bos|>."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
lm_eval = pytest.importorskip("lm_eval")

from conftest import shared_file  # noqa: E402

from chatforge.eval.harness import EvalModel  # noqa: E402
from chatforge.eval.tasks import mmlu, truthfulqa  # noqa: E402
from chatforge.model.gpt import GPT, GPTConfig  # noqa: E402
from chatforge.model.hf import export_hf  # noqa: E402
from chatforge.tokenizer.bpe import train_bpe  # noqa: E402

SUBJECTS = ("abstract_algebra", "anatomy")
LIMIT = 6  # items per task: enough to compare predictions, small enough for a CPU


def _subset(split: mmlu.Split) -> mmlu.Split:
    out = mmlu.Split()
    for s in SUBJECTS:
        out.by_subject[s] = split.by_subject[s]
    return out


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _yaml(path, spec: dict) -> None:
    path.write_text(json.dumps(spec), encoding="utf-8")  # JSON is YAML


def _mmlu_task(tmp, subject: str, test: list[mmlu.Item], dev: list[mmlu.Item]) -> str:
    rows = lambda items: [{"question": i.question, "choices": i.choices, "answer": i.answer} for i in items]  # noqa: E731
    name = f"cf_mmlu_{subject}"
    _yaml(tmp / f"{name}.yaml", {
        "task": name, "dataset_path": "json", "output_type": "multiple_choice",
        "dataset_kwargs": {"data_files": {"test": _write_jsonl(tmp / f"{name}_test.jsonl", rows(test)),
                                          "dev": _write_jsonl(tmp / f"{name}_dev.jsonl", rows(dev))}},
        "test_split": "test", "fewshot_split": "dev", "fewshot_config": {"sampler": "first_n"},
        "num_fewshot": 5, "description": mmlu.description(subject),
        "doc_to_text": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
        "doc_to_choice": ["A", "B", "C", "D"], "doc_to_target": "answer",
        "target_delimiter": " ", "fewshot_delimiter": "\n\n", "metric_list": [{"metric": "acc"}],
    })
    return name


def _tqa_task(tmp, which: str, items: list[truthfulqa.Item]) -> str:
    name = f"cf_truthfulqa_{which}"
    rows = [{"prompt": f"{truthfulqa.PRIMER}\n\nQ: {it.question}\nA:",
             "choices": getattr(it, which)[0], "gold": getattr(it, which)[1].index(1)} for it in items]
    _yaml(tmp / f"{name}.yaml", {
        "task": name, "dataset_path": "json", "output_type": "multiple_choice",
        "dataset_kwargs": {"data_files": {"test": _write_jsonl(tmp / f"{name}.jsonl", rows)}},
        "test_split": "test", "num_fewshot": 0, "doc_to_text": "{{prompt}}",
        "doc_to_choice": "{{choices}}", "doc_to_target": "gold", "target_delimiter": " ",
        "metric_list": [{"metric": "acc"}],
    })
    return name


def _logliks(samples: list[dict]) -> dict[int, list[float]]:
    """{doc_id: log-likelihood per choice} from lm-eval's logged samples."""
    return {s["doc_id"]: [float(r[0]) for r in s["filtered_resps"]] for s in samples}


@pytest.mark.slow
def test_lm_eval_predicts_what_chatforge_predicts(tmp_path):
    root = shared_file("mmlu")
    tqa_path = shared_file("truthfulqa", "mc_task.json")
    test, dev = _subset(mmlu.load(root, "test")), _subset(mmlu.load(root, "dev"))
    qs = truthfulqa.read(tqa_path)
    qs.items = qs.items[:LIMIT]
    texts = [f"{i.question} {' '.join(i.choices)}" for s in (test, dev) for v in s.by_subject.values() for i in v]
    texts += [f"{it.question} {' '.join(it.mc2[0])}" for it in qs.items] + [truthfulqa.PRIMER]
    tok = train_bpe(texts, vocab_size=1500)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=2, n_embd=64, n_head=4, n_kv_head=2,
                          seq_len=4096, qk_norm=True)).eval()
    export_hf(model, tok, tmp_path / "hf")

    em = EvalModel(model, tok, style="base", batch_size=8)
    ours_mmlu = mmlu.score(em, test, dev, shots=5, limit=LIMIT)
    ours_tqa = truthfulqa.score(em, qs)

    tasks = [_mmlu_task(tmp_path, s, test.by_subject[s][:LIMIT], dev.by_subject[s]) for s in SUBJECTS]
    tasks += [_tqa_task(tmp_path, "mc1", qs.items), _tqa_task(tmp_path, "mc2", qs.items)]
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={tmp_path / 'hf'},dtype=float32,add_bos_token=True",
        tasks=tasks, task_manager=lm_eval.tasks.TaskManager(include_path=str(tmp_path)),
        device="cpu", batch_size=8, log_samples=True,
    )
    theirs = {t: _logliks(out["samples"][t]) for t in tasks}

    position: dict[str, int] = {}
    for row in ours_mmlu.rows:  # lm-eval numbers each subject's items from 0, in file order
        subject = row["task"].split("/", 1)[1]
        position[subject] = position.get(subject, -1) + 1
        lls = theirs[f"cf_mmlu_{subject}"][position[subject]]
        assert mmlu.LETTERS[max(range(4), key=lls.__getitem__)] == row["pred"], row
        assert max(abs(a - b) for a, b in zip(lls, row["loglik"], strict=True)) < 1e-3
    for k, row in enumerate(ours_tqa.rows):
        mc1, mc2 = theirs["cf_truthfulqa_mc1"][k], theirs["cf_truthfulqa_mc2"][k]
        assert qs.items[k].mc1[0][max(range(len(mc1)), key=mc1.__getitem__)] == row["pred"], row
        assert math.isclose(truthfulqa.mc2_score(mc2, qs.items[k].mc2[1]), row["mc2"], abs_tol=1e-4)
