"""The dirty built-in web: raw inputs for the data stage, with ground-truth labels kept aside.

`build_web(out_dir, world, seed, n_pages)` writes, from the invented world:
- `crawl-*.warc.gz`: HTML pages in WARC response records (warcio), every page inside a site
  template with navigation, cookie banner, sidebar and footer. Each page has one label:
  clean (English or Turkish articles), exact_dup (a mirror of a clean page), near_dup (a clean
  page with a small edit), other_lang (German, French, Spanish, Italian), spam (keyword
  stuffing, repeated lines, link farms), boilerplate (login, 404, tag index, cookie walls)
  or contaminated (a clean page quoting an item of `eval/web_quiz.jsonl`). A few records that
  are not pages (warcinfo, a 404 response, an image) exercise the reader's skips.
- `wiki.xml.bz2`: a MediaWiki export with infobox templates, references, tables, categories
  and redirects; `books/*.txt`: stories with a Project Gutenberg header, footer and licence;
  `code/`: a small Python package with docstrings and tests, plus a vendored folder, a
  minified file and a binary file the code reader must skip.
- `labels.json`: the label of every page by URL, and how many wiki/book/code documents exist.
The first copy of every duplicate group comes first in crawl order, so "keep the first"
matches the labels.
"""

from __future__ import annotations

import bz2
import html
import io
import json
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatforge.config import QualityConfig
from chatforge.corpus.facts import Entity, Fact
from chatforge.corpus.world import World, fact_sentence, n_sentence_variants
from chatforge.data.quality import gopher_repetition
from chatforge.runs import atomic_write_bytes, atomic_write_json, atomic_write_text

LABELS = ("clean", "exact_dup", "near_dup", "other_lang", "spam", "boilerplate", "contaminated")
# Share of each kind of page in the crawl (clean gets the rest).
MIX = {"exact_dup": 0.08, "near_dup": 0.08, "other_lang": 0.10, "spam": 0.08,
       "boilerplate": 0.06, "contaminated": 0.05}
WARC_FILES = 4
TURKISH_SHARE = 0.4


@dataclass
class Page:
    url: str
    label: str
    lang: str
    title: str
    paragraphs: list[str]
    body_html: str = ""  # set for pages whose main content is not paragraphs (link farms...)
    group: int = -1  # duplicate group: originals and their copies share it
    planted: str = ""  # id of the evaluation item quoted on the page


@dataclass
class WebCorpus:
    root: Path
    sources: list[str]
    labels: Path
    eval_sets: list[Path]
    counts: dict[str, Any] = field(default_factory=dict)


# --- clean text from the world ---------------------------------------------------------------


def _sentence(fact: Fact, lang: str, rng: random.Random) -> str:
    return fact_sentence(fact, lang, rng.randrange(n_sentence_variants(fact.relation, lang)))


def _neighbourhood(world: World, entity: Entity) -> list[Fact]:
    """Facts about an entity, facts naming it, and facts about the entities those name."""
    facts = world.facts_about(entity.id) + world.facts_mentioning(entity.id)
    related = {f.object_id for f in facts if f.object_id} | {f.subject_id for f in facts}
    related.discard(entity.id)
    for other in sorted(related):
        facts += world.facts_about(other)
    seen: set[str] = set()
    return [f for f in facts if not (f.id in seen or seen.add(f.id))]


def article(world: World, entity: Entity, lang: str, rng: random.Random, n: tuple[int, int] = (14, 20)) -> list[str]:
    """Paragraphs of an article about an entity: its facts first, then its neighbourhood."""
    own = world.facts_about(entity.id)
    rest = [f for f in _neighbourhood(world, entity) if f not in own]
    rng.shuffle(rest)
    want = rng.randint(*n)
    while len(own) + len(rest) < want:  # a sparse corner of the world: borrow more facts
        rest.append(rng.choice(world.facts))
    sentences = [_sentence(f, lang, rng) for f in own + rest[: want - len(own)]]
    cuts = sorted(rng.sample(range(3, len(sentences) - 2), 2))
    return [" ".join(sentences[a:b]) for a, b in zip([0, *cuts], [*cuts, len(sentences)], strict=True)]


