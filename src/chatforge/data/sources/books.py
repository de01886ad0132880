"""Books as plain text files, with Project Gutenberg's header, footer and license stripped.

The body is what lies between the "*** START OF THE PROJECT GUTENBERG EBOOK ... ***" and
"*** END OF ..." markers (older files: "*END*THE SMALL PRINT!" and "End of the Project
Gutenberg EBook"), less the "Produced by ..." credit that opens it. Title, author, language and
ebook number are read from the header into metadata. Files without the markers are kept
whole. One file is one document; a file over `max_bytes` is skipped as "too_large". A book
longer than `data.max_doc_chars` is cut into chapters by the normalize step (see
chatforge.data.split), not dropped.

Project Gutenberg wraps prose at about 70 columns. Those line breaks are typesetting, not
text: a model would learn to break lines mid-sentence, and web filters that read lines
(FineWeb's share of lines ending in punctuation, C4's short lines) would remove whole chapters
of a novel. So a paragraph whose lines (all but its last) fill the wrap width is joined into
one line; verse, lists and headings, whose lines are short, keep their breaks. Gutenberg's
superscript ("M^{rs}") and italic ("_very_") markup becomes plain text: its braces read as code
to C4's rules, and a paragraph ending "._" as one without final punctuation to FineWeb's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from chatforge.data.document import Document
from chatforge.data.sources.base import (
    COMPRESSION_ERRORS,
    Source,
    decode_utf8,
    doc_id,
    find_files,
    open_binary,
    read_capped,
    truncation_reason,
)

_START = re.compile(
    r"^\s*(\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG EBOOK.*|\*END\*THE SMALL PRINT!.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_END = re.compile(
    r"^\s*(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG EBOOK.*|End of (the )?Project Gutenberg'?s? .*)$",
    re.IGNORECASE | re.MULTILINE,
)
_CREDIT = re.compile(
    r"^\s*(Produced by|This e-?book was produced by|Transcribed by|E-text prepared by)", re.I
)
_HEADER_FIELD = re.compile(r"^(Title|Author|Language|Release Date):\s*(.+)$", re.MULTILINE)
_EBOOK_NO = re.compile(r"\[E(?:Book|Text) #(\d+)\]", re.IGNORECASE)
_SCRIPT_MARKUP = re.compile(r"[\^_]\{([^{}\n]{0,20})\}")  # M^{rs}, H_{2}O
_ITALIC_MARKUP = re.compile(r"(?<![\w_])_(?=\S)([^_]+?)(?<=\S)_(?![\w_])")  # _so_ for italics
# A line counts as wrapped when it fills this share of the book's wrap width.
_WRAPPED_SHARE = 0.75
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")


def strip_gutenberg(text: str) -> tuple[str, dict[str, str | bool]]:
    """(body, header fields) of a Project Gutenberg text; other text comes back unchanged."""
    start = _START.search(text)
    if start is None:
        return text.strip(), {}
    header = text[: start.start()]
    end = _END.search(text, start.end())
    body = text[start.end() : end.start() if end else len(text)]
    meta: dict[str, str | bool] = {"gutenberg": True}
    meta |= {k.lower().replace(" ", "_"): v.strip() for k, v in _HEADER_FIELD.findall(header)}
    if number := _EBOOK_NO.search(header):
        meta["ebook_id"] = number.group(1)
    # Drop the transcriber's credit paragraph that opens many bodies.
    paragraphs = body.strip().split("\n\n")
    while paragraphs and _CREDIT.match(paragraphs[0]):
        paragraphs.pop(0)
    return "\n\n".join(paragraphs).strip(), meta


def wrap_width(text: str) -> int:
    """The column a text is wrapped at: the 95th percentile of its line lengths."""
    lengths = sorted(len(line) for line in text.split("\n") if line.strip())
    return lengths[int(0.95 * (len(lengths) - 1))] if lengths else 0


def unwrap(text: str) -> str:
    """Join the hard-wrapped lines of each paragraph (see the module notes); keep the rest."""
    minimum = _WRAPPED_SHARE * wrap_width(text)
    paragraphs = []
    for paragraph in _BLANK_LINES.split(text):
        lines = paragraph.split("\n")
        if len(lines) > 1 and all(len(line.rstrip()) >= minimum for line in lines[:-1]):
            paragraph = " ".join(line.strip() for line in lines)
        paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


class BooksSource(Source):
    """Plain-text books (.txt, optionally compressed), one document per file."""

    kind = "books"

    def __init__(self, path: str, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        # Whole books run to several MB; the generic document cap would drop long novels.
        super().__init__(path, max_bytes=max_bytes)
        self.files = find_files(path, self.kind, (".txt", ".txt.gz", ".txt.bz2"))

    def _iter(self) -> Iterator[Document]:
        for path in self.files:
            try:
                with open_binary(path) as stream:
                    data = read_capped(stream, self.max_bytes)
            except COMPRESSION_ERRORS as error:
                self.skipped[truncation_reason(path, error)] += 1
                continue
            if data is None:
                self.skipped["too_large"] += 1
                continue
            raw = decode_utf8(data)
            if raw is None:
                self.skipped["invalid_utf8"] += 1
                continue
            text, meta = strip_gutenberg(raw.replace("\r\n", "\n"))
            text = unwrap(text)
            if meta.get("gutenberg"):
                text = _ITALIC_MARKUP.sub(r"\1", _SCRIPT_MARKUP.sub(r"\1", text))
            if not self._checked(text):
                continue
            meta = {"gutenberg": False} | meta | {"file": str(path)}
            yield Document(doc_id(self.kind, path.resolve()), self.kind, text, str(path), meta)
