"""The generated testbed: determinism, splits, answers and intrinsic uncertainty."""

import math
import re
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from ual_dagster.config.data import DatasetConfig, TestbedConfig
from ual_dagster.data import FAMILIES, K_MAX, build_instruction_set, generate_testbed, read_samples
from ual_dagster.data.testbed import family_quotas, max_samples, select_families
from ual_dagster.storage import DuckDBStore


def test_deterministic_given_the_seed():
    cfg = TestbedConfig(n_samples=600, seed=3)
    a, b = generate_testbed(cfg, "t"), generate_testbed(cfg, "t")
    assert a == b
    other = generate_testbed(TestbedConfig(n_samples=600, seed=4), "t")
    assert {s.sample_id for s in other} != {s.sample_id for s in a}


@pytest.mark.parametrize("kind", ["single_answer", "many_answers", "both"])
def test_counts_splits_and_distinct_prompts(kind):
    cfg = TestbedConfig(kind=kind, n_samples=1500, heldout_fraction=0.1, seed=0)
    samples = generate_testbed(cfg, "t")
    assert len(samples) == 1500 and len({s.sample_id for s in samples}) == 1500
    heldout = [s for s in samples if s.split == "heldout"]
    assert abs(len(heldout) - 150) <= len(select_families(cfg))  # rounding per family
    train_prompts = {s.instruction for s in samples if s.split == "train"}
    assert not train_prompts & {s.instruction for s in heldout}
    assert len({s.instruction for s in heldout}) == len(heldout)
    kinds = {FAMILIES[s.family].kind for s in samples}
    assert kinds == ({"single_answer", "many_answers"} if kind == "both" else {kind})
    assert all(s.output in s.valid_answers and s.input == "" and "\n" not in s.output for s in samples)


def test_intrinsic_uncertainty_is_the_normalised_entropy_of_the_valid_answers():
    samples = generate_testbed(TestbedConfig(kind="both", n_samples=3000, seed=1), "t")
    for s in samples:
        k = len(set(s.valid_answers))
        p = np.full(k, 1.0 / k)
        expected = min(1.0, float(-(p * np.log(p)).sum()) / math.log(K_MAX))
        assert s.intrinsic_uncertainty == pytest.approx(expected, abs=1e-12)
        assert (s.intrinsic_uncertainty == 0.0) == (FAMILIES[s.family].kind == "single_answer")
    values = [s.intrinsic_uncertainty for s in samples if s.intrinsic_uncertainty > 0]
    assert 0.1 < min(values) and max(values) < 1.0  # a spread, not one value


def _single_answer(instruction: str) -> str:
    """Independent solutions of the single-answer tasks, from the instruction text alone."""
    if m := re.fullmatch(r"What is (\d+) ([+-]) (\d+)\?", instruction):
        a, op, b = int(m[1]), m[2], int(m[3])
        return str(a + b if op == "+" else a - b)
    if m := re.fullmatch(r"What number comes after (\d+)\?", instruction):
        return str(int(m[1]) + 1)
    if m := re.fullmatch(r"What letter comes after ([a-z])\?", instruction):
        return chr(ord(m[1]) + 1)
    if m := re.fullmatch(r"Sort these numbers: (.*)", instruction):
        return " ".join(sorted(m[1].split(), key=int))
    if m := re.fullmatch(r"Reverse the word: (\w+)", instruction):
        return "".join(reversed(m[1]))
    if m := re.fullmatch(r"Write in capitals: (\w+)", instruction):
        return m[1].upper()
    if m := re.fullmatch(r"How many letters are in (\w+)\?", instruction):
        return str(len(m[1]))
    raise AssertionError(f"unexpected instruction {instruction!r}")


def test_single_answer_outputs_are_right():
    samples = generate_testbed(TestbedConfig(kind="single_answer", n_samples=2000, seed=2), "t")
    for s in samples:
        assert s.valid_answers == (s.output,)
        if s.family != "capital":
            assert s.output == _single_answer(s.instruction), s


def test_many_answer_sets_are_right():
    samples = generate_testbed(TestbedConfig(kind="many_answers", n_samples=2000, seed=2), "t")
    for s in samples:
        answers = set(s.valid_answers)
        if m := re.fullmatch(r"Give an even number below (\d+)\.", s.instruction):
            assert answers == {str(x) for x in range(int(m[1])) if x % 2 == 0}
        elif m := re.fullmatch(r"Give two numbers that add up to (\d+)\.", s.instruction):
            assert all(sum(map(int, a.split(" and "))) == int(m[1]) for a in answers)
            assert len(answers) == int(m[1]) + 1
        elif m := re.fullmatch(r"Give a number between (\d+) and (\d+)\.", s.instruction):
            assert answers == {str(x) for x in range(int(m[1]), int(m[2]) + 1)}
        elif m := re.fullmatch(r"Give a multiple of (\d+) below (\d+)\.", s.instruction):
            assert answers == {str(x) for x in range(1, int(m[2])) if x % int(m[1]) == 0}
        elif m := re.fullmatch(r"Name a letter other than ([a-z])\.", s.instruction):
            assert answers == set("abcdefghijklmnopqrstuvwxyz") - {m[1]}
        elif m := re.fullmatch(r"Name an? \w+ other than (\w+)\.", s.instruction):
            assert m[1] not in answers and len(answers) >= 6
        assert len(answers) == len(s.valid_answers) > 1


