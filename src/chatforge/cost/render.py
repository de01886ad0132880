"""Terminal tables, the text Gantt chart and the PNG Gantt chart of an estimate."""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chatforge.cost.estimate import DAYS_PER_MONTH, Estimate, Phase
from chatforge.cost.measured import RunCost
from chatforge.runs import atomic_path


def human(x: float, unit: str = "") -> str:
    """3 significant figures with k/M/B/T suffixes: 1.72M, 3.14e+23 for the huge."""
    if x == 0:
        return f"0{unit}"
    if abs(x) >= 1e15 or abs(x) < 1e-2:
        return f"{x:.3g}{unit}"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def usd(x: float) -> str:
    return "$" + human(x)


def time_unit(months: float) -> tuple[str, float]:
    """The unit a span reads best in, and its size in months: months, days or hours."""
    if months >= 1:
        return "months", 1.0
    if months * DAYS_PER_MONTH >= 1:
        return "days", 1 / DAYS_PER_MONTH
    return "hours", 1 / (DAYS_PER_MONTH * 24)


def duration(days: float) -> str:
    """A wall-clock time in days, hours or minutes, whichever reads best."""
    if days >= 1:
        return f"{days:,.1f} days"
    if days * 24 >= 1:
        return f"{days * 24:.1f} hours"
    return f"{days * 1440:.3g} minutes"


def gantt_text(timeline: list[Phase], width: int = 48) -> str:
    """One row per phase, bars on a time axis (months, days or hours) `width` characters wide."""
    unit, size = time_unit(max(p.end_month for p in timeline))
    end = max(p.end_month for p in timeline) / size or 1.0
    scale = width / end
    name_w = max(len(p.name) for p in timeline)
    rows = []
    for p in timeline:
        start, length = p.start_month / size, p.months / size
        lo = min(round(start * scale), width - 1)
        hi = min(width, max(lo + 1, round((start + length) * scale)))
        bar = " " * lo + "█" * (hi - lo)
        rows.append(f"{p.name:<{name_w}} |{bar:<{width}}| {start:6.3g} +{length:6.3g} {unit}")
    step = _tick_step(end)
    axis = [" "] * (width + 1)
    labels = [" "] * (width + 8)
    for i in range(int(end / step) + 1):
        pos = round(i * step * scale)
        axis[pos] = "+"
        text = f"{i * step:g}"
        labels[pos : pos + len(text)] = text
    rows.append(" " * name_w + " " + "".join(axis))
    rows.append(" " * name_w + " " + "".join(labels).rstrip() + f"  {unit}")
    return "\n".join(rows)


def _tick_step(end: float) -> float:
    """A 1-2-5 step giving at most ~8 ticks over `end` months."""
    raw = end / 8
    base = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * base for m in (1, 2, 5, 10) if m * base >= raw)


