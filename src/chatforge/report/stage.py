"""`chatforge report` and the pipeline's last stage: the run's article, in HTML and Markdown.

Writes report/index.html (self-contained), report/report.md with its PNG plots beside it, and
report/report.json: the facts every figure in the page was formatted from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatforge.config import Config
from chatforge.errors import ConfigError
from chatforge.report import doc, facts, sections
from chatforge.report.i18n import LANGS, t
from chatforge.runs import RunDir, atomic_write_bytes, atomic_write_text
from chatforge.stage import StageResult

EXPECTED = facts.STAGE_ORDER


def build_report(run_dir: str | Path, *, lang: str = "en", compare: str | Path | None = None,
                 out: str | Path | None = None, cost_preset: str = "gpt4",
                 max_new_tokens: int = 40) -> dict[str, Any]:
    """Collect the run's facts (and the other run's with `compare`), write the report files
    and return their paths."""
    if lang not in LANGS:
        raise ConfigError(f"report: --lang {lang!r} is not one of {', '.join(LANGS)}")
    root = Path(run_dir)
    out_dir = Path(out) if out else root / "report"
    kw = {"cost_preset": cost_preset, "max_new_tokens": max_new_tokens}
    runs = [facts.collect(root, **kw)]
    if compare is not None:
        runs.append(facts.collect(compare, **kw))
    labelled = []
    for i, f in enumerate(runs):
        name = f["name"] if len(runs) == 1 or runs[0]["name"] != runs[1]["name"] else f"{f['name']} ({i + 1})"
        labelled.append((name, sections.build(f, lang, EXPECTED, tag=f"r{i}_" if len(runs) > 1 else "")))
    title = t("title", lang) if len(runs) == 1 else f"{t('title', lang)}: {t('compare_title', lang)}"
    intro = doc.Para(t("intro", lang))
    for _, secs in labelled:
        secs[0].blocks.insert(0, intro)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = doc.to_html(title, lang, labelled, t("footer", lang))
    atomic_write_text(out_dir / "index.html", page)
    atomic_write_text(out_dir / "report.md", doc.to_markdown(title, labelled, t("footer", lang)))
    for _, secs in labelled:
        for img in doc.images(secs):
            atomic_write_bytes(out_dir / f"{img.name}.png", img.png)
    payload = runs[0] if len(runs) == 1 else {"runs": runs}
    atomic_write_text(out_dir / "report.json", facts.dumps(payload) + "\n")
    absent = [s.id for s in labelled[0][1] if not s.ran]
    return {"html": str(out_dir / "index.html"), "markdown": str(out_dir / "report.md"),
            "json": str(out_dir / "report.json"), "sections": [s.id for s in labelled[0][1]],
            "absent_sections": absent}


def run(cfg: Config, run: RunDir) -> StageResult:
    """Pipeline stage `report`: the article of the run so far, in the configured language."""
    paths = build_report(run.root, lang=cfg.report.lang, cost_preset=cfg.report.cost_preset,
                         max_new_tokens=cfg.report.max_new_tokens)
    absent = paths["absent_sections"]
    note = f" (did not run: {', '.join(absent)})" if absent else ""
    return StageResult(outputs={k: str(Path(paths[k]).relative_to(run.root)) for k in ("html", "markdown", "json")},
                       metrics={"sections": len(paths["sections"]), "absent_sections": absent},
                       summary=f"{paths['html']}{note}")
