"""The invented world's atoms: entities and the facts about them (a leaf module: the world,
its templates and every generator import these, and these import nothing of the corpus)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entity:
    """A named thing of the world; `gender` ("f"/"m") only for people, for English pronouns."""

    id: str
    kind: str
    name: str
    gender: str = ""


@dataclass(frozen=True)
class Fact:
    """One true statement: `subject` `relation` `object`, with its answer in each language.

    `object` is the English answer, `object_tr` the Turkish one (the same string for names and
    numbers); `object_id` names the object entity when the object is one (a town, a person...).
    """

    id: str
    subject_id: str
    subject: str
    subject_kind: str
    relation: str
    object: str
    object_tr: str
    object_id: str = ""

    def answer(self, lang: str) -> str:
        """The exact short answer to a question about this fact in `lang`."""
        return self.object_tr if lang == "tr" else self.object
