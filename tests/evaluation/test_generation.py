"""Batched generation: each row stops at its own stop string or eos, and the stop string is cut."""

from __future__ import annotations

from ual_dagster.config.evaluation import GenerationConfig
from ual_dagster.evaluation.models import CheckpointHandle, generate, truncate_at_stop

PROMPTS = ["### Instruction:\nAdd 2 and 3.\n\n### Response:\n", "Question: Tom has 3 apples and buys 4 more."]


def _early_substring_absent_from(text: str, other: str) -> str:
    """A 2-3 character piece that starts early in `text` and never occurs in `other`."""
    for start in range(1, len(text) // 2):
        for size in (2, 3):
            piece = text[start : start + size]
            if len(piece) == size and piece.strip() and piece not in other and text.find(piece) == start:
                return piece
    raise AssertionError(f"no usable stop string in {text!r} (other row: {other!r})")


def test_truncate_at_stop_cuts_at_the_earliest_stop_string():
    assert truncate_at_stop(" 5\n### Instruction: more", ["###", "\n"]) == "5"
    assert truncate_at_stop("no stop here ", ["###"]) == "no stop here"


def test_a_row_that_hits_a_stop_string_early_does_not_cut_the_other_rows(tiny_checkpoint):
    free = GenerationConfig(max_new_tokens=24, batch_size=2, stop_strings=[])
    with CheckpointHandle(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "cpu") as handle:
        loaded = handle.get()
        full = generate(loaded, PROMPTS, free)
        stop = _early_substring_absent_from(full[0], full[1])
        stopped = generate(loaded, PROMPTS, GenerationConfig(max_new_tokens=24, batch_size=2, stop_strings=[stop]))
    assert stopped[0] == truncate_at_stop(full[0], [stop])
    assert len(stopped[0]) < len(full[0].strip())
    assert stopped[1] == full[1]  # no stop string in it: generated to max_new_tokens (or eos) as before
