"""HTML extraction backends and lingua language ID (accuracy on the lingua test sentences)."""

from __future__ import annotations

import pytest
from conftest import shared_file

from chatforge.data.extract import charset_of, extract_html, html_lang, html_title, html_to_str
from chatforge.data.langid import UNDETERMINED, detect, detect_batch
from chatforge.errors import ConfigError

TARGET = ["en", "tr", "de", "fr", "es", "ru", "ar", "zh"]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Rivers of Anatolia</title></head><body>
<header><nav><a href="/">Home</a> | <a href="/shop">Shop</a> | <a href="/login">Sign in</a></nav></header>
<main><article><h1>Rivers of Anatolia</h1>
<p>The Kızılırmak is the longest river that flows entirely within Turkey, running for more than a thousand kilometres.</p>
<p>It rises in the Kızıldağ mountains, crosses the central plateau and reaches the Black Sea near Bafra.</p>
<p>Its delta is an important wetland for migrating birds, protected as a nature reserve since the 1990s.</p>
</article></main>
<aside><h3>Popular posts</h3><ul><li><a href="/a">Ten best beaches</a></li><li><a href="/b">Cheap flights</a></li></ul></aside>
<footer>Copyright 2024 Example Travel. All rights reserved. Privacy policy. Cookie settings.</footer>
</body></html>"""


@pytest.mark.parametrize("backend", ["resiliparse", "trafilatura"])
def test_extract_keeps_article_drops_boilerplate(backend):
    for html in (PAGE, PAGE.encode("utf-8")):
        text = extract_html(html, backend=backend)
        assert "longest river that flows entirely within Turkey" in text
        assert "reaches the Black Sea near Bafra" in text
        for boilerplate in ("Sign in", "Cheap flights", "All rights reserved", "Cookie settings"):
            assert boilerplate not in text


def test_extract_decodes_declared_charset():
    html = PAGE.replace('charset="utf-8"', 'charset="iso-8859-9"').encode("iso-8859-9")
    assert "Kızılırmak is the longest river" in extract_html(html)
    assert html_title(html) == "Rivers of Anatolia"


def test_http_charset_wins_over_detection():
    page = (
        b"<html><body><p>Bu \xfdrmak</p></body></html>"  # 0xFD: "ı" in ISO-8859-9, "ý" in Latin-1
    )
    assert "ırmak" in html_to_str(page, charset_of("text/html; charset=ISO-8859-9"))
    assert "ırmak" not in html_to_str(page)  # detection alone guesses Latin-1 here
    assert html_to_str(page, "no-such-charset") == html_to_str(page)
    assert html_to_str("\ufeffalready text", "utf-8") == "\ufeffalready text"
    assert charset_of("text/html") is None
    assert html_lang('<!doctype html><html class="x" lang="de-AT">') == "de"
    assert html_lang("<html><body>") == ""


def test_extract_unknown_backend_and_empty_page():
    with pytest.raises(ConfigError, match="unknown HTML extractor 'lxml'"):
        extract_html(PAGE, backend="lxml")
    assert extract_html("<html><body></body></html>") == ""


def test_detect_basics():
    assert detect("") == (UNDETERMINED, 0.0)
    assert detect("   \n ") == (UNDETERMINED, 0.0)
    assert detect("12345 67 !!! ---")[0] == UNDETERMINED
    code, confidence = detect("Bugün hava çok güzel, parkta yürüyüş yapmaya karar verdik.")
    assert code == "tr" and 0.5 < confidence <= 1.0
    assert (
        detect("Der schnelle braune Fuchs springt über den faulen Hund.", ["de", "en"])[0] == "de"
    )
    with pytest.raises(ConfigError, match="'xx'"):
        detect("text", ["en", "xx"])


def test_detect_batch_matches_detect():
    texts = [
        "The weather is lovely today.",
        "",
        "Il fait très beau aujourd'hui.",
        "今天天气很好。",
        "Hoy hace muy buen tiempo.",
    ]
    assert detect_batch(texts, TARGET) == [detect(t, TARGET) for t in texts]
    assert [c for c, _ in detect_batch(texts, TARGET)] == ["en", UNDETERMINED, "fr", "zh", "es"]


def test_detect_reads_only_a_prefix_of_long_documents():
    long = (
        "This is an English sentence about rivers and mountains. " * 2000
        + "Bu cümle Türkçedir. " * 10
    )
    assert detect(long, TARGET)[0] == "en"


def _sentences(step: int) -> dict[str, list[str]]:
    out = {}
    for lang in TARGET:
        lines = (
            shared_file("lingua-langid-sentences", f"{lang}.txt")
            .read_text(encoding="utf-8")
            .splitlines()
        )
        out[lang] = [line.strip() for line in lines if line.strip()][::step]
    return out


def _accuracy(sentences: dict[str, list[str]], languages) -> tuple[float, dict[str, float]]:
    correct = total = 0
    per_language = {}
    for lang, texts in sentences.items():
        hits = sum(code == lang for code, _ in detect_batch(texts, languages))
        per_language[lang] = hits / len(texts)
        correct += hits
        total += len(texts)
    return correct / total, per_language


def test_langid_accuracy_on_lingua_sentences_restricted_set():
    """Every 3rd sentence of the 8 target languages, detector restricted to them (fast)."""
    accuracy, per_language = _accuracy(_sentences(step=3), TARGET)
    assert accuracy >= 0.97, per_language
    assert min(per_language.values()) >= 0.95, per_language


@pytest.mark.slow
def test_langid_accuracy_on_lingua_sentences_all_languages():
    """All sentences, detector over all 75 lingua languages (loads every model: slow)."""
    accuracy, per_language = _accuracy(_sentences(step=1), None)
    assert accuracy >= 0.97, per_language
    assert min(per_language.values()) >= 0.95, per_language


def test_turkish_news_is_turkish():
    lines = shared_file("turkish-text", "cnn-turk-10k.txt").read_text(encoding="utf-8").splitlines()
    sample = [line for line in lines[:400] if len(line) > 40][:100]
    codes = [code for code, _ in detect_batch(sample, TARGET)]
    assert codes.count("tr") / len(codes) >= 0.98
