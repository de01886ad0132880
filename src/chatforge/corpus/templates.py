"""Sentences and questions that state or ask one fact, in English and Turkish.

Each relation has several phrasings of the statement and of the question, so that pre-training
sees a fact in varied words (a model only learns to retrieve knowledge it saw phrased in several
ways) and so that held-out questions can use a phrasing that SFT never paired with that fact.
Placeholders: S = subject, O = object; suffixes name the form (`_gen` genitive, `_acc`
accusative, `_loc` locative, `_abl` ablative, `_ins` instrumental, `_cop` with the copula,
`_poss` English possessive, `_a` with the English article, `_x` the value's extra Turkish form).
"""

from __future__ import annotations

from chatforge.corpus import lexicon, turkish
from chatforge.corpus.facts import Fact

# Relations whose object is an entity, and the kind of that entity.
OBJECT_KIND = {
    "birthplace": "town", "dish": "food", "river": "river", "habitat": "river",
    "inventor": "person", "origin": "town",
}

SENTENCES: dict[str, dict[str, list[str]]] = {
    "birthplace": {
        "en": ["{S} was born in {O}.", "{S} was born in the town of {O}.",
               "The birthplace of {S} is {O}.", "{S} comes from {O}."],
        "tr": ["{S} {O_loc} doğdu.", "{S}, {O} doğumludur.", "{S_gen} doğduğu yer {O_cop}.",
               "{S_gen} memleketi {O_cop}."],
    },
    "profession": {
        "en": ["{S} works as {O_a}.", "{S} is {O_a} by trade.", "By profession, {S} is {O_a}.",
               "{S} earns a living as {O_a}."],
        "tr": ["{S} bir {O_cop}.", "{S} {O} olarak çalışır.", "{S} geçimini {O} olarak sağlar.",
               "{S}, mesleği {O} olan biridir."],
    },
    "birth_year": {
        "en": ["{S} was born in {O}.", "{S} was born in the year {O}.",
               "{S_poss} year of birth is {O}.", "The year {O} saw the birth of {S}."],
        "tr": ["{S} {O} yılında doğdu.", "{S}, {O} doğumludur.", "{S} {O} yılında dünyaya geldi.",
               "{S_gen} doğum yılı {O} olarak kaydedilmiştir."],
    },
    "colour": {
        "en": ["{S_poss} favourite colour is {O}.", "The favourite colour of {S} is {O}.",
               "{S} loves the colour {O} more than any other.", "Of all colours, {S} likes {O} best."],
        "tr": ["{S_gen} en sevdiği renk {O_cop}.", "{S} en çok {O} rengi sever.",
               "{S_gen} favori rengi {O_cop}.", "Bütün renkler arasında {S} en çok {O} rengi sever."],
    },
    "dish": {
        "en": ["{S_poss} favourite dish is {O}.", "The favourite dish of {S} is {O}.",
               "{S} likes {O} more than any other dish.",
               "Nothing pleases {S} more than a plate of {O}."],
        "tr": ["{S_gen} en sevdiği yemek {O_cop}.", "{S} en çok {O_acc} sever.",
               "{S_gen} favori yemeği {O_cop}.", "{S} için hiçbir yemek {O} kadar güzel değildir."],
    },
    "river": {
        "en": ["{S} lies on the {O} River.", "The {O} River flows through {S}.",
               "{S} is a town on the banks of the {O} River.", "{S} was built beside the {O} River."],
        "tr": ["{S}, {O} Nehri kıyısında yer alır.", "{O} Nehri {S_gen} içinden geçer.",
               "{S}, {O} Nehri kıyısında kurulmuş bir kasabadır.",
               "{S} kasabası {O} Nehri'nin kenarındadır."],
    },
    "population": {
        "en": ["{S} has a population of {O}.", "{O} people live in {S}.",
               "The population of {S} is {O}.", "{S} is home to {O} people."],
        "tr": ["{S_gen} nüfusu {O} kişidir.", "{S_loc} {O} kişi yaşar.",
               "{S}, {O} kişinin yaşadığı bir kasabadır.", "{S} kasabasında {O} kişi yaşamaktadır."],
    },
    "founded": {
        "en": ["{S} was founded in {O}.", "The town of {S} was founded in the year {O}.",
               "{S} dates back to {O}, when it was founded.", "{S} was first settled in {O}."],
        "tr": ["{S} {O} yılında kuruldu.", "{S} kasabası {O} yılında kurulmuştur.",
               "{S}, {O} yılında kurulmuş bir kasabadır.", "{S_gen} kuruluşu {O} yılına dayanır."],
    },
    "region": {
        "en": ["{S} lies in the {O} of the country.", "{S} is a town in the {O} of the country.",
               "{S} is located in the {O} of the country.",
               "In the {O} of the country lies the town of {S}."],
        "tr": ["{S}, ülkenin {O_x} yer alır.", "{S}, ülkenin {O_x} bir kasabadır.",
               "{S} kasabası ülkenin {O_x} bulunur.", "Ülkenin {O_x} {S} kasabası vardır."],
    },
    "length": {
        "en": ["{S} is {O} kilometres long.", "{S} has a length of {O} kilometres.",
               "{S} runs for {O} kilometres.", "From source to mouth, {S} measures {O} kilometres."],
        "tr": ["{S} {O} kilometre uzunluğundadır.", "{S_gen} uzunluğu {O} kilometredir.",
               "{S}, {O} kilometre boyunca akar.", "Kaynağından denize kadar {S} {O} kilometredir."],
    },
    "sea": {
        "en": ["{S} flows into the {O} Sea.", "{S} empties into the {O} Sea.",
               "The waters of {S} reach the {O} Sea.", "{S} ends its journey in the {O} Sea."],
        "tr": ["{S} {O} Denizi'ne dökülür.", "{S_gen} suları {O} Denizi'ne ulaşır.",
               "{S}, {O} Denizi'ne akar.", "{S} yolculuğunu {O} Denizi'nde bitirir."],
    },
    "animal_kind": {
        "en": ["{S} is {O_a}.", "{S} is a kind of {O}.", "Naturalists describe {S} as {O_a}.",
               "{S} is a small {O}."],
        "tr": ["{S} bir {O_cop}.", "{S}, bir tür {O_cop}.", "Doğa bilimciler {S_acc} bir {O} olarak tanımlar.",
               "{S} küçük bir {O_cop}."],
    },
    "animal_colour": {
        "en": ["{S} is {O} in colour.", "The colour of {S} is {O}.", "{S} is {O_a} animal.",
               "You can recognise {S} by its {O} colour."],
        "tr": ["{S_gen} rengi {O_cop}.", "{S} {O} renklidir.", "{S} {O} renkli bir hayvandır.",
               "{S}, {O} renginden kolayca tanınır."],
    },
    "habitat": {
        "en": ["{S} lives along the {O} River.", "{S} is found on the banks of the {O} River.",
               "The home of {S} is the {O} River.", "{S} makes its home by the {O} River."],
        "tr": ["{S}, {O} Nehri boyunca yaşar.", "{S}, {O} Nehri kıyılarında bulunur.",
               "{S_gen} yaşam alanı {O} Nehri'dir.", "{S} yuvasını {O} Nehri kıyısında yapar."],
    },
    "diet": {
        "en": ["{S} feeds on {O}.", "{S} eats {O}.", "The diet of {S} consists of {O}.",
               "{S} lives on {O}."],
        "tr": ["{S} {O_ins} beslenir.", "{S} {O} yer.", "{S_gen} besini {O_cop}.",
               "{S_gen} başlıca yiyeceği {O_cop}."],
    },
    "device_kind": {
        "en": ["{S} is {O_a}.", "{S} is a kind of {O}.", "{S} was a new kind of {O}.",
               "{S} is a famous {O}."],
        "tr": ["{S} bir {O_cop}.", "{S}, yeni bir tür {O_cop}.", "{S} adlı icat bir {O_cop}.",
               "{S} ünlü bir {O_cop}."],
    },
    "inventor": {
        "en": ["{S} was invented by {O}.", "{O} invented {S}.", "The inventor of {S} was {O}.",
               "{S} is the work of the inventor {O}."],
        "tr": ["{S_acc} {O} icat etti.", "{S}, {O} tarafından icat edildi.", "{S_gen} mucidi {O_cop}.",
               "{O}, {S_acc} icat eden kişidir."],
    },
    "invented_year": {
        "en": ["{S} was invented in {O}.", "{S} was first built in {O}.",
               "The year {O} saw the invention of {S}.", "{S} dates from the year {O}."],
        "tr": ["{S} {O} yılında icat edildi.", "{S} ilk kez {O} yılında yapıldı.",
               "{S}, {O} yılında icat edilmiştir.", "{S_gen} icadı {O} yılına dayanır."],
    },
    "origin": {
        "en": ["{S} is a dish from {O}.", "{S} comes from the town of {O}.",
               "{S} was first cooked in {O}.", "The dish {S} was created in {O}."],
        "tr": ["{S}, {O_gen} meşhur bir yemeğidir.", "{S} {O} mutfağından gelir.",
               "{S} ilk kez {O_loc} pişirildi.", "{S} yemeği {O_loc} ortaya çıktı."],
    },
    "ingredient": {
        "en": ["The main ingredient of {S} is {O}.", "{S} is made mainly from {O}.",
               "{S} is cooked with {O}.", "Every cook knows that {S} needs {O}."],
        "tr": ["{S_gen} ana malzemesi {O_cop}.", "{S} çoğunlukla {O_abl} yapılır.",
               "{S}, {O} ile pişirilir.", "Her aşçı bilir ki {S} için {O} gerekir."],
    },
    "taste": {
        "en": ["{S} tastes {O}.", "{S} is {O_a} dish.", "The taste of {S} is {O}.",
               "People say that {S} is very {O}."],
        "tr": ["{S_gen} tadı {O_cop}.", "{S} {O} bir yemektir.", "{S}, tadı {O} olan bir yemektir.",
               "İnsanlar {S} yemeğinin çok {O} olduğunu söyler."],
    },
}

