"""The pre-training corpus of the locally built base model (tiny profile).

It is generated from the testbed with its own seed, not read from the profile's
instruction sets: editing a training row must not change the base model (and so
retrain every checkpoint), only the variants whose training set holds that row.
Prompts that are held out for evaluation in any testbed data set of the profile are
left out, so the base model never sees an evaluation item.
"""

from __future__ import annotations

from ual_dagster.config import Profile
from ual_dagster.config.data import TestbedConfig
from ual_dagster.data.testbed import generate_testbed
from ual_dagster.train.examples import render_text

CORPUS_SEED = 10_000  # disjoint from the data sets' seeds (0, 1, ...)


def heldout_prompts(profile: Profile) -> set[tuple[str, str]]:
    held: set[tuple[str, str]] = set()
    for name, ds in profile.datasets.items():
        if ds.source == "testbed" and ds.testbed is not None:
            held |= {(s.instruction, s.input) for s in generate_testbed(ds.testbed, name) if s.split == "heldout"}
    return held


def pretraining_texts(profile: Profile) -> list[str]:
    tiny = profile.base_model.tiny
    n = tiny.corpus_samples if tiny is not None else 4000
    template = profile.training.prompt_template
    samples = generate_testbed(
        TestbedConfig(kind="both", n_samples=n, heldout_fraction=0.0, seed=CORPUS_SEED), "pretraining_corpus"
    )
    held = heldout_prompts(profile)
    return [render_text(s.instruction, s.input, s.output, template) for s in samples if (s.instruction, s.input) not in held]
