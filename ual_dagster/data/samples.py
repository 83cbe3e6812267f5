"""A normalised instruction-tuning sample, a rejected row, and the sample id.

Normalisation (applied to instruction, input and output before hashing and storing):
  1. line endings: "\\r\\n" and lone "\\r" become "\\n";
  2. Unicode NFC (so a composed and a decomposed "é" are the same text);
  3. leading and trailing whitespace stripped.
Inner whitespace is kept: it can matter (code, poems, tables).

sample_id = stable_hash(instruction, input, output) of the normalised texts. It names
the content only (not the dataset or file position), so the same sample has the same
id wherever it is loaded from, and the elicitation cache keyed by it is shared.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

from ual_dagster.fingerprint import stable_hash

Split = Literal["train", "heldout"]
RAW_PREVIEW_CHARS = 500  # rejects keep this much of the offending text: enough to find and fix it


def normalise_text(text: str) -> str:
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()


def sample_id_for(instruction: str, input: str, output: str) -> str:
    """Content id of already-normalised texts."""
    return stable_hash(instruction, input, output)


@dataclass(frozen=True)
class Sample:
    dataset: str
    sample_id: str
    instruction: str
    input: str
    output: str
    source: str  # where it came from: "file:line", "file[index]", "file:row N", "hub_id:split:row", "testbed:..."
    split: Split = "train"
    family: str | None = None  # testbed task family
    intrinsic_uncertainty: float | None = None  # testbed: normalised entropy of the valid answers
    valid_answers: tuple[str, ...] | None = None  # testbed: every accepted answer

    @classmethod
    def create(
        cls,
        dataset: str,
        instruction: str,
        input: str,
        output: str,
        source: str,
        split: Split = "train",
        family: str | None = None,
        intrinsic_uncertainty: float | None = None,
        valid_answers: tuple[str, ...] | None = None,
    ) -> "Sample":
        """Normalise the texts and derive the sample id."""
        instruction, input, output = normalise_text(instruction), normalise_text(input), normalise_text(output)
        return cls(
            dataset=dataset,
            sample_id=sample_id_for(instruction, input, output),
            instruction=instruction,
            input=input,
            output=output,
            source=source,
            split=split,
            family=family,
            intrinsic_uncertainty=intrinsic_uncertainty,
            valid_answers=valid_answers,
        )


@dataclass(frozen=True)
class Reject:
    """A row that could not become a sample. `reason` is a stable category (counted);
    `detail` says exactly what was wrong in this row."""

    source: str
    reason: str
    detail: str
    raw: str

    @property
    def message(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


def preview(raw: str) -> str:
    """The first RAW_PREVIEW_CHARS of `raw`, made storable: undecodable characters
    (surrogates from bad bytes) are written as backslash escapes."""
    text = raw if len(raw) <= RAW_PREVIEW_CHARS else raw[:RAW_PREVIEW_CHARS] + "…"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
