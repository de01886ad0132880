"""Hugging Face export and import: a chatforge GPT as a native `transformers` architecture.

`export_hf` writes config.json, model.safetensors, generation_config.json, tokenizer.json and
tokenizer_config.json (with the chat template), so `AutoModelForCausalLM` / `AutoTokenizer`
load it with no custom code, and vLLM, llama.cpp's converters and lm-evaluation-harness see a
model they know. Which class holds it follows from the architecture:

- no QK-norm: `LlamaForCausalLM`;
- QK-norm (per-head RMSNorm on q and k, before RoPE, as chatforge does it): `Qwen3ForCausalLM`;
- a ReLU² MLP: refused, no native class has one.

Both use RoPE's half-split layout (chatforge's), silu-gated MLPs, bias-free projections,
grouped-query attention and an explicit head_dim; parameter names are chatforge's under a
`model.` prefix (the output head stays `lm_head`, omitted when tied). Tests pin the logits of
transformers to chatforge's (max abs diff < 1e-4 in fp32). `import_hf` reads such a directory
back into a chatforge weights directory (`save_model`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import processors

from chatforge.errors import InputError
from chatforge.model.checkpoint import state_for_save
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.runs import atomic_path, atomic_write_json, atomic_write_text
from chatforge.tokenizer.bpe import BPETokenizer, Tokenizer
from chatforge.tokenizer.chat import ASSISTANT_END, jinja_chat_template, stop_token_ids
from chatforge.tokenizer.specials import SPECIAL_TOKENS

ARCHITECTURES = {False: ("LlamaForCausalLM", "llama"), True: ("Qwen3ForCausalLM", "qwen3")}
_PREFIX = "model."  # transformers keeps the trunk under `model`, the head beside it


def hf_config(cfg: GPTConfig, tok: Tokenizer, dtype: torch.dtype) -> dict:
    """config.json of a chatforge architecture; a ReLU² MLP is refused (no native class)."""
    if cfg.mlp != "swiglu":
        raise InputError(
            f"cannot export a {cfg.mlp} MLP: no native transformers class holds one "
            "(Llama and Qwen3 need swiglu; retrain with model.mlp=swiglu)"
        )
    arch, model_type = ARCHITECTURES[cfg.qk_norm]
    out = {
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.n_embd,
        "intermediate_size": cfg.mlp_hidden,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.seq_len,
        "rms_norm_eps": cfg.norm_eps,
        # transformers 5 reads rope_parameters; older readers (vLLM, llama.cpp) rope_theta.
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": tok.bos_id,
        "eos_token_id": tok.eot_id,
        "pad_token_id": tok.pad_id,
        "dtype": str(dtype).removeprefix("torch."),
    }
    if cfg.qk_norm:
        out |= {"use_sliding_window": False, "sliding_window": None, "max_window_layers": cfg.n_layer}
    else:
        out |= {"mlp_bias": False, "pretraining_tp": 1}
    return out


def hf_tokenizer_json(tok: Tokenizer) -> str:
    """tokenizer.json text: a trained chatforge BPE is already in `tokenizers` format; a
    post-processor adds <|bos|> as Llama's tokenizer does, so tools that encode "with special
    tokens" (lm-eval's add_bos_token) see what chatforge's base-model prompts start with."""
    if not isinstance(tok, BPETokenizer):
        raise InputError(
            f"cannot export a {type(tok).__name__}: only tokenizers trained by chatforge "
            "(tokenizer.json) are exported"
        )
    hf = HFTokenizer.from_str(tok.to_json())
    bos = names_of(tok)[tok.bos_id]
    hf.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.bos_id)]
    )
    return hf.to_str(pretty=True)


def names_of(tok: Tokenizer) -> dict[int, str]:
    """{id: special token} of a tokenizer."""
    return {tok.special_id(s): s for s in SPECIAL_TOKENS}


def export_hf(model: GPT, tok: Tokenizer, out: str | Path) -> list[Path]:
    """Write `model` and `tok` as a transformers directory; the files written, in order."""
    out = Path(out)
    if tok.vocab_size > model.cfg.vocab_size:
        raise InputError(
            f"tokenizer has {tok.vocab_size} ids but the model only {model.cfg.vocab_size}: "
            "not this model's tokenizer"
        )
    state = state_for_save(model)
    dtype = state["embed_tokens.weight"].dtype
    config = hf_config(model.cfg, tok, dtype)
    tensors = {(k if k.startswith("lm_head.") else _PREFIX + k): v for k, v in state.items()}
    if model.cfg.tie_embeddings:
        tensors.pop("lm_head.weight", None)  # transformers re-ties it from the embeddings
    tokenizer_json = hf_tokenizer_json(tok)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    stops = list(stop_token_ids(tok))
    generation = {
        "bos_token_id": tok.bos_id,
        "eos_token_id": stops,  # a reply ends at <|assistant_end|> (or a model's slip)
        "pad_token_id": tok.pad_id,
    }  # no max_length: transformers warns when a caller's max_new_tokens meets one
    names = names_of(tok)
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": names[tok.bos_id],
        "eos_token": ASSISTANT_END,  # what apply_chat_template users stop on
        "pad_token": names[tok.pad_id],
        "unk_token": None,
        "add_bos_token": True,  # the chat template writes <|bos|> itself, and encodes without
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model.cfg.seq_len,
        "chat_template": jinja_chat_template(),
        "additional_special_tokens": [
            s for s in SPECIAL_TOKENS if s not in (names[tok.bos_id], names[tok.pad_id], ASSISTANT_END)
        ],
    }
    atomic_write_json(out / "config.json", config)
    atomic_write_json(out / "generation_config.json", generation)
    atomic_write_text(out / "tokenizer.json", tokenizer_json)
    atomic_write_json(out / "tokenizer_config.json", tokenizer_config)
    atomic_write_json(out / "special_tokens_map.json", {
        k: tokenizer_config[k] for k in ("bos_token", "eos_token", "pad_token", "additional_special_tokens")
    })
    names_written = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                     "tokenizer_config.json", "special_tokens_map.json")
    return [out / n for n in names_written]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (not a transformers model directory)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    return data


