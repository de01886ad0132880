"""The report's plots as PNG bytes (matplotlib, one function each).

Each takes the figures from report facts and the language for its labels; the caller embeds
the bytes in the HTML as a data URI and writes them beside report.md.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from chatforge.report.i18n import num, pct, t

DPI = 110
COLORS = ("#2b6cb0", "#dd6b20", "#2f855a", "#c53030", "#6b46c1", "#718096", "#b7791f")


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure on the Agg canvas directly: no pyplot, so no global state and no display."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _style(ax: Axes) -> None:
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def funnel(steps: Sequence[str], per_source: dict[str, Sequence[float]], total: Sequence[float],
           lang: str) -> bytes:
    """Share of documents left after each step, one line per source and the total in bold."""
    fig, ax = _figure(7.5, 3.6)
    x = range(len(steps))
    for i, (source, shares) in enumerate(sorted(per_source.items())):
        ax.plot(x, shares, marker="o", ms=3, lw=1.3, color=COLORS[i % len(COLORS)], label=source)
    ax.plot(x, total, marker="o", lw=2.2, ls="--", color="black", label=t("total", lang))
    ax.set_xticks(list(x), steps, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: pct(v, lang, 0)))
    ax.set_title(t("plot_funnel", lang), fontsize=10)
    ax.legend(fontsize=8, ncol=3, loc="lower left")
    _style(ax)
    return _png(fig)


def lines(series: dict[str, Sequence[Sequence[float]]], title: str, xlabel: str, lang: str,
          secondary: dict[str, Sequence[Sequence[float]]] | None = None) -> bytes:
    """Curves over steps; `secondary` series go on a right-hand axis (KL beside a score)."""
    fig, ax = _figure(6.4, 3.2)
    handles = []
    for i, (label, pts) in enumerate(series.items()):
        (h,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 40 else None,
                       color=COLORS[i % len(COLORS)], label=label)
        handles.append(h)
    if secondary:
        ax2 = ax.twinx()
        for j, (label, pts) in enumerate(secondary.items(), start=len(series)):
            (h,) = ax2.plot([p[0] for p in pts], [p[1] for p in pts], ls="--",
                            color=COLORS[j % len(COLORS)], label=label)
            handles.append(h)
            ax2.set_ylabel(label, fontsize=8)
        ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: num(v, lang, 2)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: num(v, lang, 2)))
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(handles=handles, fontsize=8)
    _style(ax)
    return _png(fig)


def heatmap(rows: Sequence[str], cols: Sequence[str], values: Sequence[Sequence[float | None]],
            title: str, lang: str) -> bytes:
    """Rates in [0, 1] as a grid with each cell's percentage written in it, so a row of zeros
    reads as clearly as a row of hits (a bar chart of zeros shows nothing)."""
    fig, ax = _figure(1.6 + 1.3 * len(cols), 0.9 + 0.32 * len(rows))
    grid = [[v if v is not None else float("nan") for v in row] for row in values]
    ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, pct(v, lang, 0), ha="center", va="center", fontsize=8,
                    color="white" if v is not None and v > 0.6 else "black")
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_title(title, fontsize=10, pad=22)
    return _png(fig)


def timeline(phases: Sequence[dict], lang: str) -> bytes:
    """The project's phases as a Gantt chart over months."""
    fig, ax = _figure(7.2, 0.38 * len(phases) + 1.2)
    for i, p in enumerate(phases):
        ax.barh(i, max(p["months"], 0.05), left=p["start_month"], color=COLORS[i % len(COLORS)])
    ax.set_yticks(range(len(phases)), [p["phase"] for p in phases], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(t("month", lang), fontsize=9)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: num(v, lang, 0)))
    ax.set_title(t("plot_timeline", lang), fontsize=10)
    _style(ax)
    return _png(fig)