# --- other languages, spam, boilerplate --------------------------------------------------------

_OTHER = {
    "de": [
        "{p} wurde im Jahr {y} in der kleinen Stadt {t} geboren und wuchs dort bei seiner Familie auf.",
        "Die Stadt {t} liegt an einem langen Fluss und hat viele alte Häuser aus Stein.",
        "Jeden Sommer kommen Besucher aus dem ganzen Land, um den großen Markt zu sehen.",
        "{p} arbeitete viele Jahre als Lehrer und schrieb mehrere Bücher über die Geschichte der Region.",
        "Die Menschen dort essen gern frisches Brot mit Käse und trinken am Abend schwarzen Tee.",
        "Im Winter ist es sehr kalt, und der Fluss ist oft wochenlang mit Eis bedeckt.",
        "Nach dem Krieg wurde die alte Brücke über den Fluss wieder aufgebaut.",
        "Heute leben in {t} ungefähr {n} Menschen, und die meisten arbeiten in der Landwirtschaft.",
        "Das Museum der Stadt zeigt Werkzeuge, Kleider und Briefe aus vergangenen Jahrhunderten.",
        "Wer {t} besucht, sollte unbedingt die Kirche auf dem Hügel und den alten Hafen sehen.",
    ],
    "fr": [
        "{p} est né en {y} dans la petite ville de {t}, où sa famille vivait depuis longtemps.",
        "La ville de {t} se trouve au bord d'une longue rivière et possède de nombreuses maisons anciennes.",
        "Chaque été, des visiteurs viennent de tout le pays pour voir le grand marché.",
        "{p} a travaillé pendant de longues années comme professeur et a écrit plusieurs livres sur la région.",
        "Les habitants aiment manger du pain frais avec du fromage et boivent du thé le soir.",
        "En hiver, il fait très froid et la rivière est souvent couverte de glace pendant des semaines.",
        "Après la guerre, le vieux pont sur la rivière a été reconstruit par les habitants.",
        "Aujourd'hui, environ {n} personnes vivent à {t}, et la plupart travaillent dans l'agriculture.",
        "Le musée de la ville présente des outils, des vêtements et des lettres des siècles passés.",
        "Ceux qui visitent {t} doivent absolument voir l'église sur la colline et le vieux port.",
    ],
    "es": [
        "{p} nació en {y} en el pequeño pueblo de {t}, donde su familia vivía desde hacía mucho tiempo.",
        "La ciudad de {t} está a orillas de un río largo y tiene muchas casas antiguas de piedra.",
        "Cada verano llegan visitantes de todo el país para ver el gran mercado de la plaza.",
        "{p} trabajó durante muchos años como maestro y escribió varios libros sobre la historia de la región.",
        "A la gente de allí le gusta comer pan fresco con queso y beber té por la noche.",
        "En invierno hace mucho frío y el río suele estar cubierto de hielo durante semanas.",
        "Después de la guerra, los vecinos reconstruyeron el viejo puente sobre el río.",
        "Hoy viven en {t} unas {n} personas, y la mayoría trabaja en la agricultura.",
        "El museo de la ciudad muestra herramientas, ropa y cartas de los siglos pasados.",
        "Quien visite {t} no debe perderse la iglesia de la colina ni el antiguo puerto.",
    ],
    "it": [
        "{p} è nato nel {y} nella piccola città di {t}, dove la sua famiglia viveva da molto tempo.",
        "La città di {t} si trova sulle rive di un lungo fiume e ha molte case antiche di pietra.",
        "Ogni estate arrivano visitatori da tutto il paese per vedere il grande mercato della piazza.",
        "{p} ha lavorato per molti anni come insegnante e ha scritto diversi libri sulla storia della regione.",
        "Alla gente del posto piace mangiare pane fresco con il formaggio e bere il tè la sera.",
        "In inverno fa molto freddo e il fiume è spesso coperto di ghiaccio per settimane.",
        "Dopo la guerra, gli abitanti hanno ricostruito il vecchio ponte sul fiume.",
        "Oggi a {t} vivono circa {n} persone, e la maggior parte lavora nell'agricoltura.",
        "Il museo della città mostra attrezzi, vestiti e lettere dei secoli passati.",
        "Chi visita {t} non deve perdere la chiesa sulla collina e il vecchio porto.",
    ],
}

