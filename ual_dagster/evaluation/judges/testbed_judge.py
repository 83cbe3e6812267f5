"""The deterministic testbed judge: it knows every held-out task's valid answers.

It reads the instruction and the two outputs back out of the AlpacaEval prompt
(`judge_configs/testbed_judge/prompt.txt`), prefers a valid answer over an invalid
one, and calls a draw when both are valid or both invalid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

VERDICT_A, VERDICT_B, VERDICT_DRAW = "Output (a)", "Output (b)", "Draw"

_SECTION = re.compile(r"\[(INSTRUCTION|OUTPUT_A|OUTPUT_B)\]\n(.*?)\n\[/\1\]", re.DOTALL)


def normalise_answer(text: str) -> str:
    """Case, surrounding whitespace and a trailing full stop do not change an answer."""
    return " ".join(text.strip().rstrip(".").strip().lower().split())


def parse_judge_prompt(text: str) -> tuple[str, str, str]:
    sections = {name: body for name, body in _SECTION.findall(text)}
    missing = {"INSTRUCTION", "OUTPUT_A", "OUTPUT_B"} - set(sections)
    if missing:
        raise ValueError(f"judge prompt lacks sections {sorted(missing)}")
    return sections["INSTRUCTION"], sections["OUTPUT_A"], sections["OUTPUT_B"]


class TestbedJudge:
    """verdict(instruction, a, b) from a map instruction -> valid answers."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, valid_answers: Mapping[str, Iterable[str]]):
        self.valid = {normalise_answer(k): {normalise_answer(a) for a in v} for k, v in valid_answers.items()}

    def is_valid(self, instruction: str, output: str) -> bool:
        key = normalise_answer(instruction)
        if key not in self.valid:
            raise KeyError(f"testbed judge: unknown instruction {instruction[:80]!r}")
        return normalise_answer(output) in self.valid[key]

    def verdict(self, instruction: str, output_a: str, output_b: str) -> str:
        a_ok, b_ok = self.is_valid(instruction, output_a), self.is_valid(instruction, output_b)
        if a_ok == b_ok:
            return VERDICT_DRAW
        return VERDICT_A if a_ok else VERDICT_B

    def respond(self, messages: list[dict[str, Any]]) -> str:
        """The chat-completions reply: the verdict for the last user message's prompt."""
        user = [m for m in messages if m.get("role") == "user"]
        if not user:
            raise ValueError("judge request has no user message")
        instruction, a, b = parse_judge_prompt(str(user[-1]["content"]))
        return self.verdict(instruction, a, b)
