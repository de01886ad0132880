"""Source readers: real samples from ../shared/data, and broken inputs built in tmp_path."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_file

from chatforge.data.sources import (
    BooksSource,
    CodeSource,
    PapersSource,
    TabularSource,
    WarcSource,
    WatSource,
    WikiSource,
    open_source,
)
from chatforge.data.sources.base import DEFAULT_MAX_BYTES
from chatforge.data.sources.books import strip_gutenberg
from chatforge.data.sources.papers import latex_to_text
from chatforge.data.sources.wiki import wikitext_to_text
from chatforge.errors import InputError

# ---------------------------------------------------------------- helpers


def _warc_bytes(records: list[tuple[str, str, bytes, str]]) -> list[bytes]:
    """One uncompressed WARC record per (type, url, payload, content type), written by warcio."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    out = []
    for warc_type, url, payload, ctype in records:
        buf = io.BytesIO()
        writer = WARCWriter(buf, gzip=False)
        if warc_type == "response":
            status = "404 Not Found" if url.endswith("/missing") else "200 OK"
            http = StatusAndHeaders(status, [("Content-Type", ctype)], protocol="HTTP/1.1")
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(payload), http_headers=http
            )
        else:
            record = writer.create_warc_record(
                url,
                warc_type,
                payload=io.BytesIO(payload),
                warc_headers_dict={"Content-Type": ctype},
            )
        writer.write_record(record)
        out.append(buf.getvalue())
    return out


def _page(title: str, body: str) -> bytes:
    nav = "<nav><ul><li><a href='/'>Home</a></li><li><a href='/about'>About us</a></li></ul></nav>"
    paragraphs = "".join(
        f"<p>{body} Sentence {i} adds more words to the article body.</p>" for i in range(6)
    )
    html = f"<html><head><title>{title}</title></head><body>{nav}<article><h1>{title}</h1>{paragraphs}</article></body></html>"
    return html.encode()


def _tiny_pdf(text: str) -> bytes:
    """A one-page PDF whose content stream shows `text` in Helvetica, with a correct xref."""
    content = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


# ---------------------------------------------------------------- open_source


def test_open_source_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="no file or directory matches") as missing:
        open_source(f"warc:{tmp_path}/nothing-*.warc.gz")
    assert "\n" not in str(missing.value) and "nothing-*.warc.gz" in str(missing.value)
    with pytest.raises(InputError, match="unknown source type 'ftp'"):
        open_source("ftp:/x")
    with pytest.raises(InputError, match="expected KIND:PATH"):
        open_source("just-a-path")


def test_open_source_parses_fields_and_globs(tmp_path):
    for i in range(2):
        (tmp_path / f"part{i}.jsonl").write_text(json.dumps({"body": f"document {i}"}) + "\n")
    source = open_source(f"jsonl:{tmp_path}/part*.jsonl:body")
    assert (source.kind, source.field) == ("jsonl", "body")
    assert [d.text for d in source.iter_documents()] == ["document 0", "document 1"]
    assert open_source(f"text:{tmp_path}/part0.jsonl").split == "file"
    with pytest.raises(InputError, match="no .*warc.gz.* files there"):
        open_source(f"wet:{tmp_path}")  # a folder holding no file of the kind


# ---------------------------------------------------------------- web: real samples

WARC_COUNTS = {
    "dolma-sample-0000.warc.gz": 22,
    "resiliparse-CC-MAIN-2020-34-sample.warc.gz": 16,
    "jwarc-cc.warc.gz": 1,
    "warcio-example.warc.gz": 1,
    "whirlwind.warc.gz": 1,
    "whirlwind.warc.wet.gz": 1,
    "ccnet-sample.warc.wet.txt": 3,
}