def gantt_png(timeline: list[Phase], path: str | Path, title: str = "") -> Path:
    """Draw the timeline as a horizontal-bar Gantt chart in a PNG (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    unit, size = time_unit(max(p.end_month for p in timeline))
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(timeline) + 1.5))
    phases = timeline[::-1]
    colors = plt.get_cmap("tab10").colors
    for i, p in enumerate(phases):
        start, length = p.start_month / size, p.months / size
        ax.barh(i, length, left=start, color=colors[(len(phases) - 1 - i) % 10])
        ax.text(start + length, i, f" {length:.1f} {unit}", va="center", fontsize=8)
    ax.set_yticks(range(len(phases)), [p.name for p in phases])
    ax.set_xlabel(f"{unit} from start")
    ax.set_xlim(0, max(p.end_month for p in timeline) / size * 1.15 or 1)
    ax.set_title(title or "project timeline")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def print_estimate(est: Estimate, console: Console) -> None:
    """Every result and every assumption behind it, with sources."""
    a = est.assumptions
    t = Table(title=f"Training compute{': ' + est.label if est.label else ''}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    dense = est.flops_per_token - est.attention_flops_per_token
    rows = [
        ("parameters", f"{human(est.params)} total, {human(est.active_params)} active per token"),
        ("tokens", human(est.tokens)),
        ("FLOPs per token", f"{human(est.flops_per_token)} = 6N {human(dense)} + attention "
         f"{human(est.attention_flops_per_token)} (12 x layers {a['layers'].value:g} x heads "
         f"{a['heads'].value:g} x head_dim {a['head_dim'].value:g} x seq {a['seq_len'].value:g}, "
         "PaLM app. B)"),
        ("training FLOPs", f"{est.flops:.3g}"),
        ("hardware", f"{est.gpus:,} x {est.device.name} ({a['peak_tflops'].value:g} TFLOP/s peak)"
         f" at {a['mfu'].value:.0%} MFU"),
        ("device-hours", f"{human(est.gpu_hours)} {est.device.key}-hours"),
        ("wall-clock", duration(est.days)),
        ("compute cost",
         f"{usd(est.cost_usd)} at ${a['price_usd_per_gpu_hour'].value:g}/device-hour"),
        ("energy", f"{est.energy_mwh:,.4g} MWh at PUE {a['pue'].value:g}; electricity "
         f"{usd(est.electricity_usd)} (inside a rental price; what an owner pays)"),
        ("power draw", f"{est.power_mw:.3g} MW for {est.gpus:,} devices"),
    ]
    for row in rows:
        t.add_row(*row)
    console.print(t)

    if est.published:
        pub = Table(title="Published vs estimated")
        for col in ("figure", "published", "estimated", "ratio", "source"):
            pub.add_column(col)
        for key, (value, source) in est.published.items():
            mine = getattr(est, key)
            pub.add_row(key, human(value), human(mine), f"{mine / value:.2f}", escape(source))
        console.print(pub)

    m = est.memory_gb
    mem = Table(title="Memory to train (whole model, GB)")
    for col in ("weights", "grads", "optimizer", "activations", "act. recompute",
                "total (recompute)", "min devices"):
        mem.add_column(col, justify="right")
    mem.add_row(*(human(m[k]) for k in ("weights", "gradients", "optimizer", "activations",
                                        "activations_recompute", "total_recompute")),
                f"{est.min_gpus:,} x {a['gpu_memory_gb'].value:g} GB")
    console.print(mem)
    console.print(
        f"  activations: layers x micro_batch x seq x width x {a['activation_bytes'].value:g} "
        f"bytes (Korthikanti et al. 2022); with full recomputation "
        f"{a['recompute_bytes'].value:g} bytes per layer + one layer's working set; min devices "
        f"= total / ({a['usable_memory'].value:.0%} of device memory), fully sharded"
    )

    lines = Table(title="Cost lines")
    lines.add_column("line")
    lines.add_column("USD", justify="right")
    lines.add_column("how")
    for line in est.lines:
        lines.add_row(line.name, usd(line.usd), escape(line.detail))
    lines.add_row("[bold]total[/bold]", f"[bold]{usd(est.total_usd)}[/bold]", "")
    console.print(lines)

    unit, size = time_unit(est.months)
    console.print(f"[bold]Timeline[/bold] ({est.months / size:.1f} {unit})")
    console.print(gantt_text(est.timeline), highlight=False, markup=False)

    table = Table(title="Assumptions (override any with --set name=value)")
    for col in ("name", "value", "unit", "source"):
        table.add_column(col)
    for key, item in est.assumptions.items():
        table.add_row(key, f"{item.value:,.6g}", item.unit, escape(item.source))
    console.print(table)


def print_run_cost(rc: RunCost, console: Console) -> None:
    """Per-stage wall time, device-hours, energy and dollars, then the scaled recipe if asked."""
    t = Table(title=f"What {rc.run_dir} cost")
    for col in ("stage", "status", "wall", "device", "device-hours", "energy kWh", "USD"):
        t.add_column(col, justify="left" if col in ("stage", "status", "device") else "right")
    for s in rc.stages:
        unit = "core" if s.device == "cpu" else f"{s.n_devices} x {s.device}"
        t.add_row(s.stage, s.status, f"{s.wall_s:,.1f} s", unit, f"{s.device_hours:.4g}",
                  f"{s.energy_kwh:.4g}", f"${s.usd:.4g}")
    t.add_row("[bold]total[/bold]", "", f"{rc.total('wall_s'):,.1f} s", "",
              f"{rc.total('device_hours'):.4g}", f"{rc.total('energy_kwh'):.4g}",
              f"${rc.total('usd'):.4g}")
    console.print(t)
    console.print(f"  electricity: {rc.total('energy_kwh'):.4g} kWh x "
                  f"${rc.assumptions['electricity_usd_per_kwh'].value:g}/kWh = "
                  f"${rc.electricity_usd:.4g}; CPU stages count core-hours "
                  f"({rc.assumptions['cpu_cores'].value:g} busy cores)")
    if rc.params:
        console.print(f"  model: {human(rc.params)} parameters ({human(rc.matmul_params or 0)} "
                      "excluding the input embedding)"
                      + (f", {human(rc.tokens)} pre-training tokens" if rc.tokens else "")
                      + (f", measured MFU {rc.mfu:.1%}" if rc.mfu is not None else ""))
    table = Table(title="Assumptions (override with --set name=value)")
    for col in ("name", "value", "unit", "source"):
        table.add_column(col)
    for key, item in rc.assumptions.items():
        table.add_row(key, f"{item.value:,.6g}", item.unit, escape(item.source))
    console.print(table)
    for note in rc.notes:
        console.print(f"  note: {escape(note)}")
    if rc.scaled:
        console.rule(f"The same recipe at {human(rc.scaled.params)} parameters")
        print_estimate(rc.scaled, console)
