"""HTML -> main text. Two backends, measured side by side in bench/bench_extract.py.

`resiliparse` (the default) keeps the page's main content with Resiliparse's rule-based
boilerplate removal; `trafilatura` in precision mode is FineWeb's choice. On the shared
raw-html pages resiliparse is roughly an order of magnitude faster (DCLM reports 8x at a
0.4-point CORE cost), and extraction dominates a web pipeline's time, so it is the default;
trafilatura is a flag away where precision matters more than throughput.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatforge.errors import ConfigError

BACKENDS = ("resiliparse", "trafilatura")

_BLANK_RUNS = re.compile(r"\n{3,}")
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)
_HTML_LANG = re.compile(r"<html[^>]*?\s(?:xml:)?lang=[\"']?([a-zA-Z]{2,3})\b", re.IGNORECASE)
_TRAILING_SPACE = re.compile(r"[ \t\u00a0]+\n")


def html_to_str(html: str | bytes, charset: str | None = None) -> str:
    """Decode page bytes: a BOM first, then the HTTP header's `charset`, then what the page
    declares or Resiliparse detects (the HTML standard's order of precedence)."""
    if isinstance(html, str):
        return html
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    if charset and not html.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        try:
            return html.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass  # an unknown or wrong declared charset: fall back to detection
    return bytes_to_str(html, detect_encoding(html))


def charset_of(content_type: str) -> str | None:
    """'text/html; charset=ISO-8859-9' -> 'iso-8859-9'."""
    match = _CHARSET.search(content_type)
    return match.group(1).lower() if match else None


def html_lang(html: str) -> str:
    """The primary language subtag of <html lang="..">, lowercased ('' when absent)."""
    match = _HTML_LANG.search(html[:8192])
    return match.group(1).lower() if match else ""


def extract_html(html: str | bytes, backend: str = "resiliparse") -> str:
    """The main text of a page (article body without menus, footers, ads), '' if none."""
    if backend == "resiliparse":
        text = _resiliparse(html_to_str(html))
    elif backend == "trafilatura":
        text = _trafilatura(html_to_str(html))
    else:
        raise ConfigError(
            f"unknown HTML extractor '{backend}' (choose one of {', '.join(BACKENDS)})"
        )
    return _tidy(text)


def html_title(html: str | bytes) -> str:
    """The page's <title>, whitespace collapsed, '' when absent."""
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html_to_str(html))
    return " ".join((tree.title or "").split())


@dataclass(frozen=True)
class Page:
    """One HTML page as the readers keep it: its decoded markup, main text, title and the
    language its markup declares."""

    html: str
    text: str
    title: str
    lang: str


class UnparseablePage(Exception):
    """The parser failed on a page (readers skip it and count it as unparseable_html)."""


def extract_page(data: str | bytes, extractor: str = "resiliparse", charset: str | None = None) -> Page:
    """Decode one page (`charset` from its HTTP header, if any) and extract its main text,
    title and declared language: what the HTML and WARC readers both need."""
    html = html_to_str(data, charset)
    try:
        text, title = extract_html(html, extractor), html_title(html)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a parser crash on one page must not stop a crawl
        raise UnparseablePage(str(exc)) from None
    return Page(html, text, title, html_lang(html))


def _resiliparse(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    # Formatting kept so paragraphs stay separate lines (the quality rules count lines);
    # alt texts, link targets, form fields and comments are not prose.
    return extract_plain_text(
        html,
        main_content=True,
        preserve_formatting=True,
        list_bullets=True,
        alt_texts=False,
        links=False,
        form_fields=False,
        noscript=False,
        comments=False,
    )


def _trafilatura(html: str) -> str:
    import trafilatura

    # favor_precision is FineWeb's setting: lose some body text rather than keep boilerplate.
    text = trafilatura.extract(
        html,
        favor_precision=True,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        deduplicate=False,
    )
    return text or ""


def _tidy(text: str) -> str:
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()