@pytest.mark.parametrize("name", sorted(WARC_COUNTS))
def test_warc_real_samples(name):
    source = open_source(f"warc:{shared_file('web-warc', name)}")
    docs = list(source)
    assert len(docs) == WARC_COUNTS[name]
    assert not source.skipped
    assert len({d.id for d in docs}) == len(docs)
    for doc in docs:
        assert doc.text.strip() and doc.url.startswith("http")
        assert doc.metadata["warc_date"] and doc.metadata["warc_record_id"]


def test_warc_html_is_the_article_and_wet_keeps_the_menus():
    """FineWeb's point: text extracted from the WARC beats Common Crawl's WET text."""
    page = next(iter(open_source(f"warc:{shared_file('web-warc', 'whirlwind.warc.gz')}")))
    wet = next(iter(open_source(f"wet:{shared_file('web-warc', 'whirlwind.warc.wet.gz')}")))
    assert page.url == wet.url == "https://an.wikipedia.org/wiki/Escopete"
    assert "Escopete ye un municipio" in page.text and "Escopete ye un municipio" in wet.text
    for menu in ("Menú principal", "Ir al contenido"):
        assert menu in wet.text and menu not in page.text
    assert page.metadata["title"].startswith("Escopete") and page.metadata["http_status"] == 200
    assert wet.metadata["language_hint"] == "spa"


def test_wet_with_wrong_content_lengths_keeps_whole_records():
    """cc_net's sample declares lengths in characters; records must still come out whole."""
    docs = list(open_source(f"wet:{shared_file('web-warc', 'ccnet-sample.warc.wet.txt')}"))
    assert [d.url for d in docs] == [
        "http://sample_english.com",
        "http://sample_chinese.zh",
        "http://sample_russian.ru",
    ]
    assert docs[0].text.startswith("Famous Mark Twain Quotes") and docs[0].text.endswith(
        "Truth isn't."
    )
    assert docs[2].text.endswith("Правда нет.")


def test_wat_real_sample_has_no_response_metadata():
    source = WatSource(str(shared_file("web-warc", "whirlwind.warc.wat.gz")))
    assert list(source) == [] and not source.skipped
    assert sum(source.record_types.values()) == 2  # warcinfo + a request's metadata


def test_wat_response_metadata_becomes_title_and_description(tmp_path):
    envelope = {
        "Envelope": {
            "WARC-Header-Metadata": {"WARC-Target-URI": "https://example.org/a"},
            "Payload-Metadata": {
                "HTTP-Response-Metadata": {
                    "Response-Message": {"Status": "200"},
                    "HTML-Metadata": {
                        "Head": {
                            "Title": "A  page",
                            "Metas": [{"name": "description", "content": "About things."}],
                        },
                        "Links": [{"url": "/b"}, {"url": "/c"}],
                    },
                }
            },
        }
    }
    (tmp_path / "x.wat").write_bytes(
        b"".join(
            _warc_bytes(
                [
                    (
                        "metadata",
                        "https://example.org/a",
                        json.dumps(envelope).encode(),
                        "application/json",
                    )
                ]
            )
        )
    )
    (doc,) = WatSource(str(tmp_path / "x.wat"))
    assert doc.text == "A page\nAbout things." and doc.url == "https://example.org/a"
    assert doc.metadata["links"] == 2 and doc.metadata["http_status"] == "200"


# ---------------------------------------------------------------- web: broken WARCs


def _sample_records() -> list[bytes]:
    return _warc_bytes(
        [
            (
                "response",
                "https://a.example/one",
                _page("One", "The first page talks about rivers."),
                "text/html",
            ),
            (
                "response",
                "https://a.example/two",
                _page("Two", "The second page talks about mountains."),
                "text/html",
            ),
            (
                "response",
                "https://a.example/three",
                _page("Three", "The third page talks about forests."),
                "text/html",
            ),
            (
                "response",
                "https://a.example/logo.png",
                b"\x89PNG\r\n\x1a\n" + bytes(64),
                "image/png",
            ),
            ("response", "https://a.example/missing", _page("Gone", "Not here."), "text/html"),
            ("conversion", "https://a.example/bad-utf8", b"caf\xe9 au lait " * 10, "text/plain"),
        ]
    )


