"""The model: causal masking, KV cache equivalence, sampling, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from chatforge.model.checkpoint import load_model, save_model
from chatforge.model.gpt import GPT, GPTConfig, sample_next
from chatforge.model.loss import IGNORE_INDEX


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=97, n_layer=2, n_embd=64, n_head=4, n_kv_head=2, seq_len=48)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


@pytest.mark.parametrize("mlp,qk_norm,tie", [("swiglu", True, False), ("relu2", False, True)])
def test_later_tokens_never_change_earlier_logits(mlp, qk_norm, tie):
    model = tiny(mlp=mlp, qk_norm=qk_norm, tie_embeddings=tie)
    x = torch.randint(0, 97, (3, 40))
    base = model(x)
    for cut in (0, 17, 39):
        y = x.clone()
        y[:, cut:] = torch.randint(0, 97, y[:, cut:].shape)
        changed = model(y)
        assert torch.equal(base[:, :cut], changed[:, :cut])
        if cut < 39:
            assert not torch.allclose(base[:, cut:], changed[:, cut:])


def test_kv_cache_matches_full_forward_chunk_by_chunk():
    model = tiny()
    x = torch.randint(0, 97, (2, 30))
    full = model(x)
    cache = model.new_cache(2)
    pieces = [model(x[:, a:b], cache=cache) for a, b in ((0, 11), (11, 12), (12, 25), (25, 30))]
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)


def test_left_padding_with_key_valid_equals_unpadded():
    model = tiny()
    x = torch.randint(1, 97, (1, 12))
    ref = model(x)[:, -1]
    padded = torch.cat([torch.zeros(1, 5, dtype=torch.long), x], 1)
    valid = torch.cat([torch.zeros(1, 5, dtype=torch.bool), torch.ones(1, 12, dtype=torch.bool)], 1)
    out = model(padded, cache=model.new_cache(1), key_valid=valid)[:, -1]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mlp,qk_norm,tie,kv", [("swiglu", True, False, 2), ("relu2", False, True, 4)])
def test_the_fused_decode_step_equals_the_layered_forward(mlp, qk_norm, tie, kv):
    """Inference decodes one token at a time through GPT._decode_step (fused projections); it
    must give the logits and cache of the layered path: left-padded rows, a padding query,
    and positions past the RoPE table (a cache longer than the context)."""
    model = tiny(mlp=mlp, qk_norm=qk_norm, tie_embeddings=tie, n_kv_head=kv, seq_len=16)
    prompts = torch.randint(1, 97, (3, 6))
    valid = torch.ones(3, 6, dtype=torch.bool)
    valid[0, :4], valid[1, :1] = False, False  # rows 0 and 1 left-padded
    steps = torch.randint(1, 97, (3, 20))
    step_valid = torch.ones(3, 20, dtype=torch.bool)
    step_valid[2, 3] = False  # a padding query mid-decode
    outs = {}
    for name, ctx in (("layered", torch.enable_grad), ("fused", torch.inference_mode)):
        cache = model.new_cache(3, 26)  # 26 slots: past the 16 RoPE positions of the context
        with ctx():
            logits = [model(prompts, cache=cache, key_valid=valid)[:, -1]]
            logits += [model(steps[:, t : t + 1], cache=cache, key_valid=step_valid[:, t : t + 1])[:, -1]
                       for t in range(20)]
        outs[name] = (torch.stack(logits).detach(), cache.k.clone(), cache.next_pos.clone())
    for a, b in zip(outs["layered"], outs["fused"], strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_greedy_generation_with_and_without_cache_is_identical():
    model = tiny()
    prompt = [5, 9, 13, 2]
    assert model.generate(prompt, 30, temperature=0) == model.generate(
        prompt, 30, temperature=0, use_cache=False
    )


def test_generation_respects_context_length_and_stop_ids():
    model = tiny(seq_len=16)
    out = model.generate([1] * 10, 100, temperature=0)
    assert len(out) == 6
    first = model.generate([3, 4], 5, temperature=0)[0]
    assert model.generate([3, 4], 5, temperature=0, stop_ids=(first,)) == [first]


def test_sampling_is_seeded_and_filters_apply():
    logits = torch.tensor([[4.0, 3.0, 0.0, -1.0, -2.0]]).repeat(200, 1)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a, b = sample_next(logits, 1.0, 0, 1.0, g1), sample_next(logits, 1.0, 0, 1.0, g2)
    assert torch.equal(a, b)
    top2 = sample_next(logits, 1.0, 2, 1.0, torch.Generator().manual_seed(0))
    assert set(top2.tolist()) <= {0, 1}
    nucleus = sample_next(logits, 1.0, 0, 0.5, torch.Generator().manual_seed(0))
    assert set(nucleus.tolist()) == {0}  # token 0 alone holds more than half the mass
    assert sample_next(logits[:1], 0.0).item() == 0


def test_sampling_follows_the_distribution_and_each_row_draws_from_its_own_generator():
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125, 0.0])
    logits = probs.log()[None].repeat(20_000, 1)
    drawn = sample_next(logits, 1.0, 0, 1.0, torch.Generator().manual_seed(3))
    freq = torch.bincount(drawn, minlength=5).float() / len(drawn)
    assert torch.allclose(freq, probs, atol=0.015) and freq[4] == 0  # zero mass: never drawn
    # Per-row generators: a row's token depends on its own seed, not on the rows beside it.
    rows = torch.randn(6, 50)
    alone = [int(sample_next(rows[i : i + 1], 0.9, 0, 1.0, [torch.Generator().manual_seed(i)])[0]) for i in range(6)]
    together = sample_next(rows, 0.9, 0, 1.0, [torch.Generator().manual_seed(i) for i in range(6)]).tolist()
    assert together == alone


def test_checkpoint_round_trip(tmp_path):
    for tie in (False, True):
        model = tiny(tie_embeddings=tie)
        save_model(model, tmp_path / str(tie), extra={"step": 7})
        loaded = load_model(tmp_path / str(tie))
        x = torch.randint(0, 97, (2, 20))
        assert torch.equal(model(x), loaded(x))
        assert loaded.cfg == model.cfg
    assert not list(tmp_path.rglob("*.tmp"))


def test_param_count_and_flops():
    model = tiny()
    n = sum(p.numel() for p in model.parameters())
    assert model.num_params() == n
    assert model.num_params(non_embedding=True) == n - 97 * 64
    c = model.cfg
    assert model.flops_per_token() == 6 * (n - 97 * 64) + 12 * c.n_layer * c.n_head * c.head_dim * c.seq_len


@pytest.mark.parametrize("tie", [False, True])
def test_fused_loss_equals_cross_entropy_of_the_logits(tie):
    """The chunked head + loss gives F.cross_entropy's value and gradients, -100 ignored."""
    model = tiny(tie_embeddings=tie).train()
    x = torch.randint(0, 97, (3, 40))
    y = torch.randint(0, 97, (3, 40))
    y[0, :25] = -100
    fused = model(x, targets=y)
    fused.backward()
    fused_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    logits = model(x)
    reference = torch.nn.functional.cross_entropy(logits.view(-1, 97), y.view(-1), ignore_index=-100)
    reference.backward()
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(fused_grads[n], p.grad, rtol=1e-4, atol=1e-7, msg=n)