_SPAM_KEYWORDS = [
    "cheap watches", "casino bonus", "weight loss pills", "free followers", "crypto signals",
    "payday loans", "replica bags", "diet tea",
]
_LINK_WORDS = ["best", "cheap", "top", "free", "online", "deal", "offer", "buy", "sale", "shop"]


def _other_language(world: World, lang: str, rng: random.Random) -> list[str]:
    people = world.of_kind("person")
    towns = world.of_kind("town")
    slots = {"p": rng.choice(people).name, "t": rng.choice(towns).name,
             "y": rng.randrange(1800, 2000), "n": rng.randrange(2, 90) * 1000}
    sentences = [s.format(**slots) for s in rng.sample(_OTHER[lang], rng.randint(7, 10))]
    return [" ".join(sentences[:4]), " ".join(sentences[4:])]


def _spam(rng: random.Random) -> tuple[str, list[str], str]:
    """(title, paragraphs, body_html) of a spam page of one of three kinds."""
    kw = rng.choice(_SPAM_KEYWORDS)
    kind = rng.randrange(3)
    if kind == 0:  # keyword stuffing
        words = [kw, f"buy {kw}", f"best {kw} online", f"{kw} discount", f"cheap {kw} now"]
        stuffed = " ".join(rng.choice(words) for _ in range(rng.randint(60, 90)))
        return f"Best {kw}", [f"{stuffed}."], ""
    if kind == 1:  # the same lines over and over
        lines = [f"BEST {kw.upper()} DEALS! CLICK HERE NOW!", f"Get your {kw} today with free shipping.",
                 f"Limited offer on {kw}, order now."]
        paragraphs = [rng.choice(lines) for _ in range(rng.randint(25, 40))]
        return f"{kw.title()} deals", paragraphs, ""
    links = "".join(  # link farm: a long list of short anchor texts
        f'<li><a href="https://{rng.choice(_LINK_WORDS)}-{kw.replace(" ", "-")}-{i}.example.com/">'
        f"{rng.choice(_LINK_WORDS)} {kw} {i}</a></li>"
        for i in range(rng.randint(40, 70))
    )
    return f"{kw.title()} links", [], f"<h1>{kw.title()} directory</h1><ul>{links}</ul>"


_BOILERPLATE = {
    "en": [
        ("Sign in", ["Sign in to your account.", "Username", "Password", "Forgot your password?",
                     "Create an account"]),
        ("Page not found", ["404", "Sorry, the page you are looking for does not exist.", "Go back home"]),
        ("Tags", ["Tags:", "news, weather, towns, rivers, people, food", "Archive: January, February, March",
                  "Older posts", "Newer posts"]),
        ("Your privacy", ["We value your privacy.", "We and our partners use cookies to store and access "
                          "information on your device.", "Accept all", "Reject all", "Manage options"]),
    ],
    "tr": [
        ("Giriş yap", ["Hesabınıza giriş yapın.", "Kullanıcı adı", "Şifre", "Şifrenizi mi unuttunuz?",
                       "Yeni hesap oluştur"]),
        ("Sayfa bulunamadı", ["404", "Aradığınız sayfa bulunamadı.", "Ana sayfaya dön"]),
    ],
}

_SITES = {
    "en": (["Home", "News", "Towns", "People", "Rivers", "About", "Contact"], "Popular articles",
           "This site uses cookies. By continuing to browse you accept our cookie policy.",
           "All rights reserved.", "Privacy policy", "Terms of use"),
    "tr": (["Ana Sayfa", "Haberler", "Şehirler", "Kişiler", "Nehirler", "Hakkında", "İletişim"],
           "Popüler yazılar", "Bu site çerez kullanır. Gezinmeye devam ederek çerez politikamızı kabul edersiniz.",
           "Tüm hakları saklıdır.", "Gizlilik politikası", "Kullanım koşulları"),
}


