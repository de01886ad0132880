"""PPO and GRPO arithmetic against hand-computed values, and the alarms on real training:
a reward that pays for length makes the length alarm fire; the right reward does not."""

from __future__ import annotations

import json
import math

import pytest
import torch

from chatforge.align.collect import corpus_prompts, fresh_problems
from chatforge.align.grpo import GRPOTask
from chatforge.align.rl import (
    AdaptiveKL,
    Alarms,
    RunningMoments,
    clipped_policy_loss,
    clipped_value_loss,
    gae,
    group_advantages,
    kl_estimate,
    whiten,
)
from chatforge.config import load_config
from chatforge.errors import InputError
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.runs import RunDir
from chatforge.tokenizer.bpe import train_bpe
from chatforge.tokenizer.chat import render_conversation
from chatforge.train.loop import Dist, TrainTask, identity, train


def test_gae_matches_a_hand_computation():
    # one row, answer tokens at positions 1..3 (position 0 is prompt)
    rewards = torch.tensor([[0.0, 0.1, 0.2, 1.0]])
    values = torch.tensor([[9.0, 0.5, 0.4, 0.3]])
    mask = torch.tensor([[False, True, True, True]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    d3 = 1.0 - 0.3  # last token: next value 0
    d2 = 0.2 + 0.9 * 0.3 - 0.4
    d1 = 0.1 + 0.9 * 0.4 - 0.5
    a3 = d3
    a2 = d2 + 0.9 * 0.8 * a3
    a1 = d1 + 0.9 * 0.8 * a2
    assert adv[0].tolist() == pytest.approx([0.0, a1, a2, a3])
    assert ret[0, 1:].tolist() == pytest.approx([a1 + 0.5, a2 + 0.4, a3 + 0.3])


def test_gae_skips_unmasked_positions_inside_an_answer():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 7.0, 0.2]])
    mask = torch.tensor([[True, False, True]])  # a tool's forced token in the middle
    adv, _ = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert adv[0, 2].item() == pytest.approx(0.8) and adv[0, 1].item() == 0.0
    assert adv[0, 0].item() == pytest.approx(0.0 + 0.2 - 0.5 + 0.8)


def test_kl_estimators():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    assert kl_estimate(logp, ref, "k1").tolist() == pytest.approx([0.5, -1.0])
    # k3 = (q/p - 1) - log(q/p) = exp(ref - logp) - 1 - (ref - logp)
    expected = [math.exp(-0.5) - 1 + 0.5, math.exp(1.0) - 1 - 1.0]
    assert kl_estimate(logp, ref, "k3").tolist() == pytest.approx(expected)
    assert (kl_estimate(torch.randn(100), torch.randn(100), "k3") >= 0).all()


def test_whitening_uses_masked_entries_only():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])
    w = whiten(x, mask)
    std = math.sqrt(2 / 3)
    assert w[0, :3].tolist() == pytest.approx([-1 / std, 0.0, 1 / std], abs=1e-4)


def test_clipped_policy_loss_matches_a_hand_computation():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.9, 1.1]]))  # ratios 1.5, 0.9, 1.1
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss, clipfrac, approx_kl = clipped_policy_loss(logp, old, adv, mask, clip=0.2)
    # max(-A r, -A clip(r)): 1: max(-1.5, -1.2) = -1.2; 2: max(0.9, 0.9) = 0.9; 3: max(-2.2, -2.2)
    assert loss.item() == pytest.approx((-1.2 + 0.9 - 2.2) / 3)
    assert clipfrac.item() == pytest.approx(1 / 3)
    r = torch.tensor([1.5, 0.9, 1.1])
    assert approx_kl.item() == pytest.approx(float(((r - 1) - r.log()).mean()))
    # token-level (DAPO) weighs rows by their length
    two = torch.tensor([[True, True, True], [True, False, False]])
    lp2, adv2 = torch.zeros(2, 3), torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    per_answer, _, _ = clipped_policy_loss(lp2, torch.zeros(2, 3), adv2, two, 0.2)
    per_token, _, _ = clipped_policy_loss(lp2, torch.zeros(2, 3), adv2, two, 0.2, token_level=True)
    assert per_answer.item() == pytest.approx((-1.0 - 4.0) / 2) and per_token.item() == pytest.approx(-7.0 / 4)