def test_fused_loss_over_many_chunks_and_all_ignored():
    from chatforge.model.loss import linear_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(3000, 16, requires_grad=True)  # > one chunk of rows at vocab 5000
    w = torch.randn(5000, 16, requires_grad=True)
    t = torch.randint(0, 5000, (3000,))
    loss = linear_cross_entropy(h, w, t)
    ref = torch.nn.functional.cross_entropy(h @ w.T, t)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    (2 * loss).backward()  # an upstream gradient scales the stored ones
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    (2 * ref).backward()
    torch.testing.assert_close(gh, h.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(gw, w.grad, rtol=1e-4, atol=1e-6)
    ignored = linear_cross_entropy(h, w, torch.full((3000,), -100))
    assert ignored.item() == 0.0  # F.cross_entropy would give NaN
    t[::5] = -100
    with torch.no_grad():  # evaluation: the loss alone, no gradient work
        torch.testing.assert_close(linear_cross_entropy(h, w, t), torch.nn.functional.cross_entropy(h @ w.T, t))
        assert linear_cross_entropy(h, w, torch.full((3000,), -100)).item() == 0.0


@pytest.mark.parametrize("tie", [False, True])
def test_per_token_logprobs_equal_log_softmax_gathered(tie):
    model = tiny(tie_embeddings=tie)
    x = torch.randint(0, 97, (3, 20))
    y = torch.randint(0, 97, (3, 20))
    y[0, :5] = -100
    logp = model(x, targets=y, reduction="none")
    ref = torch.log_softmax(model(x), dim=-1).gather(-1, y.clamp(min=0)[..., None]).squeeze(-1)
    ref = ref * (y != -100)
    assert logp.shape == (3, 20)
    assert torch.allclose(logp, ref, atol=1e-5)
    assert torch.all(logp[0, :5] == 0)
    # the same path agrees with the fused mean loss and carries gradients
    mean = model(x, targets=y)
    assert torch.allclose(-logp.sum() / (y != -100).sum(), mean, atol=1e-5)
    model.train()
    model(x, targets=y, reduction="none").sum().backward()
    assert model.embed_tokens.weight.grad is not None


def test_reward_checkpoint_round_trips_through_the_registry(tmp_path):
    from chatforge.model.checkpoint import load_checkpoint, read_model_json
    from chatforge.model.reward import RewardModel, ValueModel

    policy = tiny(tie_embeddings=True)
    rm = RewardModel(policy.cfg)
    rm.init_from(policy)
    assert torch.equal(rm.trunk.embed_tokens.weight, policy.embed_tokens.weight)
    x = torch.randint(0, 97, (2, 12))
    last = torch.tensor([11, 5])
    targets = torch.full_like(x, IGNORE_INDEX)
    targets[0, 6:11], targets[1, 3:5] = x[0, 7:12], x[1, 4:6]
    save_model(rm, tmp_path / "rm")
    assert read_model_json(tmp_path / "rm")["kind"] == "reward"
    loaded = load_checkpoint(tmp_path / "rm")
    assert type(loaded) is RewardModel
    assert torch.equal(loaded(x, last, targets), rm(x, last, targets)) and rm(x, last, targets).shape == (2,)
    save_model(ValueModel(policy.cfg), tmp_path / "value")
    assert type(load_checkpoint(tmp_path / "value")) is ValueModel
    with pytest.raises(Exception, match="not a language model"):
        load_model(tmp_path / "rm")


def test_reward_is_the_head_at_the_last_token_plus_scaled_mean_answer_logprob():
    from chatforge.model.reward import RewardModel

    policy = tiny()
    rm = RewardModel(policy.cfg).eval()
    rm.init_from(policy)
    with torch.no_grad():
        rm.likelihood_scale.fill_(0.5)
    x = torch.randint(0, 97, (2, 12))
    last = torch.tensor([11, 7])
    targets = torch.full_like(x, IGNORE_INDEX)
    targets[0, 8:11], targets[1, 4:7] = x[0, 9:12], x[1, 5:8]  # 3 answer tokens per row
    logp = torch.log_softmax(policy(x), -1)  # the trunk's own head is the policy's
    with torch.no_grad():
        head = rm.score(rm.trunk.hidden_states(x)).squeeze(-1)
        got = rm(x, last, targets)
    for r, (lo, hi) in enumerate([(8, 11), (4, 7)]):
        mean = sum(float(logp[r, t, x[r, t + 1]]) for t in range(lo, hi)) / 3
        assert got[r].item() == pytest.approx(float(head[r, last[r]]) + 0.5 * mean, abs=1e-5)
    # tokens after `last` (padding) and in the prompt move nothing but the head's input
    x2 = x.clone()
    x2[1, 8:] = 0
    assert rm(x2, last, targets)[1].item() == pytest.approx(got[1].item(), abs=1e-5)


def test_the_critic_starts_from_the_reward_models_trunk_and_head():
    from chatforge.model.reward import RewardModel, ValueModel

    rm = RewardModel(tiny().cfg)
    value = ValueModel(rm.cfg)
    value.init_from(rm)
    x = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        assert torch.allclose(value(x), rm.score(rm.trunk.hidden_states(x)).squeeze(-1))
    with pytest.raises(ValueError, match="lacks"):
        value.init_from(torch.nn.Linear(2, 2))


def test_a_zero_head_critic_keeps_the_reward_models_trunk_and_starts_every_value_at_zero():
    """PPO's default critic: the reward model's head read at every position gave values of
    std ~2 against normalised returns of std 1 (ppo.critic_head)."""
    from chatforge.model.reward import RewardModel, ValueModel

    rm = RewardModel(tiny().cfg)
    value = ValueModel(rm.cfg)
    value.init_from(rm)
    value.zero_head()
    x = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        assert torch.equal(value(x), torch.zeros(2, 12))
        assert torch.equal(value.trunk.hidden_states(x), rm.trunk.hidden_states(x))
    value(x).sum().backward()
    assert value.score.weight.grad.abs().sum() > 0  # the head learns from the first step


def test_a_truncated_checkpoint_is_a_one_line_error(tmp_path):
    from chatforge.errors import RunDirError

    save_model(tiny(), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(RunDirError, match="truncated or corrupt"):
        load_model(tmp_path)
