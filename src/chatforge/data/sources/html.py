"""Saved web pages: single HTML files or folders of them, main text extracted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from chatforge.data.document import Document
from chatforge.data.extract import UnparseablePage, extract_page
from chatforge.data.sources.base import (
    COMPRESSION_ERRORS,
    DEFAULT_MAX_BYTES,
    Source,
    doc_id,
    find_files,
    open_binary,
    read_capped,
    truncation_reason,
)

SUFFIXES = tuple(s + c for s in (".html", ".htm", ".xhtml") for c in ("", ".gz", ".bz2"))
_HTML_START = re.compile(rb"<(!doctype\s+html|html|head|body|div|p|article)[\s>]", re.IGNORECASE)
# The page's own address, when it states one: <link rel="canonical"> or og:url.
_CANONICAL = re.compile(
    r"<link[^>]+rel=[\"']canonical[\"'][^>]+href=[\"']([^\"']+)|"
    r"<meta[^>]+property=[\"']og:url[\"'][^>]+content=[\"']([^\"']+)",
    re.IGNORECASE,
)


class HtmlSource(Source):
    """HTML files, one document each; `extractor` is 'resiliparse' or 'trafilatura'."""

    kind = "html"

    def __init__(
        self, path: str, *, extractor: str = "resiliparse", max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        super().__init__(path, max_bytes=max_bytes)
        self.extractor = extractor
        self.files = find_files(path, self.kind, SUFFIXES)

    def _iter(self) -> Iterator[Document]:
        for path in self.files:
            doc = self._file(path)
            if doc is not None:
                yield doc

    def _file(self, path: Path) -> Document | None:
        try:
            with open_binary(path) as stream:
                data = read_capped(stream, self.max_bytes)
        except COMPRESSION_ERRORS as error:
            self.skipped[truncation_reason(path, error)] += 1
            return None
        if data is None:
            self.skipped["too_large"] += 1
            return None
        if not _HTML_START.search(data[:4096]):
            self.skipped["empty" if not data.strip() else "non_html"] += 1
            return None
        try:
            page = extract_page(data, self.extractor)
        except UnparseablePage:
            self.skipped["unparseable_html"] += 1
            return None
        if not self._checked(page.text):
            return None
        canonical = _CANONICAL.search(page.html[:65536])
        url = next((g for g in canonical.groups() if g), "") if canonical else ""
        meta = {"title": page.title, "file": str(path), "extractor": self.extractor}
        if page.lang:
            meta["language_hint"] = page.lang
        return Document(doc_id(self.kind, path.resolve()), self.kind, page.text, url or str(path), meta)