def test_quotas_share_equally_and_respect_capacity():
    families = select_families(TestbedConfig(kind="single_answer", n_samples=1500))
    quotas = family_quotas(families, 1500, 0.1)
    assert sum(quotas.values()) == 1500
    caps = {f.name: max_samples(f.name, 0.1) for f in families}
    assert caps["next_letter"] == 25 and caps["capital"] == 33 and caps["next_number"] == 200
    full = {n for n, q in quotas.items() if q == caps[n]}
    assert full == {"next_letter", "capital", "next_number"}  # small families give all they have
    others = [q for n, q in quotas.items() if n not in full]
    assert max(others) - min(others) <= 1 and min(others) >= max(caps[n] for n in full)


def test_family_selection_and_config_errors():
    samples = generate_testbed(TestbedConfig(kind="both", families=["add", "sum_pair"], n_samples=100), "t")
    assert Counter(s.family for s in samples) == {"add": 50, "sum_pair": 50}
    with pytest.raises(ValidationError, match="unknown"):
        TestbedConfig(families=["add", "nope"])
    with pytest.raises(ValidationError, match="not of kind 'single_answer'"):
        TestbedConfig(kind="single_answer", families=["sum_pair"])
    with pytest.raises(ValidationError, match="can give at most"):
        TestbedConfig(kind="single_answer", families=["next_letter"], n_samples=100)


def test_built_testbed_rows_in_duckdb(tmp_path):
    store = DuckDBStore(tmp_path / "db.duckdb")
    cfg = DatasetConfig(source="testbed", entropy="high", testbed=TestbedConfig(kind="many_answers", n_samples=300))
    result = build_instruction_set("open", cfg, store)
    assert (result.n_kept, result.n_rejects, result.n_duplicates) == (300, 0, 0)
    stored = read_samples(store, "open")
    assert sorted(stored, key=lambda s: s.sample_id) == sorted(
        generate_testbed(cfg.testbed, "open"), key=lambda s: s.sample_id
    )
    assert sum(result.metadata["intrinsic_uncertainty_histogram"].values()) == 300
    assert result.metadata["n_heldout"] == 30


@pytest.mark.parametrize("m", [1, 3])
def test_answers_per_prompt_gives_each_train_prompt_that_many_distinct_answers(m):
    cfg = TestbedConfig(kind="many_answers", n_samples=1200, heldout_fraction=0.1, seed=5, answers_per_prompt=m)
    samples = generate_testbed(cfg, "t")
    assert len(samples) == 1200 and len({s.sample_id for s in samples}) == 1200
    train = [s for s in samples if s.split == "train"]
    per_prompt: dict[str, list[str]] = {}
    for s in train:
        per_prompt.setdefault(s.instruction, []).append(s.output)
    assert all(len(a) == len(set(a)) <= m for a in per_prompt.values())
    # every prompt but at most the last one of each family is filled up to m (or its k)
    short = [
        p
        for p, a in per_prompt.items()
        if len(a) < min(m, len(next(s for s in train if s.instruction == p).valid_answers))
    ]
    assert len(short) <= len(select_families(cfg))
    assert not set(per_prompt) & {s.instruction for s in samples if s.split == "heldout"}
    quotas = family_quotas(select_families(cfg), 1200, 0.1, m)
    assert Counter(s.family for s in samples) == {f: q for f, q in quotas.items() if q}
    assert quotas["letter_except"] == max_samples("letter_except", 0.1, m) < quotas["number_between"]


def test_quota_equal_to_total_capacity_is_allowed():
    families = select_families(TestbedConfig(kind="single_answer", families=["next_letter", "capital"], n_samples=10))
    total = max_samples("next_letter", 0.0) + max_samples("capital", 0.0)
    assert family_quotas(families, total, 0.0) == {"next_letter": 25, "capital": 33}


def test_base_corpus_leaves_out_families_not_in_base_corpus(tmp_path):
    from ual_dagster.config import load_profile
    from ual_dagster.train.corpus import corpus_config, pretraining_texts

    profile = tmp_path / "p.yaml"
    profile.write_text(
        "extends: tiny\ndatasets:\n  testbed_open:\n    testbed: {in_base_corpus: false}\n"
        "  testbed_exact:\n    testbed: {in_base_corpus: true}\n"
    )
    p = load_profile(str(profile))
    cfg = corpus_config(p)
    many = {n for n, f in FAMILIES.items() if f.kind == "many_answers"}
    assert set(cfg.families) == set(FAMILIES) - many
    # corpus_samples (6000) exceeds what the single-answer families can give: capped at their capacity
    assert cfg.n_samples == sum(max_samples(f, 0.0) for f in cfg.families) < p.base_model.tiny.corpus_samples
    texts = pretraining_texts(p)
    many_prompts = {s.instruction for s in generate_testbed(p.datasets["testbed_open"].testbed, "o")}
    assert texts and not any(t.split("\n")[1] in many_prompts for t in texts)
    assert not any(re.search(r"Give an even number|Name an? \w+\.|add up to", t) for t in texts)

    everything = tmp_path / "q.yaml"
    everything.write_text(
        "extends: tiny\ndatasets:\n  testbed_open:\n    testbed: {in_base_corpus: false}\n"
        "  testbed_exact:\n    testbed: {in_base_corpus: false}\n"
    )
    with pytest.raises(ValueError, match="every testbed family is excluded"):
        pretraining_texts(load_profile(str(everything)))