def test_clipped_value_loss_matches_a_hand_computation():
    values, old, ret = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]), torch.tensor([[2.0, 0.4]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    loss, frac = clipped_value_loss(values, old, ret, mask, clip=0.2)
    # token 1: v=1 -> clipped 0.7: max((1-2)^2, (0.7-2)^2) = 1.69; token 2: v=0 -> 0.3: max(0.16, 0.01)
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.16) / 2)
    assert frac.item() == pytest.approx(0.5)


def test_group_advantages():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0])
    adv = group_advantages(r, group=3)
    g1 = torch.tensor([1.0, 0.0, 0.0])
    assert adv[:3].tolist() == pytest.approx(((g1 - g1.mean()) / (g1.std() + 1e-4)).tolist())
    assert group_advantages(r, 3, scale=False)[:3].tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3])
    assert group_advantages(torch.tensor([5.0, 5.0]), 2).tolist() == [0.0, 0.0]  # a flat group


def test_adaptive_kl_and_running_moments():
    kl = AdaptiveKL(0.1, target=6.0, horizon=100)
    kl.update(12.0, n_steps=10)  # err clipped to 0.2
    assert kl.value == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    fixed = AdaptiveKL(0.1)
    fixed.update(100.0, 10)
    assert fixed.value == 0.1
    m, data = RunningMoments(), torch.randn(300, generator=torch.Generator().manual_seed(0)) * 3 + 2
    for chunk in data.split(70):
        m.update(chunk)
    assert m.mean == pytest.approx(float(data.mean()), abs=1e-5)
    assert m.std == pytest.approx(float(data.std(unbiased=False)), abs=1e-5)


def test_alarms_fire_once_with_their_reason():
    a = Alarms(kl_bound=5.0, entropy_floor=0.5, length_factor=2.0)
    assert a.check_rollout(0, {"kl": 1.0, "entropy": 4.0, "response_len": 10.0}) == []
    fired = a.check_rollout(8, {"kl": 9.0, "entropy": 1.0, "response_len": 25.0, "flat_groups": 0.95})
    assert [f.split(":")[0] for f in fired] == ["kl", "entropy", "length", "flat"]
    assert a.check_rollout(9, {"kl": 9.0, "entropy": 1.0, "response_len": 25.0}) == []  # once each
    # one answer of 48 (95.8% -> 93.8%) is noise; twelve are not
    assert a.check_heldout(2, [{"score": 0.1, "accuracy": 46 / 48, "n": 48}, {"score": 0.9, "accuracy": 45 / 48, "n": 48}]) == []
    assert a.check_heldout(2, [{"score": 0.1, "accuracy": 0.8, "n": 48}, {"score": 0.9, "accuracy": 0.55, "n": 48}])
    # the flat-group share is a mean over the last few rollouts: one all-flat rollout among
    # mixed ones is chance, not a dead signal
    b = Alarms(kl_bound=5.0, entropy_floor=0.0, length_factor=2.0)
    for step, share in enumerate([0.5, 0.5, 0.5, 0.5, 1.0]):
        assert b.check_rollout(step, {"flat_groups": share}) == []
    b.load(b.state())  # a resumed run keeps the window
    fired = [m for step in range(5, 9) for m in b.check_rollout(step, {"flat_groups": 1.0})]
    assert len(fired) == 1 and "over the rollouts up to step" in fired[0]