def render_html(page: Page, site: str, rng: random.Random) -> str:
    """The page inside its site template (navigation, banner, sidebar, footer)."""
    nav, popular, cookie, rights, privacy, terms = _SITES["tr" if page.lang == "tr" else "en"]
    esc = html.escape
    menu = "".join(f'<li><a href="/{i}">{esc(item)}</a></li>' for i, item in enumerate(nav))
    side = "".join(
        f'<li><a href="/a/{rng.randrange(10**6)}">{esc(w)} {rng.randrange(100)}</a></li>'
        for w in rng.sample(nav, 4)
    )
    main = page.body_html or f"<h1>{esc(page.title)}</h1>" + "".join(f"<p>{esc(p)}</p>" for p in page.paragraphs)
    return (
        f'<!DOCTYPE html><html lang="{page.lang}"><head><meta charset="utf-8">'
        f"<title>{esc(page.title)} | {esc(site)}</title></head><body>"
        f'<header><div class="logo">{esc(site)}</div><nav><ul>{menu}</ul></nav></header>'
        f'<div class="cookie-banner">{esc(cookie)} <button>OK</button></div>'
        f"<main><article>{main}</article>"
        f"<aside><h3>{esc(popular)}</h3><ul>{side}</ul></aside></main>"
        f"<footer><p>© 2024 {esc(site)}. {esc(rights)}</p>"
        f'<a href="/privacy">{esc(privacy)}</a> | <a href="/terms">{esc(terms)}</a></footer>'
        "</body></html>"
    )


# --- evaluation items planted in pages ---------------------------------------------------------


_NUMBER_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]


def quiz_items(world: World, rng: random.Random, n: int) -> list[dict[str, Any]]:
    """GSM8K-style word problems about the world (question + answer), one per line of JSONL.

    Numbers are spelled out and the (person, good), (person, a, b) and (person, town, a)
    combinations are unique, so every 13-gram of an item belongs to that item alone (dedup's
    canonical form folds digits, which would otherwise make the template's runs shared).
    """
    people, towns = world.of_kind("person"), world.of_kind("town")
    goods = ["apples", "walnuts", "plums", "cheese", "honey", "lentils", "rice", "figs"]
    items: list[dict[str, Any]] = []
    used: set[tuple[Any, ...]] = set()
    for _ in range(200 * n):  # a small world has few unique combinations: stop, don't spin
        if len(items) == n:
            break
        p, t, home, g = rng.choice(people).name, rng.choice(towns).name, rng.choice(towns).name, rng.choice(goods)
        a, b = rng.randint(2, 10), rng.randint(3, 12)
        keys = {("pg", p, g), ("pab", p, a, b), ("pta", p, t, a)}
        if keys & used:
            continue
        used |= keys
        A, B = _NUMBER_WORDS[a - 2], _NUMBER_WORDS[b - 2]
        question = (
            f"{p} walks to the market in {t} with {A} empty baskets. At the market {p} fills "
            f"every basket with {B} kilograms of {g}. How many kilograms of {g} does {p} carry "
            f"back home to {home}?"
        )
        items.append({"id": f"web_quiz-{len(items):04d}", "question": question, "answer": f"#### {a * b}"})
    return items


# --- wiki, books, code --------------------------------------------------------------------------


