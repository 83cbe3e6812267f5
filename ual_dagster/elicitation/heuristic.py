"""heuristic-v1: a transparent, text-only estimate of how open-ended a task is.

It is the "model" behind the bundled loopback server of the tiny profile, so the
pipeline's elicitation runs through a real OpenAI client and HTTP without any network.
It knows nothing about the testbed's families; it reads generic cues from the task:

- open cues (+): imperative verbs that invite free production (write, describe, suggest,
  give, name, list, brainstorm, create, compose, imagine, recommend, ...), indefinite
  requests ("a", "an", "any", "some", "one of", "an example"), creative nouns (story,
  poem, idea, tips, ways, slogan).
  A loose constraint on an indefinite request ("a number between", "a colour other than")
  still leaves many answers (+).
- closed cues (-): computation and transformation verbs (calculate, compute, solve, sort,
  reverse, count, convert, spell, evaluate, translate, "in capitals"), wh-questions and
  "what is" / "how many" / "comes after", material to operate on (an input, or text after
  a colon), arithmetic expressions, digit-heavy text, "only" / "exactly" / "the answer".
- answer form: a short or numeric example response, or a worked solution ending in a
  number ("#### 42", "the answer is 7"), suggests one right answer; a long,
  multi-sentence or multi-line one suggests many.

estimate = clip(scale_mid + sum of weighted cues, 0, scale_max); the answer distribution
over integer scores is a discretised Gaussian around the estimate (sd 1.5 points of 10),
which is what the server reports as top_logprobs and samples from at temperature > 0.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ual_dagster.elicitation.prompt import TaskText

OPEN_VERBS = (
    "write",
    "describe",
    "suggest",
    "give",
    "name",
    "list",
    "brainstorm",
    "create",
    "compose",
    "generate",
    "propose",
    "imagine",
    "invent",
    "recommend",
    "design",
    "share",
    "tell",
    "come up with",
    "think of",
    "provide",
    "explain",
    "discuss",
    "plan",
)
OPEN_NOUNS = (
    "story",
    "poem",
    "idea",
    "ideas",
    "tips",
    "ways",
    "slogan",
    "example",
    "examples",
    "essay",
    "title",
    "names",
)
INDEFINITE = re.compile(r"\b(an?|any|some|one of|several|few)\b")
CLOSED_VERBS = (
    "calculate",
    "compute",
    "solve",
    "sort",
    "reverse",
    "count",
    "convert",
    "spell",
    "evaluate",
    "simplify",
    "add",
    "subtract",
    "multiply",
    "divide",
    "round",
    "alphabetize",
    "order",
    "find the",
)
CLOSED_QUESTIONS = re.compile(
    r"^(what|which|who|when|where)\b|\b(what is|what's|how many|how much|which is|comes (after|before|next)|is it true|true or false)\b"
)
TRANSFORMATION = re.compile(
    r"\b(in (capitals|capital letters|uppercase|lowercase)|translate|rewrite|paraphrase|backwards)\b"
)
GIVEN_MATERIAL = re.compile(r":\s*\S")
OPEN_CONSTRAINT = re.compile(
    r"\b(other than|between|below|above|less than|greater than|more than|multiple of|such as|for example)\b"
)
ONLY_ONE = re.compile(r"\b(only|exactly|the answer|single|correct)\b")
ARITHMETIC = re.compile(r"\d+\s*[-+*/×x÷^]\s*\d+")
WORD = re.compile(r"\w+")
NUMERIC_FINAL = re.compile(r"(####|answer is|=)\s*[-+$€£]?[\d.,]+\s*\.?\s*$", re.I)

ANSWER_SD_FRACTION = 0.15


@dataclass(frozen=True)
class HeuristicEstimate:
    score: float  # continuous estimate on 0..scale_max
    probabilities: list[float]  # over the integers 0..scale_max
    cues: dict[str, float]  # each cue's contribution (why the score is what it is)


def _has_word(text: str, phrase: str) -> bool:
    return re.search(r"\b" + re.escape(phrase) + r"\b", text) is not None


def estimate_open_endedness(task: TaskText) -> HeuristicEstimate:
    top = task.scale_max
    unit = top / 10.0
    instruction = task.instruction.lower()
    text = f"{instruction}\n{task.input.lower()}"
    cues: dict[str, float] = {}

    first_word = WORD.findall(instruction)[:1]
    open_verbs = sum(_has_word(instruction, v) for v in OPEN_VERBS)
    if open_verbs:
        cues["open_verbs"] = 1.5 * min(open_verbs, 2)
    if first_word and first_word[0] in OPEN_VERBS:
        cues["imperative_open_verb"] = 1.0
    if any(_has_word(text, n) for n in OPEN_NOUNS):
        cues["creative_nouns"] = 1.0
    if INDEFINITE.search(instruction):
        cues["indefinite_request"] = 1.0
        if OPEN_CONSTRAINT.search(instruction):
            cues["loose_constraint"] = 1.0

    closed_verbs = sum(_has_word(text, v) for v in CLOSED_VERBS)
    if closed_verbs:
        cues["closed_verbs"] = -2.0 * min(closed_verbs, 2)
    if CLOSED_QUESTIONS.search(text):
        cues["closed_question"] = -1.5
    if TRANSFORMATION.search(text):
        cues["transformation"] = -3.0
    if GIVEN_MATERIAL.search(instruction) or task.input.strip():
        cues["given_material"] = -1.0
    if ONLY_ONE.search(text):
        cues["only_one"] = -1.0
    if ARITHMETIC.search(text):
        cues["arithmetic"] = -2.0
    chars = [c for c in text if not c.isspace()]
    digit_share = sum(c.isdigit() for c in chars) / max(1, len(chars))
    if digit_share > 0.1:
        cues["digit_heavy"] = -1.5

    output = task.output.strip()
    words = len(WORD.findall(output))
    if output and re.fullmatch(r"[-+$€£]?[\d.,/\s%]+", output):
        cues["numeric_answer"] = -2.0
    elif NUMERIC_FINAL.search(output):
        cues["worked_to_a_number"] = -2.5
    elif words <= 3:
        cues["short_answer"] = -0.5
    elif words > 25 or output.count("\n") >= 2:
        cues["long_answer"] = 1.5

    score = min(float(top), max(0.0, 0.5 * top + unit * sum(cues.values())))
    sd = max(0.5, ANSWER_SD_FRACTION * top)
    weights = [math.exp(-((s - score) ** 2) / (2 * sd * sd)) for s in range(top + 1)]
    total = sum(weights)
    return HeuristicEstimate(score=score, probabilities=[w / total for w in weights], cues=cues)