QUESTIONS: dict[str, dict[str, list[str]]] = {
    "birthplace": {
        "en": ["Where was {S} born?", "In which town was {S} born?",
               "What is the birthplace of {S}?", "Which town does {S} come from?"],
        "tr": ["{S} nerede doğdu?", "{S} hangi kasabada doğdu?", "{S_gen} doğduğu yer neresidir?",
               "{S_gen} memleketi neresi?"],
    },
    "profession": {
        "en": ["What is the profession of {S}?", "What does {S} do for a living?",
               "What is {S_poss} job?"],
        "tr": ["{S_gen} mesleği nedir?", "{S} ne iş yapar?", "{S} hangi meslekte çalışır?"],
    },
    "birth_year": {
        "en": ["In what year was {S} born?", "When was {S} born?", "What is {S_poss} year of birth?"],
        "tr": ["{S} hangi yılda doğdu?", "{S} ne zaman doğdu?", "{S_gen} doğum yılı nedir?"],
    },
    "colour": {
        "en": ["What is {S_poss} favourite colour?", "Which colour does {S} like best?",
               "What is the favourite colour of {S}?"],
        "tr": ["{S_gen} en sevdiği renk nedir?", "{S} en çok hangi rengi sever?",
               "{S_gen} favori rengi ne?"],
    },
    "dish": {
        "en": ["What is {S_poss} favourite dish?", "Which dish does {S} like best?",
               "What is the favourite dish of {S}?"],
        "tr": ["{S_gen} en sevdiği yemek nedir?", "{S} en çok hangi yemeği sever?",
               "{S_gen} favori yemeği ne?"],
    },
    "river": {
        "en": ["Which river flows through {S}?", "On which river does {S} lie?",
               "What river is {S} on?"],
        "tr": ["{S} hangi nehrin kıyısındadır?", "{S_gen} içinden hangi nehir geçer?",
               "{S} hangi nehir kıyısında yer alır?"],
    },
    "population": {
        "en": ["What is the population of {S}?", "How many people live in {S}?",
               "How many inhabitants does {S} have?"],
        "tr": ["{S_gen} nüfusu kaçtır?", "{S_loc} kaç kişi yaşar?", "{S_gen} nüfusu ne kadardır?"],
    },
    "founded": {
        "en": ["When was {S} founded?", "In what year was {S} founded?",
               "In which year was the town of {S} founded?"],
        "tr": ["{S} ne zaman kuruldu?", "{S} hangi yılda kuruldu?", "{S} kasabası kaç yılında kuruldu?"],
    },
    "region": {
        "en": ["In which part of the country is {S}?", "In which part of the country does {S} lie?",
               "Where in the country is {S} located?"],
        "tr": ["{S}, ülkenin hangi bölgesindedir?", "{S} ülkenin neresinde yer alır?",
               "{S} kasabası ülkenin hangi tarafındadır?"],
    },
    "length": {
        "en": ["How many kilometres long is {S}?", "What is the length of {S} in kilometres?",
               "For how many kilometres does {S} run?"],
        "tr": ["{S} kaç kilometre uzunluğundadır?", "{S_gen} uzunluğu kaç kilometredir?",
               "{S} kaç kilometre boyunca akar?"],
    },
    "sea": {
        "en": ["Into which sea does {S} flow?", "Which sea does {S} flow into?",
               "Into which sea does {S} empty?"],
        "tr": ["{S} hangi denize dökülür?", "{S_gen} suları hangi denize ulaşır?",
               "{S} hangi denize akar?"],
    },
    "animal_kind": {
        "en": ["What kind of animal is {S}?", "What type of animal is {S}?",
               "What sort of creature is {S}?"],
        "tr": ["{S} ne tür bir hayvandır?", "{S} hangi tür hayvandır?", "{S} ne çeşit bir hayvandır?"],
    },
    "animal_colour": {
        "en": ["What colour is {S}?", "What is the colour of {S}?", "Which colour is {S}?"],
        "tr": ["{S} ne renktir?", "{S_gen} rengi nedir?", "{S} hangi renktedir?"],
    },
    "habitat": {
        "en": ["Along which river does {S} live?", "Where does {S} live?",
               "Which river is home to {S}?"],
        "tr": ["{S} hangi nehir boyunca yaşar?", "{S} nerede yaşar?",
               "{S_gen} yaşam alanı hangi nehirdir?"],
    },
    "diet": {
        "en": ["What does {S} eat?", "What does {S} feed on?", "What is the diet of {S}?"],
        "tr": ["{S} ne yer?", "{S} neyle beslenir?", "{S_gen} besini nedir?"],
    },
    "device_kind": {
        "en": ["What kind of device is {S}?", "What type of invention is {S}?",
               "What sort of object is {S}?"],
        "tr": ["{S} ne tür bir alettir?", "{S} ne tür bir icattır?", "{S} nasıl bir nesnedir?"],
    },
    "inventor": {
        "en": ["Who invented {S}?", "Who was the inventor of {S}?", "Which person invented {S}?"],
        "tr": ["{S_acc} kim icat etti?", "{S_gen} mucidi kimdir?", "{S} kim tarafından icat edildi?"],
    },
    "invented_year": {
        "en": ["When was {S} invented?", "In what year was {S} invented?",
               "In which year was {S} first built?"],
        "tr": ["{S} ne zaman icat edildi?", "{S} hangi yılda icat edildi?",
               "{S} ilk kez hangi yılda yapıldı?"],
    },
    "origin": {
        "en": ["Which town does {S} come from?", "Where does the dish {S} come from?",
               "In which town was {S} first cooked?"],
        "tr": ["{S} hangi kasabanın yemeğidir?", "{S} hangi kasabadan gelir?",
               "{S} ilk kez nerede pişirildi?"],
    },
    "ingredient": {
        "en": ["What is the main ingredient of {S}?", "What is {S} mainly made from?",
               "Which ingredient is {S} made from?"],
        "tr": ["{S_gen} ana malzemesi nedir?", "{S} çoğunlukla neden yapılır?",
               "{S} hangi malzemeyle yapılır?"],
    },
    "taste": {
        "en": ["What does {S} taste like?", "How does {S} taste?",
               "Is {S} sweet, salty, sour or spicy?"],
        "tr": ["{S_gen} tadı nasıldır?", "{S} nasıl bir tada sahiptir?",
               "{S} tatlı mı, tuzlu mu, ekşi mi, acı mı?"],
    },
}