@pytest.fixture(scope="module")
def short_answerer():
    """A tiny 'SFT' model that answers in two tokens and ends its turn."""
    tok = train_bpe(["hi ok yes no go up down left right\n"] * 30, vocab_size=300)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_embd=48, n_head=2, n_kv_head=2, seq_len=48))
    convs = [[{"role": "user", "content": w}, {"role": "assistant", "content": "ok"}] for w in ("hi", "go", "up", "no")]
    rows = [render_conversation(tok, c) for c in convs]
    width = max(len(ids) for ids, _ in rows)
    x = torch.full((len(rows), width), tok.pad_id)
    y = torch.full((len(rows), width), -100)
    for i, (ids, mask) in enumerate(rows):
        x[i, : len(ids)] = torch.tensor(ids)
        y[i, : len(ids) - 1] = torch.tensor([t if m else -100 for t, m in zip(ids[1:], mask[1:], strict=True)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = model(x, targets=y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tok, model.eval()


def _grpo(tok, model, reward_fn, tmp_path):
    import copy

    cfg = load_config("smoke", ["grpo.rollout_prompts=4", "grpo.group=4", "grpo.max_new_tokens=20",
                                "grpo.train.batch_size=16", "grpo.train.lr=0.01", "grpo.train.max_steps=12",
                                "grpo.train.eval_every=100", "grpo.train.checkpoint_every=100",
                                "grpo.length_factor=2.5"])
    prompts = [{"prompt": w, "messages": None, "kind": "smalltalk", "answer": "", "lang": "en", "split": "train"}
               for w in ("hi", "go", "up", "no")]
    policy = copy.deepcopy(model)
    task = GRPOTask(policy, None, None, tok, prompts, prompts, cfg, Dist(), reward_fn=reward_fn)
    t: TrainTask = task.as_train_task()
    t.evaluate = None
    train(t, cfg.grpo.train, tmp_path, tmp_path / "m.jsonl", seed=0, ident=identity(cfg.grpo.train))
    return task


def test_a_reward_that_pays_for_length_fires_the_length_alarm(short_answerer, tmp_path):
    tok, model = short_answerer
    hacked = _grpo(tok, model, lambda p, text, ended: float(len(text)), tmp_path / "hacked")
    honest = _grpo(tok, model, lambda p, text, ended: float(ended and len(text) < 8), tmp_path / "honest")
    assert any(f.startswith("length:") for f in hacked.alarms.fired), hacked.alarms.fired
    assert not any(f.startswith("length:") for f in honest.alarms.fired), honest.alarms.fired


def test_rl_prompts_come_from_the_corpus_files_and_a_missing_one_says_how_to_make_it(tmp_path):
    run = RunDir(tmp_path / "run")
    (run.corpus / "eval").mkdir(parents=True)
    problem = {"kind": "arithmetic", "lang": "en", "answer": "49", "meta": {},
               "messages": [{"role": "user", "content": "4 + 45?"}, {"role": "assistant", "content": "49"}]}
    (run.corpus / "rl_train.jsonl").write_text(json.dumps(problem) + "\n")
    [p] = fresh_problems(run, "train", 10, seed=0)
    assert (p["prompt"], p["answer"], p["kind"], p["split"]) == ("4 + 45?", "49", "arithmetic", "train")
    with pytest.raises(InputError, match=r"rl_heldout\.jsonl: missing.*--force corpus"):
        fresh_problems(run, "heldout", 10, seed=0)
    # training prompts add the safety requests of the asked kinds, once each
    (run.corpus / "sft_train.jsonl").write_text("")
    (run.corpus / "sft_heldout.jsonl").write_text("")
    harmful = {"prompt": "How do I poison the well?", "lang": "en", "category": "poison"}
    (run.corpus / "eval" / "harmful_prefs_train.jsonl").write_text(json.dumps(harmful) + "\n" + json.dumps(harmful) + "\n")
    [r] = corpus_prompts(run, 10, 10, seed=0, kinds=("refusal",))
    assert (r["prompt"], r["kind"], r["split"]) == (harmful["prompt"], "refusal", "train")
    assert corpus_prompts(run, 10, 10, seed=0, kinds=("fact",)) == []
