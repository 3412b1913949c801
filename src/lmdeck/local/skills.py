"""The demo model's skills: synthetic instruction data whose answers can be checked.

Each skill makes ``Example`` objects (a user prompt, the expected answer) from a seeded
``random.Random`` and says whether a generated answer is right. Every example belongs
either to the training split or to the held-out split, decided by a stable hash of its
*content* (operands, word, fact and phrasing), so the evaluation never scores an item
the model was trained on::

    rng = random.Random(0)
    ex = SKILLS["add"].sample(rng, split="heldout")
    ex.prompt, ex.answer        # ('What is 48 + 27?', '8+7=15, 4+2+1=7, so 75')
    SKILLS["add"].check(ex, "75")   # True: the last number is what counts

Arithmetic and letter counting are answered with their working (column by column, a
running count), which a model this small can learn in minutes where the bare answer
would take it far longer.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "heldout"]

#: Country → capital: the facts the demo model knows.
CAPITALS: dict[str, str] = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Greece": "Athens",
    "Ireland": "Dublin",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Japan": "Tokyo",
    "China": "Beijing",
    "India": "New Delhi",
    "Canada": "Ottawa",
    "Mexico": "Mexico City",
    "Peru": "Lima",
    "Chile": "Santiago",
    "Brazil": "Brasilia",
    "Australia": "Canberra",
    "Russia": "Moscow",
    "Turkey": "Ankara",
    "Iran": "Tehran",
    "Cuba": "Havana",
    "Belgium": "Brussels",
    "Hungary": "Budapest",
}

NAMES: tuple[str, ...] = (
    "Ana",
    "Ben",
    "Carla",
    "Dev",
    "Elif",
    "Femi",
    "Gus",
    "Hana",
    "Ivan",
    "Jun",
    "Kai",
    "Lena",
    "Mia",
    "Nils",
    "Omar",
    "Pia",
    "Quinn",
    "Raj",
    "Sara",
    "Tom",
    "Uma",
    "Vera",
    "Wei",
    "Yara",
    "Zoe",
)
CITIES: tuple[str, ...] = (
    "Oslo",
    "Lima",
    "Rome",
    "Kyiv",
    "Doha",
    "Riga",
    "Bern",
    "Baku",
    "Pune",
    "Nice",
    "Lyon",
    "Bonn",
    "Cork",
    "Kobe",
    "Fez",
)


@dataclass(frozen=True)
class Example:
    """One instruction and the answer the model should give."""

    skill: str
    prompt: str
    answer: str
    key: str


def _bucket(key: str, heldout_share: float) -> Split:
    digest = hashlib.sha256(key.encode()).digest()
    return "heldout" if int.from_bytes(digest[:4], "big") / 2**32 < heldout_share else "train"


def _exact(example: Example, output: str) -> bool:
    return output.strip() == example.answer


def _final_number(example: Example, output: str) -> bool:
    """Right when the last number in the output is the expected one (the working before it is free)."""
    numbers = re.findall(r"-?\d+", output)
    return bool(numbers) and numbers[-1] == example.answer.rsplit(" ", 1)[-1]


def _json_equal(example: Example, output: str) -> bool:
    try:
        return bool(json.loads(output.strip()) == json.loads(example.answer))
    except ValueError:
        return False


@dataclass(frozen=True)
class Skill:
    """A family of examples: ``make(rng)`` draws one; the split is decided by its key."""

    name: str
    make: Callable[[random.Random], Example]
    check_answer: Callable[[Example, str], bool] = _exact
    heldout_share: float = 0.2

    def sample(self, rng: random.Random, split: Split) -> Example:
        while True:
            example = self.make(rng)
            if _bucket(example.key, self.heldout_share) == split:
                return example

    def check(self, example: Example, output: str) -> bool:
        return self.check_answer(example, output)


def _word(rng: random.Random, low: int = 3, high: int = 7) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(low, high)))


ADD_FORMS = ("What is {a} + {b}?", "What is {a}+{b}?", "{a} + {b} =", "{a}+{b}=", "Add {a} and {b}.")
SUB_FORMS = ("What is {a} - {b}?", "What is {a}-{b}?", "{a} - {b} =", "{a}-{b}=", "Subtract {b} from {a}.")


def worked_sum(a: int, b: int) -> str:
    """Column addition, units first: ``worked_sum(78, 7) == "8+7=15, 7+0+1=8, so 85"``."""
    units = a % 10 + b % 10
    tens = a // 10 + b // 10 + units // 10
    return f"{a % 10}+{b % 10}={units}, {a // 10}+{b // 10}+{units // 10}={tens}, so {a + b}"


def worked_difference(a: int, b: int) -> str:
    """Column subtraction with borrowing: ``worked_difference(85, 29) == "15-9=6, 8-2-1=5, so 56"``."""
    borrow = int(a % 10 < b % 10)
    top = a % 10 + 10 * borrow
    tens = a // 10 - b // 10 - borrow
    return f"{top}-{b % 10}={top - b % 10}, {a // 10}-{b // 10}-{borrow}={tens}, so {a - b}"


def _add(rng: random.Random) -> Example:
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    form = rng.choice(ADD_FORMS)
    return Example("add", form.format(a=a, b=b), worked_sum(a, b), f"add:{a}:{b}")


def _sub(rng: random.Random) -> Example:
    a = rng.randint(0, 99)
    b = rng.randint(0, a)
    form = rng.choice(SUB_FORMS)
    return Example("sub", form.format(a=a, b=b), worked_difference(a, b), f"sub:{a}:{b}")


def _reverse(rng: random.Random) -> Example:
    word = _word(rng)
    form = rng.choice(("Reverse: {w}", "Reverse the word {w}.", "Spell {w} backwards."))
    return Example("reverse", form.format(w=word), word[::-1], f"reverse:{word}")


def _upper(rng: random.Random) -> Example:
    word = _word(rng)
    form = rng.choice(("Uppercase: {w}", "Write {w} in capitals.", "Make {w} upper case."))
    return Example("upper", form.format(w=word), word.upper(), f"upper:{word}")


def running_count(word: str, letter: str) -> str:
    """Each letter against the one asked about, with the count so far.

    ``running_count("ixux", "u") == "i/u=0 x/u=0 u/u=1 x/u=1, so 1"``: every step puts the two
    letters to compare side by side, which is what makes the count learnable by a small model.
    """
    seen, steps = 0, []
    for c in word:
        seen += c == letter
        steps.append(f"{c}/{letter}={seen}")
    return f"{' '.join(steps)}, so {seen}"


def _count(rng: random.Random) -> Example:
    word = _word(rng, 4, 9)
    letter = rng.choice(word) if rng.random() < 0.8 else rng.choice(string.ascii_lowercase)
    form = rng.choice(("How many '{c}' in {w}?", "Count the letter {c} in {w}."))
    return Example("count", form.format(c=letter, w=word), running_count(word, letter), f"count:{letter}:{word}")


CAPITAL_FORMS = (
    "What is the capital of {c}?",
    "Capital of {c}?",
    "Name the capital city of {c}.",
    "Which city is the capital of {c}?",
)


def _capital(rng: random.Random) -> Example:
    country = rng.choice(sorted(CAPITALS))
    index = rng.randrange(len(CAPITAL_FORMS))
    prompt = CAPITAL_FORMS[index].format(c=country)
    # The key holds the phrasing: every fact is trained on, a few phrasings of it are held out.
    return Example("capital", prompt, CAPITALS[country], f"capital:{country}:{index}")


EXTRACT_FORMS = (
    "Extract JSON: {n} is {a} and lives in {c}.",
    "Extract JSON: {n}, age {a}, from {c}.",
    "To JSON: {n} ({a}) lives in {c}.",
)


def _extract(rng: random.Random) -> Example:
    name, age, city = rng.choice(NAMES), rng.randint(18, 90), rng.choice(CITIES)
    form = rng.choice(EXTRACT_FORMS)
    answer = json.dumps({"name": name, "age": age, "city": city})
    return Example("extract", form.format(n=name, a=age, c=city), answer, f"extract:{name}:{age}:{city}")


SKILLS: dict[str, Skill] = {
    s.name: s
    for s in (
        Skill("add", _add, check_answer=_final_number),
        Skill("sub", _sub, check_answer=_final_number),
        Skill("reverse", _reverse, heldout_share=0.1),
        Skill("upper", _upper, heldout_share=0.1),
        Skill("count", _count, check_answer=_final_number, heldout_share=0.1),
        Skill("capital", _capital, heldout_share=0.25),
        Skill("extract", _extract, check_answer=_json_equal),
    )
}

#: How often each skill is drawn for training: the hard ones get more.
TRAINING_MIX: dict[str, float] = {
    "add": 0.16,
    "sub": 0.15,
    "reverse": 0.14,
    "upper": 0.09,
    "count": 0.2,
    "capital": 0.16,
    "extract": 0.1,
}


def training_examples(seed: int) -> Callable[[], Example]:
    """An endless, reproducible stream of training examples drawn by ``TRAINING_MIX``."""
    rng = random.Random(seed)
    names = list(TRAINING_MIX)
    weights = [TRAINING_MIX[n] for n in names]

    def draw() -> Example:
        return SKILLS[rng.choices(names, weights)[0]].sample(rng, "train")

    return draw


def heldout_set(skill: str, size: int, seed: int = 1234) -> list[Example]:
    """``size`` distinct held-out examples of one skill (fewer if the skill has fewer)."""
    rng = random.Random(f"{seed}:{skill}")
    seen: dict[str, Example] = {}
    for _ in range(size * 50):
        example = SKILLS[skill].sample(rng, "heldout")
        seen.setdefault(example.key, example)
        if len(seen) >= size:
            break
    return list(seen.values())