@pytest.mark.parametrize("compressed", [False, True])
def test_warc_broken_header_is_skipped_and_the_rest_read(tmp_path, compressed):
    records = _sample_records()
    records[1] = records[1].replace(
        b"WARC-Type: response\r\n", b"WARC-Type response\r\n"
    )  # no colon
    if compressed:
        path = tmp_path / "broken.warc.gz"
        path.write_bytes(b"".join(gzip.compress(r) for r in records))  # one gzip member per record
    else:
        path = tmp_path / "broken.warc"
        path.write_bytes(b"".join(records))
    source = WarcSource(str(path))
    docs = list(source)
    assert [d.url for d in docs] == ["https://a.example/one", "https://a.example/three"]
    assert "rivers" in docs[0].text and "About us" not in docs[0].text
    assert source.skipped == {
        "bad_warc_header": 1,
        "non_html": 1,
        "http_status": 1,
        "invalid_utf8": 1,
    }


def test_warc_broken_version_line_is_skipped(tmp_path):
    records = _sample_records()[:3]
    records[1] = (
        records[1]
        .replace(b"WARC/1.0\r\n", b"WARX/1.0\r\n", 1)
        .replace(b"WARC/1.1\r\n", b"WARX/1.1\r\n", 1)
    )
    (tmp_path / "v.warc").write_bytes(b"".join(records))
    source = WarcSource(str(tmp_path / "v.warc"))
    assert [d.url for d in source] == ["https://a.example/one", "https://a.example/three"]
    assert source.skipped == {"bad_warc_header": 1}


def test_warc_junk_between_records_is_skipped_once(tmp_path):
    records = _sample_records()[:2]
    junk = b"".join(b"junk line %d without any structure\r\n" % i for i in range(50_000))  # ~1.8 MB
    (tmp_path / "j.warc").write_bytes(records[0] + junk + records[1])
    source = WarcSource(str(tmp_path / "j.warc"), max_bytes=100_000)
    assert [d.url for d in source] == ["https://a.example/one", "https://a.example/two"]
    assert source.skipped == {"bad_warc_header": 1}


def test_warc_truncated_gzip_keeps_whole_records(tmp_path):
    data = b"".join(gzip.compress(r) for r in _sample_records()[:3])
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(data[: len(data) - 200])
    source = WarcSource(str(path))
    assert [d.url for d in source] == ["https://a.example/one", "https://a.example/two"]
    assert source.skipped["truncated_gzip"] == 1


def test_warc_gigantic_and_empty_records_are_skipped(tmp_path):
    records = _warc_bytes(
        [
            (
                "response",
                "https://a.example/big",
                b"<html><body><p>" + b"word " * 4000 + b"</p></body></html>",
                "text/html",
            ),
            ("response", "https://a.example/empty", b"<html><body></body></html>", "text/html"),
            (
                "response",
                "https://a.example/ok",
                _page("Ok", "A normal page about lakes."),
                "text/html",
            ),
        ]
    )
    (tmp_path / "s.warc").write_bytes(b"".join(records))
    source = WarcSource(str(tmp_path / "s.warc"), max_bytes=10_000)
    assert [d.url for d in source] == ["https://a.example/ok"]
    assert source.skipped == {"too_large": 1, "empty": 1}


def test_warc_http_charset_and_lang_hint(tmp_path):
    html = (
        "<html lang='tr'><head><title>Nehirler</title></head><body><article>"
        + "<p>Kızılırmak, tamamen Türkiye sınırları içinde akan en uzun ırmaktır.</p>" * 5
        + "</article></body></html>"
    )
    records = _warc_bytes(
        [
            (
                "response",
                "https://tr.example/",
                html.encode("iso-8859-9"),
                "text/html; charset=ISO-8859-9",
            )
        ]
    )
    (tmp_path / "tr.warc").write_bytes(records[0])
    (doc,) = WarcSource(str(tmp_path / "tr.warc"))
    assert "Kızılırmak, tamamen Türkiye sınırları içinde" in doc.text
    assert doc.metadata["language_hint"] == "tr" and doc.metadata["title"] == "Nehirler"


