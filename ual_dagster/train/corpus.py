"""The pre-training corpus of the locally built base model (tiny profile).

It is generated from the testbed with its own seed, not read from the profile's
instruction sets: editing a training row must not change the base model (and so
retrain every checkpoint), only the variants whose training set holds that row.
Prompts that are held out for evaluation in any testbed data set of the profile are
left out, so the base model never sees an evaluation item. The task families of a testbed
data set with `in_base_corpus: false` are left out too, so that fine-tuning, not
pre-training, is where the base model first meets them (docs/testbed.md says why).
"""

from __future__ import annotations

from ual_dagster.config import Profile
from ual_dagster.config.data import TestbedConfig
from ual_dagster.data.testbed import FAMILIES, generate_testbed, max_samples, select_families
from ual_dagster.train.prompts import render_text

CORPUS_SEED = 10_000  # disjoint from the data sets' seeds (0, 1, ...)


def heldout_prompts(profile: Profile) -> set[tuple[str, str]]:
    held: set[tuple[str, str]] = set()
    for name, ds in profile.datasets.items():
        if ds.source == "testbed" and ds.testbed is not None:
            held |= {(s.instruction, s.input) for s in generate_testbed(ds.testbed, name) if s.split == "heldout"}
    return held


def excluded_families(profile: Profile) -> set[str]:
    """Families of the testbed data sets marked `in_base_corpus: false`."""
    out: set[str] = set()
    for ds in profile.datasets.values():
        if ds.source == "testbed" and ds.testbed is not None and not ds.testbed.in_base_corpus:
            out |= {f.name for f in select_families(ds.testbed)}
    return out


def corpus_config(profile: Profile) -> TestbedConfig:
    """The testbed config the corpus is drawn from: every family not excluded, as many
    samples as `corpus_samples` asks or, if fewer, as the remaining families can give."""
    tiny = profile.base_model.tiny
    n = tiny.corpus_samples if tiny is not None else 4000
    excluded = excluded_families(profile)
    if not excluded:
        return TestbedConfig(kind="both", n_samples=n, heldout_fraction=0.0, seed=CORPUS_SEED)
    families = sorted(set(FAMILIES) - excluded)
    if not families:
        raise ValueError("every testbed family is excluded from the base model's corpus (in_base_corpus: false)")
    capacity = sum(max_samples(f, 0.0) for f in families)
    return TestbedConfig(
        kind="both", families=families, n_samples=min(n, capacity), heldout_fraction=0.0, seed=CORPUS_SEED
    )


def pretraining_texts(profile: Profile) -> list[str]:
    template = profile.training.prompt_template
    samples = generate_testbed(corpus_config(profile), "pretraining_corpus")
    held = heldout_prompts(profile)
    return [
        render_text(s.instruction, s.input, s.output, template) for s in samples if (s.instruction, s.input) not in held
    ]
