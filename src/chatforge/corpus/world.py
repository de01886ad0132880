"""The invented world: entities with attributes, stated as (subject, relation, object) facts.

`World.build(seed, cfg)` is the single source of truth that every generated text, conversation
and evaluation item is rendered from, so the ground truth of any question is one lookup away.
Values come from small closed sets (see `lexicon`) and numbers are round, so that a small model
can learn the facts in minutes. Same seed and config -> the same world, on any machine.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from chatforge.config import CorpusConfig
from chatforge.corpus import lexicon
from chatforge.corpus.facts import Entity, Fact
from chatforge.corpus.templates import (
    fact_question,
    fact_sentence,
    n_question_variants,
    n_sentence_variants,
)
from chatforge.errors import ConfigError

__all__ = [
    "Entity", "Fact", "World", "fact_question", "fact_sentence", "n_question_variants",
    "n_sentence_variants", "ENTITY_KINDS", "RELATIONS",
]

ENTITY_KINDS = ("person", "town", "river", "animal", "invention", "food")

# Relations of each kind of entity, in the order facts are listed.
RELATIONS: dict[str, tuple[str, ...]] = {
    "person": ("birthplace", "profession", "birth_year", "colour", "dish"),
    "town": ("river", "population", "founded", "region"),
    "river": ("length", "sea"),
    "animal": ("animal_kind", "animal_colour", "habitat", "diet"),
    "invention": ("device_kind", "inventor", "invented_year"),
    "food": ("origin", "ingredient", "taste"),
}

# Plausible diets per kind of animal, so that stories never feed grass to a snake.
_DIETS = {
    "bird": ("seeds", "insects", "fruit", "worms"), "fish": ("insects", "worms", "leaves"),
    "lizard": ("insects", "worms", "fruit"), "beetle": ("leaves", "grass", "fruit"),
    "deer": ("grass", "leaves", "fruit"), "frog": ("insects", "worms"),
    "snake": ("fish", "insects", "worms"), "butterfly": ("fruit", "leaves"),
}


@dataclass
class World:
    """Entities and facts of one seeded world, plus the names that are not entities."""

    seed: int
    country: str
    seas: list[str]
    entities: list[Entity]
    facts: list[Fact]

    @classmethod
    def build(cls, seed: int, cfg: CorpusConfig) -> World:
        """Invent a world of `cfg`'s size; deterministic in `seed`."""
        return _Builder(seed, cfg).build()

    def entity(self, entity_id: str) -> Entity:
        return self._entities_by_id[entity_id]

    def of_kind(self, kind: str) -> list[Entity]:
        return [e for e in self.entities if e.kind == kind]

    def facts_about(self, entity_id: str) -> list[Fact]:
        """Facts whose subject is the entity, in relation order."""
        return [f for f in self.facts if f.subject_id == entity_id]

    def facts_mentioning(self, entity_id: str) -> list[Fact]:
        """Facts whose object is the entity (people born in a town, towns on a river...)."""
        return [f for f in self.facts if f.object_id == entity_id]

    def fact(self, fact_id: str) -> Fact:
        return self._facts_by_id[fact_id]

    def value(self, entity_id: str, relation: str) -> Fact:
        return self.fact(f"{entity_id}.{relation}")

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "country": self.country,
            "seas": self.seas,
            "entities": [asdict(e) for e in self.entities],
            "facts": [asdict(f) for f in self.facts],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> World:
        return cls(
            seed=obj["seed"], country=obj["country"], seas=list(obj["seas"]),
            entities=[Entity(**e) for e in obj["entities"]],
            facts=[Fact(**f) for f in obj["facts"]],
        )

    @cached_property
    def _entities_by_id(self) -> dict[str, Entity]:
        return {e.id: e for e in self.entities}

    @cached_property
    def _facts_by_id(self) -> dict[str, Fact]:
        return {f.id: f for f in self.facts}