# ---------------------------------------------------------------- HTML pages

# (file, a sentence of the article body, menu/sidebar/footer text present in the raw page)
PAGES = [
    (
        "en.wikipedia.org.tsne.html",
        "is a machine learning algorithm for visualization",
        ["Main page", "Random article", "Privacy policy"],
    ),
    (
        "lemire.me.json.html",
        "JSON is the ubiquitous data format",
        ["Recent Posts", "Leave a Reply", "Proudly powered"],
    ),
    (
        "blog.python.org.html",
        "Python 3.6.0 is the newest major release",
        ["Blog Archive", "Older Post", "Subscribe"],
    ),
    (
        "caktusgroup.com.django.html",
        "a presenter’s nightmare: a broken demo",
        ["Contact us", "Newsletter", "Careers"],
    ),
    (
        "github.blog.spiceland.html",
        "Every March we recognize the women",
        ["Related posts", "Enterprise"],
    ),
    (
        "wikimediafoundation.org.turkey.html",
        "access to Wikipedia in Turkey is actively being restored",
        ["Privacy policy", "Skip to content"],
    ),
]


@pytest.mark.parametrize("extractor", ["resiliparse", "trafilatura"])
@pytest.mark.parametrize(("name", "sentence", "menus"), PAGES, ids=[p[0] for p in PAGES])
def test_html_page_is_the_article_not_the_menus(name, sentence, menus, extractor):
    path = shared_file("raw-html", name)
    raw = path.read_text(encoding="utf-8", errors="replace")
    (doc,) = open_source(f"html:{path}", extractor=extractor)
    assert sentence in doc.text
    for menu in menus:
        assert menu in raw and menu not in doc.text
    assert doc.metadata["title"]


def test_html_folder_reads_every_page(shared_data):
    source = open_source(f"html:{shared_data / 'raw-html'}")
    docs = list(source)
    assert len(docs) == len(list((shared_data / "raw-html").glob("*.html"))) and not source.skipped
    tsne = next(d for d in docs if "tsne" in d.metadata["file"])
    assert tsne.url == "https://en.wikipedia.org/wiki/T-distributed_stochastic_neighbor_embedding"


def test_html_non_html_and_empty_files_are_counted(tmp_path):
    (tmp_path / "a.html").write_bytes(_page("A", "Some page about clouds."))
    (tmp_path / "b.html").write_bytes(b"\x00\x01binary junk that is not a page")
    (tmp_path / "c.html").write_bytes(b"")
    source = open_source(f"html:{tmp_path}")
    assert len(list(source)) == 1 and source.skipped == {"non_html": 1, "empty": 1}


# ---------------------------------------------------------------- Wikipedia


def test_wiki_english_dump_sample():
    source = WikiSource(
        str(
            shared_file(
                "wikipedia-dump-samples",
                "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
            )
        )
    )
    docs = list(source)
    assert len(docs) == 106 and source.skipped == {"redirect": 99, "non_article": 1}
    anarchism = docs[0]
    assert (
        anarchism.metadata["title"] == "Anarchism"
        and anarchism.url == "https://en.wikipedia.org/wiki/Anarchism"
    )
    assert (
        "Anarchism is a political philosophy that advocates self-governed societies"
        in anarchism.text
    )
    assert anarchism.metadata["language_hint"] == "en"
    for doc in docs:
        for markup in ("{{", "}}", "[[", "]]", "<ref", "{|", "Category:", "thumb|", "'''"):
            assert markup not in doc.text, (doc.metadata["title"], markup)


