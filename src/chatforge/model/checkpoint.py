"""Model checkpoints as safetensors + JSON (never pickle), written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from chatforge.errors import RunDirError
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.runs import atomic_path, atomic_write_json


def save_model(
    model: GPT, directory: str | Path, extra: dict | None = None, step: int | None = None
) -> None:
    """Write model.safetensors and model.json (architecture + `extra` metadata).

    `step` is stored in the safetensors header so a resume can tell which save it is.
    """
    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)  # the same tensor as embed_tokens.weight
    with atomic_path(directory / "model.safetensors") as tmp:
        meta = {"format": "pt"} if step is None else {"format": "pt", "step": str(step)}
        save_file(state, str(tmp), metadata=meta)
    atomic_write_json(directory / "model.json", {"config": model.cfg.to_dict(), **(extra or {})})


def read_model_json(directory: str | Path) -> dict:
    path = Path(directory) / "model.json"
    if not path.exists():
        raise RunDirError(f"{directory}: no model.json (is this a chatforge checkpoint directory?)")
    return json.loads(path.read_text())


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> GPT:
    """Build the GPT described by model.json and load its weights."""
    directory = Path(directory)
    meta = read_model_json(directory)
    weights = directory / "model.safetensors"
    if not weights.exists():
        raise RunDirError(f"{directory}: model.json without model.safetensors")
    model = GPT(GPTConfig(**meta["config"]))
    state = load_file(str(weights), device=str(device))
    if model.cfg.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    model.load_state_dict(state)
    return model.to(device)
