"""The shared training loop's contract: metrics from the loss, micro-batch indices, task state,
the between-steps hook, one-switch checkpoints, and which changed settings may resume."""

from __future__ import annotations

import json
import time

import pytest
import torch

from chatforge.config import TrainConfig
from chatforge.errors import ChatforgeError
from chatforge.model.checkpoint import LATEST, load_checkpoint
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.train.loop import TrainTask, identity, micro_rng, train


def _model(vocab: int = 50) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, n_layer=1, n_embd=32, n_head=2, n_kv_head=2, seq_len=16))


def _lm_task(model: GPT, vocab: int = 50, **kw) -> TrainTask:
    return TrainTask(
        model=model,
        train_batch=lambda g, step, micro: (torch.randint(0, vocab, (2, 17), generator=g),),
        loss_fn=lambda m, b: (m(b[0][:, :-1], targets=b[0][:, 1:]), {}),
        tokens_per_batch=32, flops_per_token=1.0, **kw,
    )


def _train(task, cfg, out, restart=False, ident=None):
    return train(task, cfg, out, out / "metrics.jsonl", seed=0, ident=ident or identity(cfg),
                 restart=restart)


def _latest(out):
    return out / (out / LATEST).read_text().strip()


def test_budget_spent_during_evaluation_still_evaluates_and_saves_the_last_step(tmp_path):
    evaluated = []

    def slow_eval(m):
        evaluated.append(len(evaluated))
        time.sleep(0.6)  # longer than the whole budget: the loop ends right after it
        return {"val_loss": 1.0}

    cfg = TrainConfig(max_steps=10**6, time_budget=0.5, eval_every=2, checkpoint_every=1000, log_every=1000)
    result = _train(_lm_task(_model(), evaluate=slow_eval), cfg, tmp_path)
    assert json.loads((_latest(tmp_path) / "trainer.json").read_text())["step"] == result.steps
    assert result.eval == {"val_loss": 1.0}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("step-")] == [_latest(tmp_path).name]


def test_compiled_training_matches_eager(tmp_path):
    """`compile = true` (the GPU presets' and the pre-training bench's) trains the same model as
    eager mode. In fp32: under bf16 autocast (precision auto on a CPU with AMX) the fused
    kernels round differently, and the losses part by ~1e-4 after 4 steps."""
    losses = {}
    for compiled in (False, True):
        cfg = TrainConfig(max_steps=4, optimizer="muon", compile=compiled, checkpoint_every=1000,
                          precision="fp32")
        out = tmp_path / str(compiled)
        losses[compiled] = _train(_lm_task(_model(64), 64), cfg, out).final_loss
    assert abs(losses[True] - losses[False]) < 1e-4, losses


def test_metrics_from_the_loss_are_averaged_over_micro_batches_and_logged(tmp_path):
    seen = []

    def train_batch(g, step, micro):
        seen.append((step, micro))
        return (torch.full((1, 17), micro, dtype=torch.long),)

    def loss_fn(m, b):
        loss = m(b[0][:, :-1], targets=b[0][:, 1:])
        return loss, {"micro_id": b[0][0, 0].float(), "double": 2 * loss.detach()}

    task = TrainTask(model=_model(), train_batch=train_batch, loss_fn=loss_fn,
                     tokens_per_batch=16, flops_per_token=1.0)
    cfg = TrainConfig(max_steps=3, grad_accum=4, log_every=1, checkpoint_every=1000)
    result = _train(task, cfg, tmp_path)
    assert seen == [(s, m) for s in range(3) for m in range(4)]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["micro_id"] for r in records] == [1.5, 1.5, 1.5]  # mean of 0, 1, 2, 3
    for r in records:
        assert r["double"] == pytest.approx(2 * r["loss"], rel=1e-6)
    assert result.metrics["micro_id"] == 1.5 and "grad_norm" in result.metrics


