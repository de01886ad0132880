"""Papers: PDF (text layer via pypdf) and LaTeX sources (.tex), one document per file.

LaTeX is reduced to the prose a reader sees: the preamble (everything before
\\begin{document}), comments, display math (equation, align, ..., \\[...\\], $$...$$), figures,
tables, TikZ and the bibliography are dropped; sectioning commands become heading lines;
formatting commands keep their argument (\\emph{x} -> x); references, citations and labels are
dropped. Inline math ($x^2$) is kept verbatim, as arXiv corpora (RedPajama, Proof-Pile) do: it
is short, part of the sentence, and a model should learn to write it.
A PDF that pypdf cannot open or read is skipped as "unparseable_pdf"; one with no text
layer (a scan) as "empty".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from chatforge.data.document import Document
from chatforge.data.sources.base import Source, decode_utf8, doc_id, find_files

_COMMENT = re.compile(r"(?<!\\)%.*")
# fmt: off
_DROP_ENVS = (
    "equation", "align", "alignat", "gather", "multline", "eqnarray", "displaymath", "math",
    "flalign", "figure", "table", "tabular", "tikzpicture", "thebibliography", "verbatim",
    "lstlisting", "algorithm", "algorithmic", "comment",
)
# fmt: on
_DROP_ENV = re.compile(r"\\begin\{(" + "|".join(_DROP_ENVS) + r")\*?\}.*?\\end\{\1\*?\}", re.DOTALL)
_DISPLAY_MATH = re.compile(r"\\\[.*?\\\]|\$\$.*?\$\$", re.DOTALL)
_INLINE_MATH = re.compile(r"(?<!\\)\$[^$]+?(?<!\\)\$|\\\(.*?\\\)", re.DOTALL)
_MATH_SLOT = re.compile("\x00(\\d+)\x00")
_SECTION = re.compile(
    r"\\(part|chapter|section|subsection|subsubsection|paragraph)\*?\s*(\[[^\]]*\])?\{([^{}]*)\}"
)
_DROP_CMD_ARG = re.compile(
    r"\\(cite[a-z]*|ref|eqref|autoref|cref|Cref|label|pageref|url|href|includegraphics|bibliography|"
    r"bibliographystyle|input|include|vspace|hspace|footnote|thanks|newcommand|renewcommand)\*?"
    r"(\[[^\]]*\])*(\{[^{}]*\})+"
)
_KEEP_CMD_ARG = re.compile(r"\\[a-zA-Z]+\*?(\[[^\]]*\])?\{([^{}]*)\}")
_BARE_CMD = re.compile(r"\\[a-zA-Z]+\*?(\[[^\]]*\])?")
_ITEM = re.compile(r"\\item\s*(\[[^\]]*\])?")
_ENV_MARK = re.compile(r"\\(begin|end)\{[^}]*\}")
_BLANK_RUNS = re.compile(r"\n{3,}")
_TITLE = re.compile(r"\\title\*?\s*(\[[^\]]*\])?\{((?:[^{}]|\{[^{}]*\})*)\}")
_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")


def latex_to_text(source: str) -> str:
    """Readable prose from a LaTeX document (see the module notes for what is dropped)."""
    text = "\n".join(_COMMENT.sub("", line) for line in source.splitlines())
    begin = text.find("\\begin{document}")
    if begin >= 0:
        end = text.find("\\end{document}", begin)
        text = text[begin + len("\\begin{document}") : end if end >= 0 else len(text)]
    text = _DROP_ENV.sub("", text)
    text = _DISPLAY_MATH.sub("", text)
    # Inline math is set aside so that command and brace stripping leave it intact.
    maths: list[str] = []

    def keep_math(m: re.Match[str]) -> str:
        maths.append(m.group(0))
        return f"\x00{len(maths) - 1}\x00"

    text = _INLINE_MATH.sub(keep_math, text)
    text = _SECTION.sub(lambda m: f"\n\n{m.group(3).strip()}\n\n", text)
    text = _ITEM.sub("\n- ", text)
    text = _DROP_CMD_ARG.sub("", text)
    text = _ENV_MARK.sub("", text)
    for _ in range(4):  # nested \textbf{\emph{x}} unwraps from the inside out
        text, n = _KEEP_CMD_ARG.subn(r"\2", text)
        if not n:
            break
    text = text.replace("\\\\", "\n").replace("~", " ")
    text = _BARE_CMD.sub("", text)
    text = (
        re.sub(r"(?<!\\)[{}]", "", text).replace("\\%", "%").replace("\\&", "&").replace("\\$", "$")
    )
    text = _MATH_SLOT.sub(lambda m: maths[int(m.group(1))], text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def pdf_to_text(path: Path) -> str:
    """The text layer of a PDF, pages separated by blank lines, words split at line ends joined."""
    from pypdf import PdfReader

    reader = PdfReader(path, strict=False)
    pages = [(page.extract_text() or "").strip() for page in reader.pages]
    return _HYPHEN_BREAK.sub(r"\1\2", "\n\n".join(p for p in pages if p))


class PapersSource(Source):
    """PDF and LaTeX files under the given paths."""

    kind = "papers"

    def __init__(self, path: str, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        # The cap is on the file: PDFs carry fonts and images, far more bytes than text.
        super().__init__(path, max_bytes=max_bytes)
        self.files = find_files(path, self.kind, (".pdf", ".tex"))

    def _iter(self) -> Iterator[Document]:
        for path in self.files:
            try:
                size = path.stat().st_size
            except OSError:
                self.skipped["unreadable"] += 1
                continue
            if size > self.max_bytes:
                self.skipped["too_large"] += 1
                continue
            doc = self._pdf(path) if path.suffix.lower() == ".pdf" else self._tex(path)
            if doc is not None:
                yield doc

    def _pdf(self, path: Path) -> Document | None:
        try:
            text = pdf_to_text(path)
        except Exception:  # noqa: BLE001 - pypdf raises many types on a broken file
            self.skipped["unparseable_pdf"] += 1
            return None
        if not self._checked(text):
            return None
        meta = {"format": "pdf", "file": str(path)}
        return Document(doc_id(self.kind, path.resolve()), self.kind, text, str(path), meta)

    def _tex(self, path: Path) -> Document | None:
        source = decode_utf8(path.read_bytes())
        if source is None:
            self.skipped["invalid_utf8"] += 1
            return None
        text = latex_to_text(source)
        if not self._checked(text):
            return None
        meta = {"format": "latex", "file": str(path)}
        if title := _TITLE.search(source):
            meta["title"] = latex_to_text(title.group(2))
        return Document(doc_id(self.kind, path.resolve()), self.kind, text, str(path), meta)
