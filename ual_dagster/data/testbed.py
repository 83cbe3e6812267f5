"""The generated testbed: short tasks whose intrinsic uncertainty is known by construction.

Each family enumerates its task instances: a one-line instruction and the set of valid
answers. Single-answer families (arithmetic on small numbers, sorting three digits,
next number / letter, capitals, ...) have one valid answer; many-answer families (name a
member of a category, an even number below N, two numbers that sum to N, ...) have k
equally valid answers, and a sample's output is one of them drawn at random.

intrinsic_uncertainty = normalised entropy of the uniform distribution over the k valid
answers = log(k) / log(K_MAX), clipped to [0, 1]: 0 for single-answer tasks, 1 from
K_MAX answers up. K_MAX = 100 is about the largest answer set here (two numbers summing
to 80 has 81), so the many-answer families spread over roughly 0.15 .. 0.95.

Generation is deterministic given the seed. Each family draws from its own generator
(seeded by seed and family name), so selecting other families leaves its samples as
they were. Held-out rows use prompts that never occur in the train split: the family's
instances are shuffled, the first ones become held-out prompts (one sample each), and
train samples are distinct (prompt, answer) pairs from the rest.
"""

from __future__ import annotations

import random

from ual_dagster.config.data import TestbedConfig
from ual_dagster.data.samples import Sample
from ual_dagster.fingerprint import stable_hash
from ual_dagster.testbed_families import (
    FAMILIES,
    K_MAX,
    Family,
    FamilyKind,
    Instance,
    family_quotas,
    heldout_count,
    intrinsic_uncertainty,
    max_samples,
    select_families,
)

__all__ = [
    "FAMILIES",
    "K_MAX",
    "Family",
    "FamilyKind",
    "Instance",
    "family_quotas",
    "generate_testbed",
    "intrinsic_uncertainty",
    "max_samples",
    "select_families",
]


# -- generation ---------------------------------------------------------------------------


def _family_samples(family: Family, quota: int, cfg: TestbedConfig, dataset: str) -> list[Sample]:
    rng = random.Random(int(stable_hash("testbed", cfg.seed, family.name), 16))
    order = family.instances()[:]
    rng.shuffle(order)
    n_heldout = heldout_count(quota, cfg.heldout_fraction)
    n_train = quota - n_heldout

    def sample(inst: Instance, answer: str, split: str, i: int) -> Sample:
        return Sample.create(
            dataset,
            inst.instruction,
            "",
            answer,
            f"testbed:{family.name}:{split}:{i}",
            split=split,  # type: ignore[arg-type]
            family=family.name,
            intrinsic_uncertainty=intrinsic_uncertainty(len(inst.answers)),
            valid_answers=inst.answers,
        )

    out = [sample(inst, rng.choice(inst.answers), "heldout", i) for i, inst in enumerate(order[:n_heldout])]
    if cfg.answers_per_prompt is None:
        # (prompt, answer) pairs drawn from all pairs: how many answers a prompt gets depends on
        # the family's size (a small family repeats its prompts with many answers).
        pool = [(inst, answer) for inst in order[n_heldout:] for answer in inst.answers]
        chosen = rng.sample(pool, n_train)
    else:
        # Prompts in shuffled order, each with up to answers_per_prompt distinct answers.
        chosen = []
        for inst in order[n_heldout:]:
            take = min(cfg.answers_per_prompt, len(inst.answers), n_train - len(chosen))
            if take <= 0:
                break
            chosen += [(inst, answer) for answer in rng.sample(inst.answers, take)]
    out += [sample(inst, answer, "train", i) for i, (inst, answer) in enumerate(chosen)]
    return out


def generate_testbed(cfg: TestbedConfig, dataset: str) -> list[Sample]:
    """cfg.n_samples distinct samples, mixed across families in a seeded random order."""
    families = select_families(cfg)
    quotas = family_quotas(families, cfg.n_samples, cfg.heldout_fraction, cfg.answers_per_prompt)
    samples = [s for f in families for s in _family_samples(f, quotas[f.name], cfg, dataset)]
    random.Random(int(stable_hash("testbed-order", cfg.seed), 16)).shuffle(samples)
    return samples