def test_micro_batch_generators_depend_on_seed_step_and_micro_alone():
    a = torch.randint(0, 1000, (8,), generator=micro_rng(1, 5, 2))
    assert torch.equal(a, torch.randint(0, 1000, (8,), generator=micro_rng(1, 5, 2)))
    assert not torch.equal(a, torch.randint(0, 1000, (8,), generator=micro_rng(1, 5, 3)))
    assert not torch.equal(a, torch.randint(0, 1000, (8,), generator=micro_rng(1, 6, 2)))


class _Counter:
    """A task state (like an adaptive KL coefficient) changed by the between-steps hook."""

    def __init__(self):
        self.value = 0.0
        self.modes = []

    def hook(self, model, step):
        self.modes.append(model.training)
        self.value = self.value * 0.5 + step

    def state(self):
        return {"value": self.value}

    def load_state(self, d):
        self.value = d["value"]


def test_task_state_and_hook_resume_exactly(tmp_path):
    def run(out, crash_at=None):
        counter = _Counter()

        def hook(model, step):
            if step == crash_at:
                raise KeyboardInterrupt  # killed after the step-3 checkpoint
            counter.hook(model, step)

        task = _lm_task(_model(), between_steps=hook, state=counter.state, load_state=counter.load_state)
        cfg = TrainConfig(max_steps=6, checkpoint_every=3, log_every=1)
        return _train(task, cfg, out), counter

    straight, c1 = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", crash_at=4)
    resumed, c2 = run(tmp_path / "b")
    assert resumed.resumed_from == 3
    assert resumed.final_loss == straight.final_loss
    assert c2.value == c1.value
    assert c1.modes == [False] * 6  # the hook sees the model in eval mode


def test_more_steps_resume_a_finished_run(tmp_path):
    cfg = TrainConfig(max_steps=3, checkpoint_every=1000)
    _train(_lm_task(_model()), cfg, tmp_path)
    more = TrainConfig(max_steps=5, checkpoint_every=2, log_every=1, eval_every=7)
    result = _train(_lm_task(_model()), more, tmp_path)
    assert (result.resumed_from, result.steps) == (3, 5)


def test_a_changed_setting_that_changes_training_is_refused_unless_restart(tmp_path):
    cfg = TrainConfig(max_steps=2, checkpoint_every=1000)
    _train(_lm_task(_model()), cfg, tmp_path)
    other = TrainConfig(max_steps=2, lr=1e-3, checkpoint_every=1000)
    with pytest.raises(ChatforgeError, match=r"other settings \(train.lr 0.003 -> 0.001\).*--restart"):
        _train(_lm_task(_model()), other, tmp_path)
    with pytest.raises(ChatforgeError, match="data"):
        _train(_lm_task(_model()), cfg, tmp_path, ident=identity(cfg, data="abc"))
    result = _train(_lm_task(_model()), other, tmp_path, restart=True)
    assert result.resumed_from == 0 and result.steps == 2


def test_checkpoints_of_every_kind_load_with_one_function(tmp_path):
    model = _model()
    _train(_lm_task(model), TrainConfig(max_steps=1), tmp_path)
    loaded = load_checkpoint(tmp_path)  # the stage directory: follows LATEST
    assert isinstance(loaded, GPT)
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_an_unwritable_output_fails_before_training(tmp_path):
    from chatforge.errors import RunDirError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    calls = []
    task = _lm_task(_model())
    task.between_steps = lambda m, s: calls.append(s)
    with pytest.raises(RunDirError, match="cannot write checkpoints"):
        _train(task, TrainConfig(max_steps=2), blocker / "ckpt")
    assert calls == []  # no step ran


def test_chat_says_which_model_answers_while_a_newer_stage_has_no_complete_save(tmp_path):
    from chatforge.serve.chat_cli import find_checkpoint

    _train(_lm_task(_model()), TrainConfig(max_steps=1), tmp_path / "checkpoints" / "pretrain")
    sft = tmp_path / "checkpoints" / "sft"
    (sft / ".step-0000100-abc.tmp").mkdir(parents=True)  # killed during its first save
    path, note = find_checkpoint(tmp_path)
    assert path.name == "pretrain" and "sft" in note and "no complete save" in note
    assert isinstance(load_checkpoint(path), GPT)