def wiki_dump(world: World, rng: random.Random, n_articles: int) -> tuple[bytes, int]:
    """A MediaWiki XML export (bz2) of English articles; returns (bytes, number of articles)."""
    entities = rng.sample(world.entities, min(n_articles, len(world.entities)))
    pages = []
    for i, e in enumerate(entities):
        paragraphs = article(world, e, "en", rng, n=(10, 14))
        links = [f"[[{p.split()[0]}]]" for p in paragraphs]
        text = (
            f"{{{{Infobox {e.kind}\n| name = {e.name}\n| image = {e.name}.jpg\n}}}}\n"
            f"'''{e.name}''' is described in this article.<ref>{{{{cite book |title=Atlas}}}}</ref>\n\n"
            + "\n\n".join(paragraphs)
            + f"\n\n== See also ==\n* {links[0]}\n\n"
            "{| class=\"wikitable\"\n|-\n! Year !! Value\n|-\n| 1900 || 12\n|}\n\n"
            f"== References ==\n<references />\n\n[[Category:{e.kind.title()}s]]\n[[File:{e.name}.jpg|thumb]]"
        )
        pages.append((e.name, i + 1, text))
    redirects = [(f"{e.name} (disambiguation)", len(pages) + j + 1, f"#REDIRECT [[{e.name}]]")
                 for j, e in enumerate(entities[:3])]
    body = "".join(
        f"<page><title>{html.escape(title)}</title><ns>0</ns><id>{pid}</id>"
        f"<revision><id>{pid * 10}</id><text xml:space=\"preserve\">{html.escape(text)}</text></revision></page>\n"
        for title, pid, text in pages + redirects
    )
    xml = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">\n'
        "<siteinfo><sitename>Worldpedia</sitename><dbname>worldwiki</dbname>"
        "<base>https://world.example.org/wiki/Main_Page</base>"
        '<namespaces><namespace key="6" case="first-letter">File</namespace>'
        '<namespace key="14" case="first-letter">Category</namespace></namespaces></siteinfo>\n'
        f"{body}</mediawiki>\n"
    )
    return bz2.compress(xml.encode("utf-8")), len(pages)


def book(world: World, rng: random.Random, title: str, chapters: int) -> str:
    """A story collection with a Project Gutenberg header, footer and licence.

    Fact sentences of a small world repeat their templates' phrases, and a long book of them
    would rightly fail Gopher's duplicated n-gram rule; a book labelled clean stops at the
    chapter before it would (it always keeps two).
    """
    parts: list[str] = []
    for c in range(chapters):
        e = rng.choice(world.entities)
        paragraphs = article(world, e, "en", rng, n=(12, 16))
        chapter = f"CHAPTER {c + 1}.\n\n" + "\n\n".join(paragraphs)
        if len(parts) >= 2 and gopher_repetition("\n\n".join([*parts, chapter]), QualityConfig()):
            break
        parts.append(chapter)
    header = (
        f"The Project Gutenberg eBook of {title}\n\nThis ebook is for the use of anyone anywhere at no "
        "cost and with almost no restrictions whatsoever.\n\nTitle: " + title + "\n\nLanguage: English\n\n"
        f"*** START OF THE PROJECT GUTENBERG EBOOK {title.upper()} ***\n\n"
    )
    footer = (
        f"\n\n*** END OF THE PROJECT GUTENBERG EBOOK {title.upper()} ***\n\n"
        "Updated editions will replace the previous one. START: FULL LICENSE\n"
        "THE FULL PROJECT GUTENBERG LICENSE\nPLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK\n"
    )
    return header + "\n\n".join(parts) + footer


_CODE = {
    "worldlib/__init__.py": '"""Helpers for the invented world: distances, populations, names."""\n',
    "worldlib/geo.py": '''"""Distances between towns along rivers."""


def river_distance(a_km: float, b_km: float) -> float:
    """Distance in kilometres between two points given by their distance from the source."""
    return abs(a_km - b_km)


def travel_days(distance_km: float, km_per_day: float = 30.0) -> int:
    """Whole days a traveller needs for a distance at a steady pace."""
    if km_per_day <= 0:
        raise ValueError("km_per_day must be positive")
    return int(-(-distance_km // km_per_day))
''',
    "worldlib/people.py": '''"""Names and ages of the people of the world."""


def initials(name: str) -> str:
    """Initials of a full name, e.g. 'Ayla Demir' -> 'A.D.'."""
    return "".join(part[0].upper() + "." for part in name.split())


def age_in(year: int, birth_year: int) -> int:
    """Age a person reaches during `year`."""
    return year - birth_year
''',
    "tests/test_geo.py": '''from worldlib.geo import river_distance, travel_days


def test_distance_is_symmetric():
    assert river_distance(3, 10) == river_distance(10, 3) == 7


def test_travel_days_rounds_up():
    assert travel_days(61, 30) == 3
''',
    "tests/test_people.py": '''from worldlib.people import age_in, initials


def test_initials():
    assert initials("ayla demir") == "A.D."


def test_age():
    assert age_in(2000, 1950) == 50
''',
}


