"""The model: a Llama-style decoder-only transformer with a KV cache.

RoPE (Llama's half-split convention), RMSNorm with a weight, SwiGLU (or ReLU^2) MLP,
grouped-query attention, optional QK-norm, no biases, `F.scaled_dot_product_attention`,
optional weight tying. Kept Llama-shaped so an export can load in `LlamaForCausalLM`.
This file holds the model and nothing else: no training, no tokenizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule

from chatforge.model.loss import IGNORE_INDEX, linear_cross_entropy


def token_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """log softmax(logits) gathered at `targets`; 0 where a target is IGNORE_INDEX."""
    valid = targets != IGNORE_INDEX
    logp = -F.cross_entropy(
        logits.flatten(0, -2), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    )
    return logp.view(targets.shape) * valid


@dataclass
class GPTConfig:
    vocab_size: int
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_kv_head: int = 4
    seq_len: int = 256
    mlp: str = "swiglu"  # swiglu | relu2
    mlp_hidden: int = 0  # 0 = Llama's rule: 8/3 * width (swiglu) or 4 * width, rounded to 64
    qk_norm: bool = True
    tie_embeddings: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not self.mlp_hidden:
            hidden = int(8 * self.n_embd / 3) if self.mlp == "swiglu" else 4 * self.n_embd
            self.mlp_hidden = 64 * math.ceil(hidden / 64)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @classmethod
    def from_model_config(cls, mc, vocab_size: int, fp32: bool = False) -> GPTConfig:  # mc: config.ModelConfig
        """Derive the architecture from the one size dial (`depth`) and its rules; `fp32`: the
        matmuls will run in fp32, where `mc.fp32_width` (if set) replaces the derived width
        (a width set explicitly wins everywhere)."""
        width = mc.width or (fp32 and mc.fp32_width) or mc.depth * mc.aspect_ratio
        n_head = max(1, width // mc.head_dim)
        return cls(
            vocab_size=vocab_size,
            n_layer=mc.depth,
            n_embd=width,
            n_head=n_head,
            n_kv_head=mc.n_kv_head or n_head,
            seq_len=mc.seq_len,
            mlp=mc.mlp,
            qk_norm=mc.qk_norm,
            tie_embeddings=mc.tie_embeddings,
            rope_theta=mc.rope_theta,
            dropout=mc.dropout,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Preallocated keys/values for every layer; `length` slots are filled.

    Rows of a batch share slot indices; with left-padded prompts, `valid` marks which slots
    hold real tokens so padding is never attended to.
    """

    def __init__(self, cfg: GPTConfig, batch: int, max_len: int, device, dtype):
        shape = (cfg.n_layer, batch, cfg.n_kv_head, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.valid = torch.zeros(batch, max_len, dtype=torch.bool, device=device)
        self.next_pos = torch.zeros(batch, dtype=torch.long, device=device)
        self.length = 0
        self.max_len = max_len
        self.fused: tuple | None = None  # the decode step's weights (GPT._fused_weights)
        # Whether any filled slot is padding (attention then needs a mask); code that writes
        # `valid` itself, rather than through the model's forward, must set it.
        self.padded = False

    def fill(self, T: int, valid: Tensor | None) -> Tensor:
        """Mark the next `T` slots filled (`valid` (B, T): False = left padding; None = all
        real) and return each new token's position (B, T). Positions count real tokens only,
        so left padding does not shift RoPE phases. `length` moves once the layers have
        written their keys and values."""
        start = self.length
        if start + T > self.max_len:
            raise ValueError(f"KV cache full: {start} + {T} tokens exceeds its {self.max_len} slots")
        if valid is None:
            self.valid[:, start : start + T] = True
            positions = self.next_pos[:, None] + torch.arange(T, device=self.next_pos.device)
            self.next_pos = self.next_pos + T
            return positions
        self.valid[:, start : start + T] = valid
        self.padded = self.padded or not bool(valid.all())
        positions = (self.next_pos[:, None] + valid.long().cumsum(1) - 1).clamp(min=0)
        self.next_pos = self.next_pos + valid.long().sum(1)
        return positions

    def reorder(self, index: Tensor) -> None:
        """Keep only the rows in `index`, in its order (e.g. after some sequences finished; a
        row may repeat, to copy a shared prefix). With no more rows than before, only the
        filled slots move, within the cache's own storage: a fresh copy of every slot would cost
        as much as several decode steps of a large batch."""
        n, filled = index.numel(), self.length
        if n <= self.k.size(1):
            self.k[:, :n, :, :filled] = self.k[:, index, :, :filled]
            self.v[:, :n, :, :filled] = self.v[:, index, :, :filled]
            self.k, self.v = self.k[:, :n], self.v[:, :n]
        else:
            self.k, self.v = self.k[:, index], self.v[:, index]
        self.valid, self.next_pos = self.valid[index], self.next_pos[index]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def rope_tables(head_dim: int, positions: Tensor, theta: float) -> tuple[Tensor, Tensor]:
    """cos/sin of shape positions.shape + (head_dim,), Llama's half-split layout."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device) / head_dim)
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.size(-1) // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_head * hd, bias=False)
        self.k_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * hd, bias=False)
        self.v_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_head * hd, cfg.n_embd, bias=False)
        self.q_norm = RMSNorm(hd, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(hd, cfg.norm_eps) if cfg.qk_norm else None

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        layer: int,
        cache: KVCache | None,
        mask: Tensor | None,
        causal: bool,
    ) -> Tensor:
        B, T, _ = x.shape
        cfg, hd = self.cfg, self.cfg.head_dim
        q = self.q_proj(x).view(B, T, cfg.n_head, hd)
        k = self.k_proj(x).view(B, T, cfg.n_kv_head, hd)
        v = self.v_proj(x).view(B, T, cfg.n_kv_head, hd)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        # cos/sin are (B or 1, T, hd); heads sit on dim 2 here.
        q, k = apply_rope(q, cos[:, :, None], sin[:, :, None]), apply_rope(k, cos[:, :, None], sin[:, :, None])
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            start = cache.length
            cache.k[layer, :, :, start : start + T] = k
            cache.v[layer, :, :, start : start + T] = v
            k = cache.k[layer, :, :, : start + T]
            v = cache.v[layer, :, :, : start + T]
        gqa = cfg.n_kv_head != cfg.n_head
        p = self.cfg.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, dropout_p=p, enable_gqa=gqa
        )
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        if self.swiglu:
            self.gate_proj = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=False)
        self.up_proj = nn.Linear(cfg.n_embd, cfg.mlp_hidden, bias=False)
        self.down_proj = nn.Linear(cfg.mlp_hidden, cfg.n_embd, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.swiglu:
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(F.relu(self.up_proj(x)).square())


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, layer, cache, mask, causal):
        x = x + self.drop(
            self.self_attn(self.input_layernorm(x), cos, sin, layer, cache, mask, causal)
        )
        return x + self.drop(self.mlp(self.post_attention_layernorm(x)))


class GPT(nn.Module):
    """Decoder-only transformer. Parameter names follow Llama's for a direct HF export.

    `lm_head=False` builds the trunk alone (embeddings, blocks, final norm), for models that
    put another head on it (chatforge.model.reward).
    """

    kind = "gpt"  # the checkpoint kind (model.json), see chatforge.model.checkpoint

    def __init__(self, cfg: GPTConfig, lm_head: bool = True):
        super().__init__()
        if cfg.n_embd % cfg.n_head or cfg.n_head % cfg.n_kv_head:
            raise ValueError(f"bad heads: width {cfg.n_embd}, heads {cfg.n_head}/{cfg.n_kv_head}")
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        if lm_head:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
            if cfg.tie_embeddings:
                self.lm_head.weight = self.embed_tokens.weight
        # RoPE tables for every position of the context, computed once (not saved).
        cos, sin = rope_tables(cfg.head_dim, torch.arange(cfg.seq_len), cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, 0.02); residual output projections scaled by 1/sqrt(2 * layers)."""
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, p in self.named_parameters():
            if p.dim() == 1:  # norm gains
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, std=residual_std)
            else:
                nn.init.normal_(p, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and not self.cfg.tie_embeddings:
            n -= self.embed_tokens.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token: 6 N (non-embedding) + 12 L H hd T for attention (PaLM)."""
        c, t = self.cfg, seq_len or self.cfg.seq_len
        return 6 * self.num_params(non_embedding=True) + 12 * c.n_layer * c.n_head * c.head_dim * t

    def hidden_states(
        self,
        idx: Tensor,
        cache: KVCache | None = None,
        key_valid: Tensor | None = None,
    ) -> Tensor:
        """Final-normed hidden states (B, T, width).

        Without a cache: plain causal attention over `idx`. With a cache: `idx` continues the
        cached slots; `key_valid` (B, T) marks real tokens of this chunk (False = left padding).
        """
        B, T = idx.shape
        if cache is None:
            if T > self.cfg.seq_len:
                raise ValueError(f"sequence of {T} tokens exceeds context length {self.cfg.seq_len}")
            # Slices of the precomputed tables, with no data-dependent check (which would
            # break a torch.compile graph in two).
            cos, sin = self.rope_cos[None, :T], self.rope_sin[None, :T]
            mask, causal = None, True
        else:
            start = cache.length
            positions = cache.fill(T, key_valid)
            mask, causal = None, False
            if T > 1 or cache.padded:
                # Causal over slots, never attending to padding (but always to itself, so a
                # padding query has something to attend to and gives no NaN).
                slots = torch.arange(start + T, device=idx.device)
                rows = start + torch.arange(T, device=idx.device)
                mask = (slots[None, :] <= rows[:, None])[None] & cache.valid[:, None, : start + T]
                mask = (mask | (slots[None, None, :] == rows[None, :, None]))[:, None]
            # else: one new token and every cached slot is real: it attends to all of them.
            if int(positions.max()) < self.rope_cos.size(0):
                cos, sin = self.rope_cos[positions], self.rope_sin[positions]
            else:  # a cache longer than the configured context
                cos, sin = rope_tables(self.cfg.head_dim, positions, self.cfg.rope_theta)
        x = self.embed_tokens(idx)
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, i, cache, mask, causal)
        if cache is not None:
            cache.length += T
        return self.norm(x)

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        cache: KVCache | None = None,
        key_valid: Tensor | None = None,
        reduction: str = "mean",
        last_only: bool = False,
    ) -> Tensor:
        """Logits (B, T, vocab), or (B, 1, vocab) of the last position with `last_only` (a
        prompt's prefill needs no other: the output head is a fifth of a small model's
        arithmetic per token); with `targets`, the cross-entropy instead.

        Targets equal to IGNORE_INDEX (-100) are ignored: SFT masks non-assistant tokens that
        way. `reduction="mean"`: the mean over targets (fused, no logits tensor);
        `reduction="none"`: per-token log-probabilities log p(target) (B, T), 0 where ignored,
        differentiable: what log-likelihood evaluation, DPO and PPO need.
        """
        if cache is not None and idx.size(1) == 1 and targets is None and not self.training \
                and not torch.is_grad_enabled() and not isinstance(self.layers[0], FSDPModule):
            # (FSDP gathers a block's shards when the block is called, so sharded models
            # take the layered path)
            return self._decode_step(idx, cache, key_valid)
        h = self.hidden_states(idx, cache, key_valid)
        if targets is None:
            return self.lm_head(h[:, -1:] if last_only else h).float()
        if reduction == "none":
            return token_logprobs(self.lm_head(h).float(), targets)
        if reduction != "mean":
            raise ValueError(f"reduction={reduction!r}: choose mean or none")
        return linear_cross_entropy(h.reshape(-1, h.size(-1)), self.lm_head.weight, targets.reshape(-1))

    def _fused_weights(self) -> tuple[list[tuple[Tensor | None, ...]], Tensor, Callable]:
        """The decode step's weights: per layer the q/k/v projections as one matrix, the q and
        k norm gains as one (heads x head_dim) table and the SwiGLU gate and up projections as
        one matrix; then the output head; and the product `proj(x, matrix)` they take.

        fp32 matrices are stored transposed (in x out, contiguous) and multiplied directly:
        a few rows times such a matrix is up to 1.6x faster on a CPU (MKL) than `F.linear`'s
        read of the (out x in) weight; bf16 ones (oneDNN) are as fast or faster as they are.
        """
        transpose = self.lm_head.weight.dtype == torch.float32

        def t(w: Tensor) -> Tensor:
            return w.t().contiguous() if transpose else w

        c, fused = self.cfg, []
        for block in self.layers:
            a, mlp = block.self_attn, block.mlp
            qk_norm = (torch.cat([a.q_norm.weight.expand(c.n_head, -1), a.k_norm.weight.expand(c.n_kv_head, -1)])
                       if a.q_norm is not None else None)
            up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]) if mlp.swiglu else mlp.up_proj.weight
            fused.append((block.input_layernorm.weight,
                          t(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])), qk_norm,
                          t(a.o_proj.weight), block.post_attention_layernorm.weight, t(up), t(mlp.down_proj.weight)))
        return fused, t(self.lm_head.weight), torch.matmul if transpose else F.linear

    def _decode_step(self, idx: Tensor, cache: KVCache, key_valid: Tensor | None) -> Tensor:
        """One new token per row with a cache, for inference: the same arithmetic as
        `hidden_states` + `lm_head`, in a third of the operations (fused projections, one
        norm and one RoPE for q and k together, no module calls). Decoding a small model is
        bound by the cost of launching operations, not by the matrix products (about 1.5x the
        tokens per second of the layered path at batch 1 on a CPU; pinned to it by the tests)."""
        c, hd = self.cfg, self.cfg.head_dim
        B, start = idx.size(0), cache.length
        positions = cache.fill(1, key_valid)[:, 0]
        # Positions count real tokens, so none exceeds the slot index `start`.
        if start < self.rope_cos.size(0):
            cos, sin = self.rope_cos[positions], self.rope_sin[positions]
        else:
            cos, sin = rope_tables(hd, positions, c.rope_theta)
        nq, nkv, half, eps = c.n_head, c.n_kv_head, hd // 2, c.norm_eps
        # (B, 1, 1, hd), broadcast over heads; rotating half of x = roll(x) * (-1 .. -1, 1 .. 1)
        cos, sin = cos[:, None, None], torch.cat([-sin[:, :half], sin[:, half:]], dim=-1)[:, None, None]
        mask = None
        if cache.padded:  # left padding: never attend to it
            mask = cache.valid[:, None, None, : start + 1].clone()
            mask[:, :, :, start] = True  # a padding query attends to itself (no NaN)
        x = F.embedding(idx, self.embed_tokens.weight)
        if cache.fused is None:  # once per cache: the weights cannot change within a generation
            cache.fused = self._fused_weights()
        layers, head, proj = cache.fused
        for i, (w_in, w_qkv, w_qk_norm, w_o, w_post, w_up, w_down) in enumerate(layers):
            qkv = proj(F.rms_norm(x, (c.n_embd,), w_in, eps), w_qkv).view(B, 1, nq + 2 * nkv, hd)
            qk, v = qkv[:, :, : nq + nkv], qkv[:, :, nq + nkv :]
            if w_qk_norm is not None:
                qk = F.rms_norm(qk, (hd,), None, eps) * w_qk_norm
            qk = (qk * cos + qk.roll(half, dims=-1) * sin).to(x.dtype)
            keys, values = cache.k[i], cache.v[i]
            keys[:, :, start] = qk[:, 0, nq:]
            values[:, :, start] = v[:, 0]
            y = F.scaled_dot_product_attention(
                qk[:, :, :nq].transpose(1, 2), keys[:, :, : start + 1], values[:, :, : start + 1],
                attn_mask=mask, enable_gqa=nkv != nq)
            x = x + proj(y.transpose(1, 2).reshape(B, 1, -1), w_o)
            h = proj(F.rms_norm(x, (c.n_embd,), w_post, eps), w_up)
            if c.mlp == "swiglu":
                gate, up = h.chunk(2, dim=-1)
                h = F.silu(gate) * up
            else:
                h = F.relu(h).square()
            x = x + proj(h, w_down)
        cache.length += 1
        return proj(F.rms_norm(x, (c.n_embd,), self.norm.weight, eps), head).float()

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        p = next(self.parameters())
        return KVCache(self.cfg, batch, max_len or self.cfg.seq_len, p.device, p.dtype)

    @torch.no_grad()
    def generate(
        self,
        prompt: list[int],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_ids: tuple[int, ...] = (),
        use_cache: bool = True,
    ) -> list[int]:
        """Sample a continuation of one prompt (the simple reference; see chatforge.engine)."""
        device = next(self.parameters()).device
        gen = torch.Generator(device=device)
        gen.manual_seed(seed if seed is not None else 0)
        ids = list(prompt)
        budget = min(max_new_tokens, self.cfg.seq_len - len(ids))
        cache = self.new_cache(1) if use_cache else None
        step_input = ids
        out: list[int] = []
        for _ in range(max(0, budget)):
            x = torch.tensor([step_input if use_cache else ids], device=device)
            logits = self(x, cache=cache)[:, -1]
            nxt = int(sample_next(logits, temperature, top_k, top_p, gen)[0])
            out.append(nxt)
            ids.append(nxt)
            step_input = [nxt]
            if nxt in stop_ids:
                break
        return out


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Tensor:
    """Next token per row from (B, vocab) logits; temperature 0 is greedy. `generator` may be
    one per row, so that a row's draws never depend on the other rows of the batch.

    Inverse-CDF sampling: one uniform number per row, against the cumulative probabilities,
    rather than multinomial's vocabulary-sized noise per row (the cost of sampling a batch).
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the mass before it already reaches top_p (always keep the first).
        drop = (cum - sorted_logits.softmax(-1)) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    cdf = logits.softmax(-1).cumsum(-1)
    if generator is None or isinstance(generator, torch.Generator):
        u = torch.rand(logits.size(0), 1, generator=generator, device=logits.device)
    else:
        u = torch.stack([torch.rand(1, generator=g, device=logits.device) for g in generator])
    # The first token whose cumulative mass exceeds u (a token of zero mass is never chosen).
    picked = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1)
    return picked.clamp(max=logits.size(-1) - 1)
