"""Compute, cost, energy and timeline of training a chat model, estimated and measured.

`estimate()` answers "what would training N parameters on D tokens cost"; `preset_estimate()`
does it for published models and chatforge's own presets; `measure_run()` reads what a
chatforge run actually used. Assumptions and their sources are listed in docs/cost.md.
"""

from __future__ import annotations

from chatforge.cost.estimate import DEFAULTS, Assumption, Estimate, LineItem, Phase, estimate
from chatforge.cost.hardware import DEVICES, Device, get_device
from chatforge.cost.measured import RunCost, StageCost, measure_run
from chatforge.cost.presets import PUBLISHED, count_params, preset_estimate, preset_names
from chatforge.errors import ConfigError

__all__ = [
    "DEFAULTS", "DEVICES", "PUBLISHED", "Assumption", "Device", "Estimate", "LineItem", "Phase",
    "RunCost", "StageCost", "count_params", "estimate", "get_device", "measure_run",
    "parse_overrides", "preset_estimate", "preset_names",
]


def parse_overrides(items: list[str] | None) -> dict[str, float]:
    """`["pue=1.1", "sft_demos=2e4"]` -> {"pue": 1.1, "sft_demos": 20000.0}."""
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = float(value.replace("_", ""))
        except ValueError:
            raise ConfigError(f"--set {item!r}: expected name=number, e.g. pue=1.1") from None
    return out