def gpt_config_from_hf(config: dict, source: str | Path) -> GPTConfig:
    """The chatforge architecture of a Llama or Qwen3 config.json; anything else is refused,
    naming the setting chatforge has no equivalent for."""
    arch = (config.get("architectures") or ["?"])[0]
    known = {name: qk for qk, (name, _) in ARCHITECTURES.items()}
    if arch not in known:
        raise InputError(f"{source}: architecture {arch} is not one chatforge holds ({', '.join(known)})")

    def need(key: str, ok: bool, want: str) -> None:
        if not ok:
            raise InputError(f"{source}: {key}={config.get(key)!r} is not supported ({want})")

    need("hidden_act", config.get("hidden_act", "silu") == "silu", "chatforge's MLP is silu-gated")
    need("attention_bias", not config.get("attention_bias", False), "chatforge has no biases")
    need("mlp_bias", not config.get("mlp_bias", False), "chatforge has no biases")
    need("use_sliding_window", not config.get("use_sliding_window", False), "full attention only")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    need("rope_parameters", rope_type == "default", "plain RoPE, no scaling")
    try:
        width, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or width // heads)
        need("head_dim", head_dim * heads == width, f"must equal hidden_size / heads = {width // heads}")
        cfg = GPTConfig(
            vocab_size=int(config["vocab_size"]),
            n_layer=int(config["num_hidden_layers"]),
            n_embd=width,
            n_head=heads,
            n_kv_head=int(config.get("num_key_value_heads") or heads),
            seq_len=int(config["max_position_embeddings"]),
            mlp="swiglu",
            mlp_hidden=int(config["intermediate_size"]),
            qk_norm=known[arch],
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
            rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
            norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        )
    except KeyError as exc:
        raise InputError(f"{source}: lacks {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: bad value ({exc})") from None
    return cfg


def _read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """Tensors of model.safetensors or of the shards its index names (never pickles)."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(_read_json(index).get("weight_map", {}).values()))
    elif (directory / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise InputError(f"{directory}: no model.safetensors (pickled .bin weights are not read)")
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        try:
            tensors |= load_file(str(directory / name))
        except (SafetensorError, OSError) as exc:
            raise InputError(f"{directory / name}: unreadable ({exc})") from None
    return tensors


def import_hf(directory: str | Path) -> tuple[GPT, BPETokenizer | None, str]:
    """A chatforge GPT from a transformers Llama/Qwen3 directory, its tokenizer when it is
    one chatforge can use (a byte-level BPE with the chat special tokens), else None and the
    reason why not (so a caller can say what it left behind)."""
    directory = Path(directory)
    cfg = gpt_config_from_hf(_read_json(directory / "config.json"), directory / "config.json")
    tensors = _read_hf_weights(directory)
    state = {k.removeprefix(_PREFIX): v for k, v in tensors.items()
             if not k.endswith("rotary_emb.inv_freq")}
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)  # restored from the embeddings by the tie
    model = GPT(cfg)
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state.get("embed_tokens.weight")
    expected = set(model.state_dict())
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra or any(state[k] is None for k in expected):
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise InputError(f"{directory}: weights do not fit the config ({what})")
    for name, param in model.state_dict().items():
        if state[name].shape != param.shape:
            raise InputError(
                f"{directory}: {name} has shape {tuple(state[name].shape)}, config says {tuple(param.shape)}"
            )
    model.load_state_dict(state)
    path = directory / "tokenizer.json"
    if not path.is_file():
        return model, None, f"{path}: no such file"
    try:
        hf = HFTokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        return model, None, f"{path}: not a tokenizers JSON file ({exc})"
    try:
        return model, BPETokenizer(hf, source=str(path)), ""
    except InputError as exc:
        return model, None, str(exc)


def tokenizer_beside(checkpoint: str | Path) -> Path:
    """The tokenizer of a checkpoint directory: its own tokenizer.json (an import), else the
    run's tokenizer/ for a stage dir (runs/x/checkpoints/sft) or one save in it."""
    checkpoint = Path(checkpoint)
    candidates = [checkpoint, checkpoint.parent.parent / "tokenizer",
                  checkpoint.parent.parent.parent / "tokenizer"]
    for directory in candidates:
        if (directory / "tokenizer.json").is_file() or any(directory.glob("*.tiktoken")):
            return directory
    raise InputError(f"{checkpoint}: no tokenizer beside it (pass --tokenizer DIR)")
