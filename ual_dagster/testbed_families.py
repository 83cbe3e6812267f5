"""The testbed's task families and how many samples each can give.

The task space of the generated testbed (ual_dagster/data/testbed.py explains it): each
family enumerates its instances, a one-line instruction and its set of valid answers.
This module imports nothing from the project, so the profile's config validator can ask
whether the families it names can supply the samples it wants (ual_dagster/config/data.py)
without the config layer importing data code.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal, Protocol


class FamilySelection(Protocol):
    """What select_families reads of a testbed config (config.data.TestbedConfig has it)."""

    kind: str
    families: list[str] | None


K_MAX = 100
FamilyKind = Literal["single_answer", "many_answers"]


def intrinsic_uncertainty(k: int) -> float:
    """Normalised entropy of k equally valid answers."""
    return min(1.0, max(0.0, math.log(k) / math.log(K_MAX))) if k > 1 else 0.0


@dataclass(frozen=True)
class Instance:
    instruction: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Family:
    name: str
    kind: FamilyKind
    make: Callable[[], list[Instance]]

    def instances(self) -> list[Instance]:
        return _instances(self.name)


# -- the tables and words the families draw on (fixed: they define the task space) ----

_CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Greece": "Athens",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Ireland": "Dublin",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Japan": "Tokyo",
    "China": "Beijing",
    "India": "Delhi",
    "Russia": "Moscow",
    "Peru": "Lima",
    "Chile": "Santiago",
    "Cuba": "Havana",
    "Canada": "Ottawa",
    "Mexico": "Mexico City",
    "Brazil": "Brasilia",
    "Argentina": "Buenos Aires",
    "Australia": "Canberra",
    "Turkey": "Ankara",
    "Iran": "Tehran",
    "Thailand": "Bangkok",
    "Vietnam": "Hanoi",
    "Hungary": "Budapest",
    "Belgium": "Brussels",
}
_CATEGORIES = {
    "fruit": [
        "apple",
        "banana",
        "cherry",
        "grape",
        "lemon",
        "mango",
        "orange",
        "peach",
        "pear",
        "plum",
        "kiwi",
        "lime",
        "melon",
        "fig",
        "apricot",
        "papaya",
    ],
    "colour": ["red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "black", "white", "grey"],
    "animal": [
        "cat",
        "dog",
        "horse",
        "cow",
        "sheep",
        "goat",
        "lion",
        "tiger",
        "bear",
        "wolf",
        "fox",
        "rabbit",
        "mouse",
        "deer",
        "zebra",
        "camel",
        "monkey",
        "elephant",
    ],
    "country": sorted(_CAPITALS),
    "vegetable": [
        "carrot",
        "potato",
        "onion",
        "pea",
        "bean",
        "cabbage",
        "spinach",
        "leek",
        "corn",
        "pepper",
        "radish",
        "turnip",
    ],
    "sport": [
        "football",
        "tennis",
        "golf",
        "rugby",
        "cricket",
        "hockey",
        "boxing",
        "rowing",
        "cycling",
        "swimming",
        "skiing",
        "baseball",
    ],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "month": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "planet": ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"],
    "metal": ["iron", "copper", "gold", "silver", "tin", "lead", "zinc", "nickel"],
}
_LETTERS = string.ascii_lowercase


def _words(lengths: range, per_length: int) -> list[str]:
    """Pronounceable pseudo-words (consonant-vowel alternation), a fixed list."""
    rng = random.Random("testbed-words")  # constant: the word list is part of the task definition
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    words: list[str] = []
    for length in lengths:
        seen: set[str] = set()
        while len(seen) < per_length:
            seen.add("".join(rng.choice(consonants if i % 2 == 0 else vowels) for i in range(length)))
        words.extend(sorted(seen))
    return words


def _article(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


# -- single-answer families -------------------------------------------------------------


def _add() -> list[Instance]:
    return [Instance(f"What is {a} + {b}?", (str(a + b),)) for a in range(21) for b in range(21)]


def _subtract() -> list[Instance]:
    return [Instance(f"What is {a} - {b}?", (str(a - b),)) for a in range(21) for b in range(a + 1)]


def _next_number() -> list[Instance]:
    return [Instance(f"What number comes after {n}?", (str(n + 1),)) for n in range(200)]


def _next_letter() -> list[Instance]:
    return [Instance(f"What letter comes after {c}?", (_LETTERS[i + 1],)) for i, c in enumerate(_LETTERS[:-1])]


def _sort_digits() -> list[Instance]:
    return [
        Instance(f"Sort these numbers: {x} {y} {z}", (" ".join(map(str, sorted((x, y, z)))),))
        for x in range(10)
        for y in range(10)
        for z in range(10)
    ]


def _reverse_word() -> list[Instance]:
    return [Instance(f"Reverse the word: {w}", (w[::-1],)) for w in _words(range(3, 6), 150)]


def _uppercase() -> list[Instance]:
    return [Instance(f"Write in capitals: {w}", (w.upper(),)) for w in _words(range(3, 6), 150)]


def _count_letters() -> list[Instance]:
    return [Instance(f"How many letters are in {w}?", (str(len(w)),)) for w in _words(range(2, 9), 60)]


def _capital() -> list[Instance]:
    return [Instance(f"What is the capital of {country}?", (city,)) for country, city in _CAPITALS.items()]


# -- many-answer families ---------------------------------------------------------------


def _name_member() -> list[Instance]:
    """'Name a fruit.' and 'Name a fruit other than apple.': many prompts per category."""
    out = []
    for cat, members in _CATEGORIES.items():
        out.append(Instance(f"Name {_article(cat)} {cat}.", tuple(members)))
        out += [
            Instance(f"Name {_article(cat)} {cat} other than {m}.", tuple(x for x in members if x != m))
            for m in members
        ]
    return out


def _even_below() -> list[Instance]:
    return [Instance(f"Give an even number below {n}.", tuple(str(e) for e in range(0, n, 2))) for n in range(5, 121)]


def _number_between() -> list[Instance]:
    return [
        Instance(f"Give a number between {a} and {a + w}.", tuple(str(x) for x in range(a, a + w + 1)))
        for a in range(51)
        for w in range(2, 41)
    ]


def _sum_pair() -> list[Instance]:
    return [
        Instance(f"Give two numbers that add up to {n}.", tuple(f"{a} and {n - a}" for a in range(n + 1)))
        for n in range(2, 81)
    ]


def _letter_except() -> list[Instance]:
    return [Instance(f"Name a letter other than {c}.", tuple(x for x in _LETTERS if x != c)) for c in _LETTERS]


def _multiple_of() -> list[Instance]:
    return [
        Instance(f"Give a multiple of {m} below {n}.", tuple(str(x) for x in range(m, n, m)))
        for m in range(2, 10)
        for n in range(3 * m, 101)
    ]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("add", "single_answer", _add),
        Family("subtract", "single_answer", _subtract),
        Family("next_number", "single_answer", _next_number),
        Family("next_letter", "single_answer", _next_letter),
        Family("sort_digits", "single_answer", _sort_digits),
        Family("reverse_word", "single_answer", _reverse_word),
        Family("uppercase", "single_answer", _uppercase),
        Family("count_letters", "single_answer", _count_letters),
        Family("capital", "single_answer", _capital),
        Family("name_member", "many_answers", _name_member),
        Family("even_below", "many_answers", _even_below),
        Family("number_between", "many_answers", _number_between),
        Family("sum_pair", "many_answers", _sum_pair),
        Family("letter_except", "many_answers", _letter_except),
        Family("multiple_of", "many_answers", _multiple_of),
    ]
}


@cache
def _instances(name: str) -> list[Instance]:
    return FAMILIES[name].make()


def select_families(cfg: FamilySelection) -> list[Family]:
    """The families a testbed config asks for; unknown names or a kind mismatch raise."""
    if cfg.families is None:
        return [f for f in FAMILIES.values() if cfg.kind == "both" or f.kind == cfg.kind]
    unknown = sorted(set(cfg.families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"testbed families {unknown} are unknown; allowed: {sorted(FAMILIES)}")
    wrong = sorted(n for n in cfg.families if cfg.kind != "both" and FAMILIES[n].kind != cfg.kind)
    if wrong:
        raise ValueError(f"testbed families {wrong} are not of kind {cfg.kind!r}")
    return [FAMILIES[n] for n in sorted(set(cfg.families))]


# -- how many samples each family gives ---------------------------------------------------


def heldout_count(quota: int, heldout_fraction: float) -> int:
    return round(quota * heldout_fraction)


def _feasible(family: Family, quota: int, heldout_fraction: float, answers_per_prompt: int | None = None) -> bool:
    """Whether `quota` distinct samples fit even if the largest answer sets go to held-out."""
    cap = answers_per_prompt or math.inf
    sizes = sorted((min(len(i.answers), cap) for i in family.instances()), reverse=True)
    n_heldout = heldout_count(quota, heldout_fraction)
    if n_heldout >= len(sizes):
        return quota == 0
    return sum(sizes[n_heldout:]) >= quota - n_heldout


@cache
def max_samples(name: str, heldout_fraction: float, answers_per_prompt: int | None = None) -> int:
    """The most samples family `name` can give with distinct train/held-out prompts
    (and at most `answers_per_prompt` answers per train prompt, when set)."""
    family = FAMILIES[name]
    lo, hi = 0, sum(len(i.answers) for i in family.instances())
    while lo < hi:  # feasibility is monotone in the quota
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _feasible(family, mid, heldout_fraction, answers_per_prompt) else (lo, mid - 1)
    return lo


def family_quotas(
    families: list[Family], n_samples: int, heldout_fraction: float, answers_per_prompt: int | None = None
) -> dict[str, int]:
    """Equal shares, except that a family too small for its share gives all it can and the
    rest is shared among the others (water filling); integer parts by largest remainder."""
    caps = {f.name: max_samples(f.name, heldout_fraction, answers_per_prompt) for f in families}
    if sum(caps.values()) < n_samples:
        raise ValueError(
            f"the testbed families {sorted(caps)} can give at most {sum(caps.values())} distinct samples "
            f"(held-out fraction {heldout_fraction}, answers per prompt {answers_per_prompt or 'any'}); "
            f"asked for {n_samples}"
        )
    quotas: dict[str, int] = {}
    open_names = sorted(caps)
    remaining = n_samples
    while open_names:  # empty when n_samples is exactly what all families can give
        share = remaining / len(open_names)
        full = [n for n in open_names if caps[n] <= share]
        if not full:
            break
        for n in full:
            quotas[n] = caps[n]
            remaining -= caps[n]
        open_names = [n for n in open_names if n not in full]
    if not open_names:
        return quotas
    base = {n: int(remaining // len(open_names)) for n in open_names}
    extra = remaining - sum(base.values())  # < len(open_names); every open cap exceeds the share
    for i, n in enumerate(open_names):
        quotas[n] = base[n] + (1 if i < extra else 0)
    return quotas
