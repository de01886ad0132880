"""Model checkpoints as safetensors + JSON (never pickle), written atomically, and the one
loader for every kind of model.

A weights directory holds `model.safetensors` and `model.json`; model.json names the model's
`kind` (a key of KINDS) and its architecture, so `load_checkpoint` builds the right module for
a GPT, a reward model or a value model alike. A training stage's directory holds one
directory per save and a `LATEST` file naming the complete one (chatforge.train.loop):
`load_checkpoint` follows it, so a reader never sees a save in progress.

Tied weights (one tensor under two names, e.g. a tied output head) are found from the module
itself, stored once, and restored on load, here and nowhere else.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from chatforge.errors import RunDirError
from chatforge.model.gpt import GPT, GPTConfig
from chatforge.model.reward import PolicyValueModel, RewardModel, ValueModel
from chatforge.runs import atomic_path, atomic_write_json

KINDS: dict[str, type[nn.Module]] = {
    cls.kind: cls for cls in (GPT, RewardModel, ValueModel, PolicyValueModel)
}
LATEST = "LATEST"  # in a stage's checkpoint directory: the name of its newest complete save


def tied_aliases(model: nn.Module) -> dict[str, str]:
    """{alias: first name} for every parameter registered under more than one name."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            aliases[name] = first[id(p)]
        else:
            first[id(p)] = name
    return aliases


def state_for_save(model: nn.Module, state: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """CPU, contiguous tensors of the model's state (or of `state`, the full tensors gathered
    from a sharded model), each tied tensor once."""
    aliases = tied_aliases(model)
    state = model.state_dict(keep_vars=False) if state is None else state
    return {k: v.detach().cpu().contiguous() for k, v in state.items() if k not in aliases}


def load_weights(model: nn.Module, state: dict[str, Tensor], source: str | Path) -> None:
    """Load a saved state into `model`, restoring tied aliases; a mismatch names the file."""
    state = dict(state)
    for alias, name in tied_aliases(model).items():
        if name in state:
            state[alias] = state[name]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunDirError(f"{source}: weights do not fit the model ({first})") from None


def save_model(
    model: nn.Module, directory: str | Path, extra: dict | None = None, step: int | None = None,
    state: dict[str, Tensor] | None = None,
) -> None:
    """Write model.safetensors and model.json (kind, architecture, `extra` metadata); `state`
    replaces the model's own tensors (the training loop's gathered FSDP state)."""
    directory = Path(directory)
    with atomic_path(directory / "model.safetensors") as tmp:
        meta = {"format": "pt"} if step is None else {"format": "pt", "step": str(step)}
        save_file(state_for_save(model, state), str(tmp), metadata=meta)
    info = {"kind": model.kind, "config": model.cfg.to_dict(), **(extra or {})}
    atomic_write_json(directory / "model.json", info)


def resolve_checkpoint(path: str | Path) -> Path:
    """The weights directory a path stands for: itself, or the save its LATEST file names."""
    path = Path(path)
    pointer = path / LATEST
    if pointer.is_file():
        target = path / pointer.read_text().strip()
        if not (target / "model.json").is_file():
            raise RunDirError(f"{pointer}: names {target.name}, which holds no model.json")
        return target
    if (path / "model.json").is_file():
        return path
    raise RunDirError(f"{path}: no checkpoint here (no {LATEST} file and no model.json)")


def read_model_json(path: str | Path) -> dict:
    """model.json of a weights or stage directory (a pre-`kind` file reads as a GPT)."""
    directory = resolve_checkpoint(path)
    try:
        meta = json.loads((directory / "model.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{directory / 'model.json'}: not valid JSON ({exc})") from None
    meta.setdefault("kind", "gpt")
    if meta["kind"] not in KINDS:
        raise RunDirError(
            f"{directory / 'model.json'}: unknown model kind {meta['kind']!r} "
            f"(known: {', '.join(KINDS)})"
        )
    return meta


def read_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The tensors of model.safetensors; a truncated or corrupt file is a one-line error."""
    weights = resolve_checkpoint(path) / "model.safetensors"
    if not weights.is_file():
        raise RunDirError(f"{weights.parent}: model.json without model.safetensors")
    try:
        return load_file(str(weights), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise RunDirError(f"{weights}: unreadable ({exc}); the file is truncated or corrupt") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Build the model a checkpoint describes (any kind) and load its weights."""
    directory = resolve_checkpoint(path)
    meta = read_model_json(directory)
    model = KINDS[meta["kind"]](GPTConfig(**meta["config"]))
    load_weights(model, read_weights(directory, device), directory / "model.safetensors")
    return model.to(device)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> GPT:
    """A checkpoint that must be a language model (chat, evaluation, export); of a policy
    trained with its critic (PPO), the policy."""
    model = load_checkpoint(path, device)
    model = getattr(model, "language_model", model)
    if not isinstance(model, GPT):
        raise RunDirError(f"{path}: a {model.kind} checkpoint, not a language model")
    return model
