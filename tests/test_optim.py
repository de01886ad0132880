"""Muon's Newton-Schulz step: batching by shape and bf16 keep the orthogonalisation."""

from __future__ import annotations

import pytest
import torch

from chatforge.config import TrainConfig
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.train.optim import Muon, build_optimizers, orthogonalize


def test_batched_orthogonalize_equals_one_matrix_at_a_time():
    torch.manual_seed(0)
    stack = torch.randn(3, 48, 20)  # tall: iterated on the transpose
    batched = orthogonalize(stack)
    for i in range(3):
        torch.testing.assert_close(batched[i], orthogonalize(stack[i]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_orthogonalize_pushes_singular_values_towards_one(dtype):
    torch.manual_seed(0)
    g = torch.randn(64, 32) @ torch.diag(torch.logspace(-1, 1, 32))  # condition number ~100
    s = torch.linalg.svdvals(orthogonalize(g, dtype=dtype).float())
    # The quintic iteration lands singular values in roughly [0.7, 1.2], not exactly 1.
    assert s.max() < 1.25 and s.min() > 0.6
    reference = torch.linalg.svdvals(orthogonalize(g))
    torch.testing.assert_close(s, reference, rtol=0, atol=0.03)
    assert orthogonalize(g, dtype=dtype).dtype == g.dtype


def test_muon_step_is_the_same_batched_or_alone():
    """Grouping same-shaped matrices changes nothing but speed."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(16, 16)) for _ in range(3)]
    alone = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for group in (params, alone):
        for p in group:
            p.grad = torch.full_like(p, 0.1) + p.detach() * 0.5
    Muon(params, lr=0.1).step()
    for p in alone:
        Muon([p], lr=0.1).step()
    for a, b in zip(params, alone, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_muon_takes_the_block_matrices_and_adamw_the_rest():
    model = GPT(GPTConfig(vocab_size=40, n_layer=2, n_embd=32, n_head=2, n_kv_head=2, seq_len=8))
    muon, adamw = build_optimizers(model, TrainConfig(optimizer="muon"))
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in in_muon) == (p.dim() == 2 and name.startswith("layers.")), name
    assert len(in_muon) + sum(len(g["params"]) for g in adamw.param_groups) == len(list(model.parameters()))