class _Builder:
    """Draws entities, then their attributes, from one seeded random stream."""

    def __init__(self, seed: int, cfg: CorpusConfig):
        self.rng = random.Random(f"chatforge-world-{seed}")
        self.seed = seed
        self.cfg = cfg
        self.facts: list[Fact] = []
        self.taken: set[str] = set()

    def build(self) -> World:
        cfg, rng = self.cfg, self.rng
        for key in ("n_people", "n_towns", "n_rivers", "n_animals", "n_inventions", "n_foods"):
            if getattr(cfg, key) < 1:
                raise ConfigError(f"corpus.{key}={getattr(cfg, key)}: must be at least 1")
        people = self._people(cfg.n_people)
        self.taken |= {part.lower() for p in people for part in p.name.split()}
        country = self._name(3).capitalize()
        seas = [self._name(2).capitalize() for _ in range(3)]
        rivers = [Entity(f"river-{i:03d}", "river", self._name(2).capitalize())
                  for i in range(cfg.n_rivers)]
        towns = [Entity(f"town-{i:03d}", "town", self._name(rng.choice((2, 3))).capitalize())
                 for i in range(cfg.n_towns)]
        foods = [Entity(f"food-{i:03d}", "food", self._name(rng.choice((2, 3))))
                 for i in range(cfg.n_foods)]
        animals = [Entity(f"animal-{i:03d}", "animal", self._name(2))
                   for i in range(cfg.n_animals)]
        inventions = [Entity(f"invention-{i:03d}", "invention", self._name(3).capitalize())
                      for i in range(cfg.n_inventions)]

        # Spread entity-valued attributes so every town has a river, people, and food.
        river_of_town = self._spread(rivers, len(towns))
        for town, river in zip(towns, river_of_town, strict=True):
            self._add(town, "river", river)
            self._add(town, "population", str(rng.randrange(2, 96) * 1000))
            self._add(town, "founded", str(rng.randrange(1100, 1850)))
            self._add(town, "region", rng.choice(lexicon.REGIONS))
        for river in rivers:
            self._add(river, "length", str(rng.randrange(4, 90) * 10))
            self._add(river, "sea", rng.choice(seas))
        for animal, river in zip(animals, self._spread(rivers, len(animals)), strict=True):
            kind = rng.choice(lexicon.ANIMAL_KINDS)
            self._add(animal, "animal_kind", kind)
            self._add(animal, "animal_colour", rng.choice(lexicon.COLOURS))
            self._add(animal, "habitat", river)
            self._add(animal, "diet", lexicon.word("diet", rng.choice(_DIETS[kind.en])))
        for food, town in zip(foods, self._spread(towns, len(foods)), strict=True):
            self._add(food, "origin", town)
            self._add(food, "ingredient", rng.choice(lexicon.INGREDIENTS))
            self._add(food, "taste", rng.choice(lexicon.TASTES))
        birth_year: dict[str, int] = {}
        homes = self._spread(towns, len(people))
        dishes = self._spread(foods, len(people))
        for person, town, dish in zip(people, homes, dishes, strict=True):
            birth_year[person.id] = rng.randrange(1800, 1930)
            self._add(person, "birthplace", town)
            self._add(person, "profession", rng.choice(lexicon.PROFESSIONS))
            self._add(person, "birth_year", str(birth_year[person.id]))
            self._add(person, "colour", rng.choice(lexicon.COLOURS))
            self._add(person, "dish", dish)
        inventors = self._spread(people, len(inventions))
        for invention, inventor in zip(inventions, inventors, strict=True):
            self._add(invention, "device_kind", rng.choice(lexicon.DEVICE_KINDS))
            self._add(invention, "inventor", inventor)
            self._add(invention, "invented_year", str(birth_year[inventor.id] + rng.randrange(22, 60)))

        entities = people + towns + rivers + animals + inventions + foods
        order = {e.id: i for i, e in enumerate(entities)}
        facts = sorted(self.facts, key=lambda f: (
            order[f.subject_id], RELATIONS[f.subject_kind].index(f.relation)))
        return World(self.seed, country, seas, entities, facts)

    def _people(self, n: int) -> list[Entity]:
        rng = self.rng
        firsts = [(n_, "f") for n_ in lexicon.FIRST_NAMES_F] + [
            (n_, "m") for n_ in lexicon.FIRST_NAMES_M]
        rng.shuffle(firsts)
        surnames = list(lexicon.SURNAMES)
        rng.shuffle(surnames)
        people, seen = [], set()
        i = 0
        # Distinct first names and surnames while the lists last, then fresh combinations.
        while len(people) < n:
            first, gender = firsts[i % len(firsts)]
            surname = surnames[(i + i // len(surnames)) % len(surnames)]
            i += 1
            name = f"{first} {surname}"
            if name in seen:
                continue
            seen.add(name)
            people.append(Entity(f"person-{len(people):03d}", "person", name, gender))
        return people

    def _name(self, syllables: int) -> str:
        return lexicon.invent_name(self.rng, syllables, self.taken)

    def _spread(self, pool: list[Any], n: int) -> list[Any]:
        """n picks from `pool` covering every item before repeating, in random order."""
        picks = [pool[i % len(pool)] for i in range(n)]
        self.rng.shuffle(picks)
        return picks

    def _add(self, subject: Entity, relation: str, obj: Entity | lexicon.Word | str) -> None:
        if isinstance(obj, Entity):
            en, tr, object_id = obj.name, obj.name, obj.id
        elif isinstance(obj, lexicon.Word):
            en, tr, object_id = obj.en, obj.tr, ""
        else:
            en, tr, object_id = obj, obj, ""
        self.facts.append(Fact(
            f"{subject.id}.{relation}", subject.id, subject.name, subject.kind, relation,
            en, tr, object_id))
