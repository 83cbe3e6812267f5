"""Turn model answers into an uncertainty u in [0, 1].

Three readings, one per elicitation method:
- verbalized: the score the model wrote, on the 0..scale_max scale the prompt defines,
  found leniently: JSON ({"uncertainty": 7}), "Uncertainty: 7/10", "7 out of 10",
  "70%", or a bare number. An explicit denominator (/10, /100, %) wins over scale_max.
- logprobs: the expected score under the model's distribution over score tokens at the
  score position (top_logprobs), renormalised over the tokens that are scores.
- consistency: the dispersion of k verbalized scores sampled at temperature > 0.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

_NUMBER = r"(\d+(?:\.\d+)?)"
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_KEYED = re.compile(
    r"(?:uncertainty|score|rating)[\s\"'*]*[:=]?[\s\"'*]*" + _NUMBER + r"(?:\s*(?:/|out of)\s*(\d+))?", re.I
)
_FRACTION = re.compile(_NUMBER + r"\s*(?:/|out of)\s*(\d+)", re.I)
_PERCENT = re.compile(_NUMBER + r"\s*%")
_BARE = re.compile(r"^\s*\**\s*" + _NUMBER + r"\s*\**\s*\.?\s*$")


def _to_unit(value: float, top: float) -> float | None:
    if top <= 0 or not (0.0 <= value <= top):
        return None
    return value / top


def _from_json(text: str, scale_max: int) -> float | None:
    for match in _JSON_OBJECT.finditer(text):
        try:
            obj = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        for key, value in obj.items():
            if any(word in key.lower() for word in ("uncertain", "score", "rating")):
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                return _to_unit(number, scale_max)
    return None


def parse_verbalized(text: str | None, scale_max: int) -> float | None:
    """u in [0, 1] from a written answer, or None if no in-range score is found."""
    if not text:
        return None
    found = _from_json(text, scale_max)
    if found is not None:
        return found
    keyed = _KEYED.search(text)
    if keyed:
        top = float(keyed.group(2)) if keyed.group(2) else scale_max
        return _to_unit(float(keyed.group(1)), top)
    fraction = _FRACTION.search(text)
    if fraction:
        return _to_unit(float(fraction.group(1)), float(fraction.group(2)))
    percent = _PERCENT.search(text)
    if percent:
        return _to_unit(float(percent.group(1)), 100.0)
    bare = _BARE.match(text)
    if bare:
        return _to_unit(float(bare.group(1)), scale_max)
    return None


def score_of_token(token: str, scale_max: int) -> int | None:
    """The integer score a single token spells (' 7', '7', '10'), or None."""
    stripped = token.strip()
    if stripped.isdigit() and len(stripped) <= 3 and int(stripped) <= scale_max:
        return int(stripped)
    return None


def expected_score(candidates: Iterable[tuple[str, float]], scale_max: int) -> float | None:
    """E[score] / scale_max over (token, logprob) candidates that spell a score.

    Probability mass on non-score tokens is dropped and the rest renormalised. With
    scale_max >= 10, tokenizers that split "10" into "1" + "0" count that mass as 1:
    use scale_max 9 with logprobs on such models.
    """
    mass: dict[int, float] = {}
    for token, logprob in candidates:
        score = score_of_token(token, scale_max)
        if score is not None:
            mass[score] = mass.get(score, 0.0) + math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        return None
    return sum(score * p for score, p in mass.items()) / total / scale_max


def dispersion(scores: Sequence[float], statistic: str, scale_max: int) -> float:
    """Uncertainty from the spread of k scores in [0, 1].

    std: population standard deviation / 0.5 (the largest possible on [0, 1]).
    entropy: Shannon entropy of the scores' histogram over the integer scale, divided by
    log(min(k, scale_max + 1)), the largest entropy k samples can have.
    """
    if len(scores) < 2:
        raise ValueError("dispersion needs at least two scores")
    if statistic == "std":
        mean = sum(scores) / len(scores)
        var = sum((s - mean) ** 2 for s in scores) / len(scores)
        return min(1.0, math.sqrt(var) / 0.5)
    if statistic == "entropy":
        counts = Counter(round(s * scale_max) for s in scores)
        n = len(scores)
        entropy = -sum(c / n * math.log(c / n) for c in counts.values())
        return min(1.0, entropy / math.log(min(n, scale_max + 1)))
    raise ValueError(f"unknown dispersion statistic {statistic!r}; allowed: std, entropy")