def write_code(root: Path) -> int:
    """A small package with tests, plus files the code reader must skip; returns files kept."""
    for rel, text in _CODE.items():
        atomic_write_text(root / rel, text)
    atomic_write_text(root / "node_modules/leftpad/index.js", "module.exports = (s, n) => s.padStart(n);\n")
    atomic_write_text(root / "static/app.min.js", "var a=1;" * 300 + "\n")
    atomic_write_bytes(root / "static/logo.py", b"\x89PNG\r\n\x1a\n\x00\x00binary")
    return len(_CODE)


# --- the crawl ----------------------------------------------------------------------------------


def _near_edit(paragraphs: list[str], rng: random.Random) -> list[str]:
    """A small edit: one word changed, a sentence dropped from the end, or one appended."""
    out = list(paragraphs)
    kind = rng.randrange(3)
    if kind == 0:
        i = rng.randrange(len(out))
        words = out[i].split()
        j = rng.randrange(len(words))
        words[j] = "really" if words[j] != "really" else "truly"
        out[i] = " ".join(words)
    elif kind == 1:
        sentences = out[-1].split(". ")
        out[-1] = ". ".join(sentences[:-1]) + "." if len(sentences) > 1 else out[-1] + " Updated."
    else:
        out[-1] += " This page was last updated this spring."
    return out


def _pages(world: World, rng: random.Random, n_pages: int, quiz: list[dict[str, Any]]) -> list[Page]:
    counts = {label: round(share * n_pages) for label, share in MIX.items()}
    counts["clean"] = n_pages - sum(counts.values())
    n_originals = counts["clean"]
    pages: list[Page] = []
    topics = world.entities
    for i in range(n_originals):
        lang = "tr" if rng.random() < TURKISH_SHARE else "en"
        e = topics[i % len(topics)]
        pages.append(Page(f"https://{lang}.worldnews.example/{e.id}/{i}", "clean", lang, e.name,
                          article(world, e, lang, rng), group=i))
    originals = list(pages)
    for i, orig in enumerate(rng.sample(originals, counts["exact_dup"])):
        pages.append(Page(f"https://mirror{i % 5}.example.net/{orig.url.split('/', 3)[3]}", "exact_dup",
                          orig.lang, orig.title, orig.paragraphs, group=orig.group))
    for i, orig in enumerate(rng.sample(originals, counts["near_dup"])):
        pages.append(Page(f"https://copy{i % 5}.example.org/{orig.url.split('/', 3)[3]}", "near_dup",
                          orig.lang, orig.title, _near_edit(orig.paragraphs, rng), group=orig.group))
    langs = sorted(_OTHER)
    for i in range(counts["other_lang"]):
        lang = langs[i % len(langs)]
        pages.append(Page(f"https://{lang}.travel.example/{i}", "other_lang", lang, f"{lang} {i}",
                          _other_language(world, lang, rng)))
    for i in range(counts["spam"]):
        title, paragraphs, body = _spam(rng)
        pages.append(Page(f"https://deals{i}.spam.example/", "spam", "en", title, paragraphs, body))
    for i in range(counts["boilerplate"]):
        lang = "tr" if i % 3 == 2 else "en"
        title, lines = rng.choice(_BOILERPLATE[lang])
        pages.append(Page(f"https://{lang}.worldnews.example/system/{i}", "boilerplate", lang, title, lines))
    for i in range(counts["contaminated"]):
        e = rng.choice(topics)
        item = quiz[i % len(quiz)]
        paragraphs = article(world, e, "en", rng)
        paragraphs.insert(1, f"Practice problem: {item['question']} {item['answer']}")
        pages.append(Page(f"https://homework.example.com/{e.id}/{i}", "contaminated", "en", e.name,
                          paragraphs, planted=item["id"]))
    return pages