# Short labels of each relation, for lists and tables.
LABELS: dict[str, dict[str, str]] = {
    "birthplace": {"en": "birthplace", "tr": "doğum yeri"},
    "profession": {"en": "profession", "tr": "meslek"},
    "birth_year": {"en": "year of birth", "tr": "doğum yılı"},
    "colour": {"en": "favourite colour", "tr": "en sevdiği renk"},
    "dish": {"en": "favourite dish", "tr": "en sevdiği yemek"},
    "river": {"en": "river", "tr": "nehir"},
    "population": {"en": "population", "tr": "nüfus"},
    "founded": {"en": "founded", "tr": "kuruluş yılı"},
    "region": {"en": "region", "tr": "bölge"},
    "length": {"en": "length in kilometres", "tr": "uzunluk (kilometre)"},
    "sea": {"en": "flows into the sea", "tr": "döküldüğü deniz"},
    "animal_kind": {"en": "kind of animal", "tr": "hayvan türü"},
    "animal_colour": {"en": "colour", "tr": "renk"},
    "habitat": {"en": "river where it lives", "tr": "yaşadığı nehir"},
    "diet": {"en": "food", "tr": "besin"},
    "device_kind": {"en": "kind of device", "tr": "alet türü"},
    "inventor": {"en": "inventor", "tr": "mucit"},
    "invented_year": {"en": "year of invention", "tr": "icat yılı"},
    "origin": {"en": "home town", "tr": "geldiği kasaba"},
    "ingredient": {"en": "main ingredient", "tr": "ana malzeme"},
    "taste": {"en": "taste", "tr": "tat"},
}

