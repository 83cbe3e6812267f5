"""Versioned prompt templates: `prompts/<name>.txt`, rendered with string.Template.

The prompt *version* that enters the elicitor fingerprint is a hash of the template
text, so editing a prompt file re-elicits every row, while renaming nothing else does.
string.Template (``${name}``) is used instead of str.format because the template asks
for JSON, whose braces would otherwise need escaping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from string import Template

from ual_dagster.config import paths
from ual_dagster.config.paths import template_path
from ual_dagster.fingerprint import stable_hash

# What a model is expected to write before the score; hf_local appends it to the
# assistant turn so that the very next token is the score.
ANSWER_PREFIX = '{"uncertainty": '

_SECTION = re.compile(r"^### (Instruction|Input|Example response|Answer format)\n", re.MULTILINE)


@lru_cache(maxsize=16)
def load_template(name: str) -> str:
    path = template_path(name)
    if not path.is_file():
        available = sorted(p.stem for p in paths.PROMPTS_DIR.glob("*.txt"))
        raise FileNotFoundError(f"prompt template {name!r} not found at {path}; available: {available}")
    return path.read_text(encoding="utf-8")


def prompt_version(name: str) -> str:
    """Hash of the template text (8 hex digits): part of the elicitor fingerprint."""
    return stable_hash(load_template(name), length=8)


def render_prompt(name: str, instruction: str, input_text: str, output: str, scale_max: int) -> str:
    return Template(load_template(name)).substitute(
        instruction=instruction,
        input=input_text or "(none)",
        output=output,
        scale_max=scale_max,
        scale_low=max(1, round(scale_max * 0.3)),
        scale_mid=round(scale_max * 0.6),
    )


@dataclass(frozen=True)
class TaskText:
    instruction: str
    input: str
    output: str
    scale_max: int


def extract_task(prompt: str) -> TaskText:
    """Read the task back out of a rendered prompt (used by the bundled heuristic server).

    Relies on the section headers of the v1 template; raises ValueError if they are missing.
    """
    parts = _SECTION.split(prompt)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if "Instruction" not in sections:
        raise ValueError("prompt has no '### Instruction' section")
    scale = re.search(r"integer from 0 to (\d+)", sections.get("Answer format", ""))
    input_text = sections.get("Input", "")
    return TaskText(
        instruction=sections["Instruction"],
        input="" if input_text == "(none)" else input_text,
        output=sections.get("Example response", ""),
        scale_max=int(scale.group(1)) if scale else 10,
    )