def _crawl_order(pages: list[Page], rng: random.Random) -> list[Page]:
    """Shuffle pages, then put every group's original before its copies."""
    keys = {id(p): rng.random() for p in pages}
    by_group: dict[int, list[Page]] = {}
    for p in pages:
        if p.group >= 0:
            by_group.setdefault(p.group, []).append(p)
    for members in by_group.values():
        original = next(p for p in members if p.label == "clean")
        first = min(members, key=lambda p: keys[id(p)])
        keys[id(original)], keys[id(first)] = keys[id(first)], keys[id(original)]
    return sorted(pages, key=lambda p: keys[id(p)])


def _warc(name: str, pages: list[Page], rng: random.Random, site_of: dict[str, str], extra: bool) -> bytes:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)

    def fixed(name: str) -> dict[str, str]:
        # warcio would stamp the current time and a random UUID: the crawl must be reproducible.
        return {"WARC-Date": "2024-05-01T12:00:00Z",
                "WARC-Record-ID": f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>"}

    info = writer.create_warcinfo_record(name, {"software": "chatforge"})
    for key, value in fixed(name).items():
        info.rec_headers.replace_header(key, value)
    writer.write_record(info)

    def response(url: str, body: bytes, status: str = "200 OK", ctype: str = "text/html; charset=utf-8") -> None:
        headers = StatusAndHeaders(status, [("Content-Type", ctype)], protocol="HTTP/1.1")
        record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers,
                                           warc_headers_dict=fixed(url))
        writer.write_record(record)

    for p in pages:
        site = site_of[p.url.split("/")[2]]
        response(p.url, render_html(p, site, rng).encode("utf-8"))
    if extra:
        response("https://worldnews.example/missing", b"<html>gone</html>", status="404 Not Found")
        response("https://worldnews.example/logo.png", b"\x89PNG\r\n\x1a\n", ctype="image/png")
    return buf.getvalue()


def build_web(out_dir: str | Path, world: World, seed: int, n_pages: int = 1200) -> WebCorpus:
    """Write the dirty web corpus and its labels under `out_dir`; deterministic in `seed`."""
    root = Path(out_dir)
    rng = random.Random(f"web-{seed}")
    quiz = quiz_items(world, rng, max(40, round(MIX["contaminated"] * n_pages) * 2))
    pages = _crawl_order(_pages(world, rng, n_pages, quiz), rng)
    hosts = sorted({p.url.split("/")[2] for p in pages})
    site_of = {h: h.split(".")[-2].title() + " " + h.split(".")[0].title() for h in hosts}
    per_file = -(-len(pages) // WARC_FILES)
    for k in range(WARC_FILES):
        chunk = pages[k * per_file : (k + 1) * per_file]
        name = f"crawl-{k:05d}.warc.gz"
        atomic_write_bytes(root / name, _warc(name, chunk, rng, site_of, extra=k == 0))
    atomic_write_text(root / "eval" / "web_quiz.jsonl", "".join(json.dumps(q) + "\n" for q in quiz))
    dump, n_wiki = wiki_dump(world, rng, max(20, n_pages // 20))
    atomic_write_bytes(root / "wiki.xml.bz2", dump)
    n_books = max(2, n_pages // 300)
    for b in range(n_books):
        title = f"Tales of {world.country}, Volume {b + 1}"
        atomic_write_text(root / "books" / f"pg{9000 + b}.txt", book(world, rng, title, chapters=12))
    n_code = write_code(root / "code")
    counts = {label: sum(p.label == label for p in pages) for label in LABELS}
    counts |= {"wiki": n_wiki, "books": n_books, "code": n_code}
    labels = {"pages": {p.url: p.label for p in pages},
              "languages": {p.url: p.lang for p in pages},
              "counts": counts,
              "planted": {p.url: p.planted for p in pages if p.planted}}
    atomic_write_json(root / "labels.json", labels)
    sources = [f"warc:{root}/crawl-*.warc.gz", f"wiki:{root}/wiki.xml.bz2", f"books:{root}/books/*.txt",
               f"code:{root}/code"]
    return WebCorpus(root, sources, root / "labels.json", [root / "eval" / "web_quiz.jsonl"], counts)