_PROPER_KINDS = {"person", "town", "river", "invention"}


def display(name: str, kind: str, lang: str) -> str:
    """How an entity's name is written in running text ("the Durna River", "Durna Nehri")."""
    if kind == "river":
        return f"the {name} River" if lang == "en" else f"{name} Nehri"
    if lang == "en" and kind in ("animal", "invention"):
        return f"the {name}"
    return name


def name_forms(prefix: str, text: str, kind: str, lang: str, extra: str = "") -> dict[str, str]:
    """All the forms of one slot that a template may ask for (`text` as `display` writes it)."""
    forms = {prefix: text, f"{prefix}_x": extra}
    if lang == "en":
        forms[f"{prefix}_poss"] = f"{text}'s"
        forms[f"{prefix}_a"] = ("an " if text[:1].lower() in "aeiou" else "a ") + text
        return forms
    proper = kind in _PROPER_KINDS
    possessive = kind == "river"  # "Durna Nehri" already ends in a possessive suffix
    for case in ("gen", "acc", "loc", "abl", "ins", "cop"):
        forms[f"{prefix}_{case}"] = turkish.inflect(text, case, proper, possessive)
    return forms


def _render(template: str, fact: Fact, lang: str) -> str:
    object_kind = OBJECT_KIND.get(fact.relation, "value")
    obj = fact.answer(lang)
    extra = ""
    if fact.relation in lexicon.VOCABULARY:
        extra = lexicon.word(fact.relation, fact.object).tr_extra
    if object_kind == "river":
        obj_text = fact.object  # templates spell out "the {O} River" / "{O} Nehri" themselves
    else:
        obj_text = display(obj, object_kind, lang)
    forms = name_forms("S", display(fact.subject, fact.subject_kind, lang), fact.subject_kind, lang)
    forms |= name_forms("O", obj_text, object_kind, lang, extra)
    return turkish.capitalize(template.format(**forms), lang)


def n_sentence_variants(relation: str, lang: str) -> int:
    return len(SENTENCES[relation][lang])


def n_question_variants(relation: str, lang: str) -> int:
    return len(QUESTIONS[relation][lang])


def fact_sentence(fact: Fact, lang: str, variant: int = 0) -> str:
    """A sentence stating `fact` in `lang`; `variant` picks the phrasing (modulo their number)."""
    options = SENTENCES[fact.relation][lang]
    return _render(options[variant % len(options)], fact, lang)


def fact_question(fact: Fact, lang: str, variant: int = 0) -> str:
    """A question in `lang` whose exact answer is `fact.answer(lang)`."""
    options = QUESTIONS[fact.relation][lang]
    return _render(options[variant % len(options)], fact, lang)
