"""Wikipedia / MediaWiki XML dumps (.xml or .xml.bz2), streamed page by page with iterparse.

Wikitext becomes plain text with mwparserfromhell: templates, tables, references, files,
categories, interlanguage links, comments and magic words are dropped; links keep their
label; headings stay as lines of their own. Trailing reference-list sections (References,
External links, See also, ...) are dropped whole: once refs are gone they hold only lists of
links. Redirects and non-article namespaces are skipped and counted ("redirect",
"non_article"). A truncated .bz2 ends the file with "truncated_bz2" after the last whole page.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from chatforge.data.document import Document
from chatforge.data.sources.base import (
    COMPRESSION_ERRORS,
    DEFAULT_MAX_BYTES,
    Source,
    doc_id,
    find_files,
    open_binary,
    truncation_reason,
)

_DROP_SECTIONS = re.compile(
    r"(references|notes|external links|see also|further reading|bibliography|sources|"
    r"footnotes|citations|notes and references|works cited)",
    re.IGNORECASE,
)
_DROP_TAGS = {"table", "ref", "references", "gallery", "math", "timeline", "imagemap", "score"}
# English names; a dump's own localised names (Категория:, Datei:) come from its siteinfo.
_MEDIA_PREFIXES = ("file", "image", "media", "category")
_INTERLANGUAGE = re.compile(r"^:?[a-z]{2,3}(-[a-z]+)*:", re.IGNORECASE)
_HEADING = "\x01"  # marks a heading line until sections are filtered
_MAGIC_WORDS = re.compile(r"__[A-Z]+__")
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_REF_RE = re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref\s*>", re.DOTALL | re.IGNORECASE)
_TABLE_RE = re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.DOTALL)
_TEMPLATE_RE = re.compile(r"\{\{[^{}]*\}\}")
# A template whose braces do not balance survives both parsers; cut the rest of its line.
_LEFTOVER_TEMPLATE = re.compile(r"\{\{.*")
# "Achilles (; , Akhilleus, )" once pronunciation and language templates are gone.
_PAREN_HEAD = re.compile(r"\(\s*(?:[,;:]\s*)+")
_PAREN_TAIL = re.compile(r"(?:\s*[,;:])+\s*\)")
_EMPTY_PARENS = re.compile(r"\s?\(\s*\)")
_TABLE_ROW = re.compile(r"^\s*(\{\||\|\}|\|-|\|\+|\||!)")
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?>")
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACE_RUNS = re.compile(r"[ \t]{2,}")
_QUOTES = re.compile(r"'{2,}")


def wikitext_to_text(wikitext: str, media_prefixes: tuple[str, ...] = _MEDIA_PREFIXES) -> str:
    """Plain prose from wikitext: markup, templates, tables, refs, files and categories gone."""
    import mwparserfromhell

    prefixes = tuple(p.lower().rstrip(":") + ":" for p in media_prefixes)
    raw = _strip(mwparserfromhell.parse(_preclean(wikitext, prefixes)).nodes, prefixes)
    lines: list[str] = []
    dropping_level = 0  # inside a dropped section of this heading level (0: not dropping)
    for line in raw.splitlines():
        if line.startswith(_HEADING):
            level, _, title = line[1:].partition(_HEADING)
            if dropping_level and int(level) > dropping_level:
                continue
            dropping_level = int(level) if _DROP_SECTIONS.fullmatch(title.strip()) else 0
            if not dropping_level:
                lines.extend(["", title.strip(), ""])
            continue
        if not dropping_level and not _TABLE_ROW.match(line):
            line = _HTML_TAG.sub("", _QUOTES.sub("", _LEFTOVER_TEMPLATE.sub("", line)))
            line = _EMPTY_PARENS.sub("", _PAREN_TAIL.sub(")", _PAREN_HEAD.sub("(", line)))
            lines.append(_SPACE_RUNS.sub(" ", line).strip())
    text = _MAGIC_WORDS.sub("", "\n".join(lines))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def _preclean(wikitext: str, prefixes: tuple[str, ...]) -> str:
    """Regex passes for what mwparserfromhell leaves as text when a page's markup is unbalanced.

    Its parser gives up on a span it cannot close (a stray bracket, a long table) and returns
    that span as plain text, so comments, refs, tables, templates and file links go first, by
    pattern (as WikiExtractor does).
    """
    text = _COMMENT_RE.sub("", wikitext)
    text = _REF_RE.sub("", text)
    for pattern in (_TABLE_RE, _TEMPLATE_RE):
        for _ in range(10):  # innermost first, so nested ones come out too
            text, n = pattern.subn("", text)
            if not n:
                break
    names = "|".join(re.escape(p[:-1]) for p in prefixes)
    file_link = re.compile(
        r"\[\[\s*(?:" + names + r")\s*:(?:[^\[\]]|\[\[[^\[\]]*\]\])*\]\]", re.IGNORECASE
    )
    return file_link.sub("", text)


def _strip(nodes, prefixes: tuple[str, ...]) -> str:
    """Text of a node list in one pass (removing nodes one by one is quadratic)."""
    from mwparserfromhell import nodes as n

    out: list[str] = []
    for node in nodes:
        if isinstance(node, n.Text):
            out.append(node.value)
        elif isinstance(node, n.Wikilink):
            target = str(node.title).strip().lower()
            if target.startswith(prefixes) or _INTERLANGUAGE.match(target):
                continue
            out.append(_strip((node.text or node.title).nodes, prefixes))
        elif isinstance(node, n.ExternalLink):
            if node.title is not None:  # a bare URL is not prose
                out.append(_strip(node.title.nodes, prefixes))
        elif isinstance(node, n.Heading):
            title = _strip(node.title.nodes, prefixes).strip()
            out.append(f"\n{_HEADING}{node.level}{_HEADING}{title}\n")
        elif isinstance(node, n.Tag):
            tag = str(node.tag).strip().lower()
            if tag in _DROP_TAGS:
                continue
            if tag == "br":
                out.append("\n")
            elif node.contents is not None:
                out.append(_strip(node.contents.nodes, prefixes))
        elif isinstance(node, n.HTMLEntity):
            out.append(node.normalize())
        # Templates, comments, template arguments: infoboxes, citations, navigation; dropped.
    return "".join(out)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class WikiSource(Source):
    """Articles (namespace 0, no redirects) of MediaWiki XML dumps as plain text."""

    kind = "wiki"

    def __init__(
        self, path: str, *, max_bytes: int = DEFAULT_MAX_BYTES, namespaces: tuple[int, ...] = (0,)
    ) -> None:
        super().__init__(path, max_bytes=max_bytes)
        self.namespaces = namespaces
        self.files = find_files(path, self.kind, (".xml", ".xml.bz2", ".bz2", ".xml.gz"))

    def _iter(self) -> Iterator[Document]:
        for path in self.files:
            yield from self._file(path)

    def _file(self, path: Path) -> Iterator[Document]:
        site: dict = {"dbname": "", "base": "", "media": _MEDIA_PREFIXES}
        with open_binary(path) as stream:
            events = ET.iterparse(stream, events=("start", "end"))
            root = None
            try:
                for event, elem in events:
                    if root is None:
                        root = elem
                    if event != "end":
                        continue
                    name = _local(elem.tag)
                    if name == "siteinfo":
                        site["dbname"] = elem.findtext("{*}dbname") or ""
                        site["base"] = elem.findtext("{*}base") or ""
                        site["media"] = _media_prefixes(elem)
                        root.clear()
                    elif name == "page":
                        doc = self._page(path, elem, site)
                        root.clear()  # finished pages must not pile up under the root
                        if doc is not None:
                            yield doc
            except COMPRESSION_ERRORS as error:
                self.skipped[truncation_reason(path, error)] += 1
            except ET.ParseError:
                # A truncated plain XML file, or one cut inside a compressed block.
                self.skipped["truncated" if _at_end(stream) else "bad_xml"] += 1

    def _page(self, path: Path, page: ET.Element, site: dict) -> Document | None:
        title = page.findtext("{*}title") or ""
        try:
            ns = int(page.findtext("{*}ns") or 0)
        except ValueError:
            ns = 0
        if ns not in self.namespaces:
            self.skipped["non_article"] += 1
            return None
        revision = page.find("{*}revision")
        wikitext = (revision.findtext("{*}text") if revision is not None else None) or ""
        if page.find("{*}redirect") is not None or wikitext.lstrip()[:9].upper() == "#REDIRECT":
            self.skipped["redirect"] += 1
            return None
        if len(wikitext) > self.max_bytes:
            self.skipped["too_large"] += 1
            return None
        try:
            text = wikitext_to_text(wikitext, site["media"])
        except Exception:  # noqa: BLE001 - one unparseable article must not stop the dump
            self.skipped["bad_wikitext"] += 1
            return None
        if not self._checked(text):
            return None
        page_id = page.findtext("{*}id") or ""
        dbname = site["dbname"]
        url = ""
        if site["base"]:
            url = site["base"].rsplit("/", 1)[0] + "/" + title.replace(" ", "_")
        meta = {
            "title": title,
            "page_id": page_id,
            "revision_id": revision.findtext("{*}id") if revision is not None else "",
            "timestamp": revision.findtext("{*}timestamp") if revision is not None else "",
            "dbname": dbname,
            "file": str(path),
        }
        if dbname.endswith("wiki"):
            meta["language_hint"] = dbname[: -len("wiki")]
        # dbname + page id is the page's identity across dump files and dates.
        did = (
            doc_id(self.kind, dbname, page_id)
            if dbname and page_id
            else doc_id(self.kind, path.resolve(), title)
        )
        return Document(did, self.kind, f"{title}\n\n{text}" if title else text, url, meta)


def _media_prefixes(siteinfo: ET.Element) -> tuple[str, ...]:
    """English plus the dump's own names of the Media (-2), File (6) and Category (14) spaces."""
    names = [
        (ns.text or "").strip()
        for ns in siteinfo.findall(".//{*}namespace")
        if ns.get("key") in ("-2", "6", "14")
    ]
    return _MEDIA_PREFIXES + tuple(n for n in names if n)


def _at_end(stream) -> bool:
    try:
        return not stream.read(1)
    except COMPRESSION_ERRORS:
        return True