def test_wiki_utf16_dump_with_localised_namespaces():
    source = WikiSource(
        str(shared_file("wikipedia-dump-samples", "bgwiki-latest-pages-articles-shortened.xml.bz2"))
    )
    (doc,) = source
    assert (
        doc.metadata["title"] == "Григориански календар" and "Григорианският календар" in doc.text
    )
    assert "Категория:" not in doc.text and "Файл:" not in doc.text


def test_wikitext_to_text_drops_markup():
    wikitext = (
        "{{Infobox person|name=X}}\n'''Ada''' was a [[mathematician|maths person]] born in [[London]].<ref>{{cite book}}</ref>\n"
        "[[File:Ada.jpg|thumb|A portrait]]\n{| class=wikitable\n|-\n| cell\n|}\n== Life ==\nShe wrote notes.<!-- hidden -->\n"
        "== References ==\n* [http://x.org A source]\n[[Category:People]]\n[[fr:Ada]]"
    )
    assert (
        wikitext_to_text(wikitext)
        == "Ada was a maths person born in London.\n\nLife\n\nShe wrote notes."
    )


def test_wiki_truncated_bz2_keeps_whole_pages(tmp_path):
    def page(i: int) -> str:
        text = f"Page {i} says hello to the reader. " + "More text. " * 300
        return f"<page><title>P{i}</title><ns>0</ns><id>{i}</id><revision><id>{i}</id><text>{text}</text></revision></page>"

    head = '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"><siteinfo><dbname>xxwiki</dbname></siteinfo>'
    # Two bz2 streams, as multistream dumps have; the second is cut in half.
    first = bz2.compress((head + "".join(page(i) for i in range(30))).encode())
    second = bz2.compress(("".join(page(i) for i in range(30, 60)) + "</mediawiki>").encode())
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(first + second[: len(second) // 2])
    source = WikiSource(str(path))
    docs = list(source)
    assert source.skipped == {"truncated_bz2": 1}
    assert 20 <= len(docs) < 60
    assert all(d.text.startswith(f"P{i}\n\nPage {i} says hello") for i, d in enumerate(docs))
    assert docs[0].metadata["language_hint"] == "xx"


def test_corrupt_gzip_is_told_from_truncated(tmp_path):
    data = gzip.compress(
        b"".join(json.dumps({"text": f"doc {i}"}).encode() + b"\n" for i in range(100))
    )
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(data[:20] + bytes(30) + data[50:])
    source = TabularSource(str(path))
    list(source)
    assert source.skipped == {"corrupt_gzip": 1}


# ---------------------------------------------------------------- books, text, JSONL, Parquet


def test_gutenberg_books_lose_header_footer_and_license():
    source = BooksSource(str(shared_file("gutenberg")))
    docs = list(source)
    assert len(docs) >= 3 and not source.skipped
    alice = next(d for d in docs if d.metadata.get("ebook_id") == "11")
    assert (
        alice.metadata["title"] == "Alice's Adventures in Wonderland"
        and alice.metadata["author"] == "Lewis Carroll"
    )
    assert "Alice was beginning to get very tired of sitting by her sister" in alice.text
    for doc in docs:
        assert doc.metadata["gutenberg"] is True
        assert "Project Gutenberg" not in doc.text and "PROJECT GUTENBERG" not in doc.text
        assert "\ufeff" not in doc.text


def test_strip_gutenberg_leaves_other_text_alone():
    assert strip_gutenberg("  Just a story.\n") == ("Just a story.", {})


def test_turkish_text_lines_and_files(shared_data):
    path = shared_file("turkish-text", "cnn-turk-10k.txt")
    lines = list(open_source(f"text:{path}:line"))
    assert len(lines) == sum(
        1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    )
    assert lines[0].text == "Çatıda mahsur kalan köpeğin yardımına itfaiye koştu"
    whole = list(open_source(f"text:{shared_data / 'turkish-text'}"))
    assert len(whole) == len(list((shared_data / "turkish-text").glob("*.txt")))


def test_ccnet_jsonl_gz_keeps_metadata():
    source = open_source(f"jsonl:{shared_file('ccnet-cc-en-head')}/*.jsonl.gz")
    docs = list(source)
    assert len(docs) == 20 and not source.skipped
    assert all(d.metadata["language_hint"] == "en" and d.url.startswith("http") for d in docs)
    assert all(isinstance(d.metadata["metadata.perplexity"], float) for d in docs)


def test_jsonl_bad_records_are_skipped_and_counted(tmp_path):
    path = tmp_path / "mixed.jsonl"
    with open(path, "wb") as f:
        f.write(json.dumps({"text": "first good document"}).encode() + b"\n")
        f.write(b'{"text": "broken json\n')
        f.write(b'{"text": "caf\xe9"}\n')  # latin-1 byte: not UTF-8
        f.write(json.dumps({"text": "   "}).encode() + b"\n")
        f.write(json.dumps({"body": "no text field"}).encode() + b"\n")
        f.write(b'{"text": "' + b"x" * (DEFAULT_MAX_BYTES + 10) + b'"}\n')  # gigantic
        f.write(json.dumps({"text": "last good document", "language": "en"}).encode() + b"\n")
    source = TabularSource(str(path))
    docs = list(source)
    assert [d.text for d in docs] == ["first good document", "last good document"]
    assert docs[1].metadata["language_hint"] == "en"
    assert source.skipped == {
        "bad_json": 1,
        "invalid_utf8": 1,
        "empty": 1,
        "missing_field": 1,
        "too_large": 1,
    }


@pytest.mark.parametrize("suffix", ["gz", "bz2"])
def test_jsonl_truncated_compressed_file(tmp_path, suffix):
    lines = b"".join(
        json.dumps({"text": f"document number {i} " * 20}).encode() + b"\n" for i in range(300)
    )
    data = gzip.compress(lines) if suffix == "gz" else bz2.compress(lines)
    path = tmp_path / f"cut.jsonl.{suffix}"
    path.write_bytes(data[: len(data) // 2])
    source = TabularSource(str(path))
    docs = list(source)
    assert source.skipped[{"gz": "truncated_gzip", "bz2": "truncated_bz2"}[suffix]] == 1
    assert (
        all(d.text == f"document number {i} " * 20 for i, d in enumerate(docs)) and len(docs) < 300
    )


def test_json_list_is_streamed_element_by_element(tmp_path):
    rows = [{"output": f"answer {i} " + "é" * (i % 7), "instruction": f"q{i}"} for i in range(2000)]
    (tmp_path / "list.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    docs = list(open_source(f"jsonl:{tmp_path / 'list.json'}:output"))
    assert [d.text for d in docs] == [r["output"] for r in rows]
    assert docs[5].metadata["instruction"] == "q5"


def test_json_list_with_gigantic_element_or_garbage(tmp_path):
    rows = [
        {"text": "ok"},
        {"text": "x" * 5000},
        {"text": "after"},
        {"text": "y" * 200_000},
        {"text": "lost"},
    ]
    (tmp_path / "big.json").write_text(json.dumps(rows))
    source = TabularSource(str(tmp_path / "big.json"), max_bytes=1000)
    # The 5 KB element is decoded and dropped; the 200 KB one is never held whole, and the
    # array cannot be framed past it.
    assert [d.text for d in source] == ["ok", "after"] and source.skipped == {"too_large": 2}
    (tmp_path / "bad.json").write_text('[{"text": "ok"}, {"text": broken}]')
    source = TabularSource(str(tmp_path / "bad.json"))
    assert [d.text for d in source] == ["ok"] and source.skipped == {"bad_json": 1}


def test_parquet_with_text_field(tmp_path):
    pq.write_table(
        pa.table({"content": ["alpha text", "", "gamma text"], "lang": ["en", "en", "tr"]}),
        tmp_path / "t.parquet",
    )
    source = open_source(f"parquet:{tmp_path / 't.parquet'}:content")
    docs = list(source)
    assert [d.text for d in docs] == ["alpha text", "gamma text"] and docs[1].metadata[
        "language_hint"
    ] == "tr"
    assert source.skipped == {"empty": 1}
    with pytest.raises(InputError, match="no column 'body'"):
        list(open_source(f"parquet:{tmp_path / 't.parquet'}:body"))


def test_ids_are_stable_and_unique(shared_data):
    first = [d.id for d in open_source(f"jsonl:{shared_data / 'ccnet-cc-en-head'}")]
    second = [d.id for d in open_source(f"jsonl:{shared_data / 'ccnet-cc-en-head'}")]
    assert first == second and len(set(first)) == len(first)


# ---------------------------------------------------------------- code


def _code_tree(root):
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "core.py").write_text('def add(a, b):\n    """Sum."""\n    return a + b\n')
    (root / "pkg" / "util.rs").write_text('fn main() {\n    println!("hi");\n}\n')
    (root / "node_modules" / "lib").mkdir(parents=True)
    (root / "node_modules" / "lib" / "index.js").write_text("module.exports = 1;\n")
    (root / "pkg" / "msg_pb2.py").write_text("x = 1\n")
    (root / "pkg" / "gen.go").write_text(
        "// Code generated by protoc-gen-go. DO NOT EDIT.\npackage x\n"
    )
    (root / "pkg" / "app.min.js").write_text("var a=1;")
    (root / "pkg" / "bundle.js").write_text("var a=1;" * 400 + "\n")  # one 3200-char line
    (root / "pkg" / "blob.c").write_bytes(b"int x;\0\0\0binary")
    (root / "pkg" / "big.py").write_text("x = 1\n" * 200_000)
    (root / "pkg" / "latin.py").write_bytes(b"# caf\xe9\n")
    (root / "pkg" / "notes.xyz").write_text("unknown")
    (root / "pkg" / "empty.py").write_text("")


def test_code_directory_skips_vendored_generated_binary_minified(tmp_path):
    _code_tree(tmp_path)
    source = CodeSource(str(tmp_path))
    docs = {d.metadata["path"]: d for d in source}
    assert set(docs) == {"pkg/core.py", "pkg/util.rs"}
    assert (
        docs["pkg/core.py"].metadata["language"] == "python"
        and docs["pkg/util.rs"].metadata["language"] == "rust"
    )
    assert source.skipped == {
        "generated": 3,
        "minified": 1,
        "binary": 1,
        "too_large": 1,
        "invalid_utf8": 1,
        "unknown_language": 1,
        "empty": 1,
    }


def test_code_git_checkout_reads_tracked_files_only(tmp_path):
    _code_tree(tmp_path)
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    try:
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "pkg/core.py", "pkg/util.rs"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / "pkg" / "untracked.py").write_text("print('not committed')\n")
    docs = list(CodeSource(str(tmp_path)))
    assert sorted(d.metadata["path"] for d in docs) == ["pkg/core.py", "pkg/util.rs"]
    assert all(
        len(d.metadata["commit"]) == 40 and d.metadata["repo"] == tmp_path.name for d in docs
    )


# ---------------------------------------------------------------- papers


def test_pdf_text_extraction_and_bad_pdfs(tmp_path):
    from pypdf import PdfWriter

    (tmp_path / "a.pdf").write_bytes(_tiny_pdf("Scaling laws for tiny transformers"))
    (tmp_path / "b.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf at all")
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    with open(tmp_path / "c.pdf", "wb") as f:
        writer.write(f)
    source = PapersSource(str(tmp_path))
    docs = list(source)
    assert [d.text for d in docs] == ["Scaling laws for tiny transformers"]
    assert docs[0].metadata["format"] == "pdf"
    assert source.skipped == {"unparseable_pdf": 1, "empty": 1}


def test_latex_source_to_text(tmp_path):
    tex = (
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\title{Tiny \\emph{Models}}\n\\begin{document}\n\\maketitle\n"
        "\\section{Introduction}\\label{sec:intro}\nLoss falls as $L \\propto N^{-0.07}$ \\cite{kaplan}. % a note\n"
        "\\begin{equation}\nL = a N^{-b}\n\\end{equation}\n\\begin{itemize}\n\\item \\textbf{Bold} point.\n\\end{itemize}\n"
        "\\begin{figure}\\includegraphics{f.png}\\caption{A plot}\\end{figure}\n\\end{document}\n"
    )
    assert (
        latex_to_text(tex)
        == "Introduction\n\nLoss falls as $L \\propto N^{-0.07}$ .\n\n- Bold point."
    )
    (tmp_path / "p.tex").write_text(tex)
    (doc,) = PapersSource(str(tmp_path / "p.tex"))
    assert doc.metadata == {
        "format": "latex",
        "file": str(tmp_path / "p.tex"),
        "title": "Tiny Models",
    }


# ---------------------------------------------------------------- Hugging Face datasets


def test_hf_dataset_from_a_local_file(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    path = tmp_path / "rows.jsonl"
    path.write_text(
        "".join(json.dumps({"content": f"row {i}", "n": i}) + "\n" for i in range(5))
        + json.dumps({"content": ""})
        + "\n"
    )
    source = open_source(f"hf:{path}:content")
    docs = list(source)
    assert [d.text for d in docs] == [f"row {i}" for i in range(5)] and docs[2].metadata["n"] == 2
    assert source.skipped == {"empty": 1}


@pytest.mark.slow  # datasets retries the Hub before giving up offline: ~20 s
def test_hf_unknown_dataset_is_one_line_error(monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError, match="cannot open dataset") as error:
        list(open_source("hf:no-such-org/no-such-dataset-xyz"))
    assert "\n" not in str(error.value)


def test_zstd_needs_zstandard_or_reads(tmp_path):
    lines = b"".join(json.dumps({"text": f"z {i}"}).encode() + b"\n" for i in range(3))
    try:
        import zstandard
    except ImportError:
        (tmp_path / "a.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd")
        with pytest.raises(InputError, match="zstandard"):
            list(open_source(f"jsonl:{tmp_path / 'a.jsonl.zst'}"))
        return
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    assert [d.text for d in open_source(f"jsonl:{tmp_path / 'a.jsonl.zst'}")] == [
        "z 0",
        "z 1",
        "z 2",
    ]


# ---------------------------------------------------------------- streaming


def _peak_while_reading(source) -> tuple[int, int]:
    """(documents, peak traced bytes) while iterating, holding no document."""
    import tracemalloc

    tracemalloc.start()
    count = sum(1 for _ in source.iter_documents())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return count, peak


def test_readers_stream_in_bounded_memory(tmp_path):
    """5-10 MB of input each, read with a traced peak far below the input size."""
    row = {"text": "a line of streamed text " * 200}  # ~5 KB
    with gzip.open(tmp_path / "big.jsonl.gz", "wt") as f:
        for _ in range(2_000):
            f.write(json.dumps(row) + "\n")
    with open(tmp_path / "big.json", "w") as f:
        f.write("[" + ",".join(json.dumps(row) for _ in range(2_000)) + "]")
    body = "A paragraph of a long article about rivers and their deltas. " * 800  # ~50 KB
    (page,) = _warc_bytes([("response", "https://a.example/p", _page("Long", body), "text/html")])
    with open(tmp_path / "big.warc.gz", "wb") as f:
        for _ in range(100):
            f.write(gzip.compress(page))
    for spec, expected in (
        ("jsonl:big.jsonl.gz", 2_000),
        ("jsonl:big.json", 2_000),
        ("warc:big.warc.gz", 100),
    ):
        kind, name = spec.split(":")
        count, peak = _peak_while_reading(open_source(f"{kind}:{tmp_path / name}"))
        assert count == expected
        assert peak < 2 * 2**20, (spec, peak)
