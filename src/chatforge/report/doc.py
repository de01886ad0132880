"""A report as plain blocks (paragraph, table, image, preformatted text), written out as one
self-contained HTML page and as Markdown, so the two never say different things.

HTML: CSS inline, images as PNG data URIs, no script and no external request, so the page
opens from disk anywhere. Markdown: images as files beside it (report/<name>.png).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Para:
    text: str


@dataclass
class Sub:
    text: str  # a sub-heading


@dataclass
class Pre:
    text: str


@dataclass
class Table:
    head: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    name: str  # file name stem, unique in the report
    png: bytes
    alt: str


Block = Para | Sub | Pre | Table | Image


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    ran: bool = True


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1a202c;
background:#f7fafc;line-height:1.5}
main{max-width:1100px;margin:0 auto;padding:1.5rem 2rem 3rem}
h1{font-size:1.7rem;margin:.5rem 0 1rem}
h2{font-size:1.3rem;margin:2rem 0 .6rem;border-bottom:2px solid #cbd5e0;padding-bottom:.2rem}
h3{font-size:1.05rem;margin:1.2rem 0 .4rem}
section{background:#fff;border-radius:8px;padding:.2rem 1.2rem 1rem;margin:1rem 0;
box-shadow:0 1px 2px rgba(0,0,0,.08);overflow-x:auto}
section.absent{background:#edf2f7;color:#4a5568}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #e2e8f0;padding:.25rem .55rem;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#edf2f7}
td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f1f5f9;padding:.6rem;border-radius:6px;white-space:pre-wrap;font-size:.85rem}
img{max-width:100%;height:auto;display:block;margin:.4rem 0}
nav a{margin-right:.8rem}
.cmp{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.cmp>div{min-width:0;overflow-x:auto}
.runlabel{font-weight:600;color:#2b6cb0}
footer{color:#718096;font-size:.85rem;margin-top:2rem}
"""


def _numeric(cell: str) -> bool:
    """A figure (right-aligned in tables), not a model's answer that happens to be digits."""
    if len(cell) > 24:
        return False
    body = cell.replace("%", "").replace("$", "").replace(",", "").replace(".", "").strip()
    return body.lstrip("-").isdigit()


def _html_blocks(blocks: Sequence[Block]) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Para):
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Sub):
            out.append(f"<h3>{html.escape(b.text)}</h3>")
        elif isinstance(b, Pre):
            out.append(f"<pre>{html.escape(b.text)}</pre>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.head)
            rows = "".join(
                "<tr>" + "".join(
                    f'<td class="n">{html.escape(c)}</td>' if _numeric(c) else f"<td>{html.escape(c)}</td>"
                    for c in row) + "</tr>"
                for row in b.rows)
            thead = f"<thead><tr>{head}</tr></thead>" if any(b.head) else ""
            out.append(f"<table>{thead}<tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(b.png).decode()
            out.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(b.alt)}">')
    return "\n".join(out)


def to_html(title: str, lang: str, runs: Sequence[tuple[str, list[Section]]], footer: str) -> str:
    """One page; with two runs every section shows them in two columns."""
    first = runs[0][1]
    nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in first)
    parts = [f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width,initial-scale=1">',
             # No script, no external fetch: the page must open from disk, offline.
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
             "img-src data:; style-src 'unsafe-inline'\">",
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><main>",
             f"<h1>{html.escape(title)}</h1><nav>{nav}</nav>"]
    for i, section in enumerate(first):
        ran = any(r[1][i].ran for r in runs)
        parts.append(f'<section id="{section.id}" class="{"ran" if ran else "absent"}">'
                     f"<h2>{html.escape(section.title)}</h2>")
        if len(runs) == 1:
            parts.append(_html_blocks(section.blocks))
        else:
            cols = "".join(f'<div><p class="runlabel">{html.escape(name)}</p>{_html_blocks(secs[i].blocks)}</div>'
                           for name, secs in runs)
            parts.append(f'<div class="cmp">{cols}</div>')
        parts.append("</section>")
    parts.append(f"<footer>{html.escape(footer)}</footer></main></body></html>")
    return "\n".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _md_blocks(blocks: Sequence[Block]) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Sub):
            out.append(f"#### {b.text}")
        elif isinstance(b, Pre):
            out.append("```\n" + b.text.replace("```", "'''") + "\n```")
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in b.head) + " |",
                     "|" + "---|" * len(b.head)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        else:
            out.append(f"![{b.alt}]({b.name}.png)")
    return "\n\n".join(out)


def to_markdown(title: str, runs: Sequence[tuple[str, list[Section]]], footer: str) -> str:
    parts = [f"# {title}"]
    for i, section in enumerate(runs[0][1]):
        parts.append(f"## {section.title}")
        for name, secs in runs:
            if len(runs) > 1:
                parts.append(f"### {name}")
            parts.append(_md_blocks(secs[i].blocks))
    parts.append(f"---\n{footer}")
    return "\n\n".join(parts) + "\n"


def images(sections: Sequence[Section]) -> list[Image]:
    return [b for s in sections for b in s.blocks if isinstance(b, Image)]
