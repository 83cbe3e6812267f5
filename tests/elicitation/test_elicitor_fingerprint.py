from __future__ import annotations

import re

from ual_dagster.config.elicitation import OpenAIElicitation
from ual_dagster.elicitation import elicitor_fingerprint
from ual_dagster.elicitation.prompt import extract_task, load_template, render_prompt

BASE = dict(backend="openai", model="gpt-4o", base_url="https://api.openai.com/v1")


def fp(**overrides) -> str:
    return elicitor_fingerprint(OpenAIElicitation(**{**BASE, **overrides}))


def test_fingerprint_is_readable():
    assert re.fullmatch(r"openai:gpt-4o:uncertainty_v1:verbalized:[0-9a-f]{8}", fp())


def test_answer_changing_parameters_change_it():
    base = fp()
    changed = [
        fp(model="gpt-4o-mini"),
        fp(method="logprobs"),
        fp(temperature=0.3),
        fp(max_tokens=32),
        fp(scale_max=100),
        fp(method="consistency", temperature=1.0),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    assert fp(method="consistency", temperature=1.0, consistency_k=3) != fp(method="consistency", temperature=1.0)


def test_operational_parameters_do_not_change_it():
    base = fp()
    for overrides in (
        dict(concurrency=64),
        dict(timeout_s=5),
        dict(max_retries=1),
        dict(max_parse_retries=0),
        dict(max_calls=10),
        dict(max_tokens_total=1000),
        dict(api_key_env="OTHER_KEY"),
        dict(base_url="http://127.0.0.1:8000/v1"),
        dict(batch_commit=4),
        dict(ttl_days=7),
        dict(price_per_1k_prompt_tokens=1.0),
        dict(backoff_base_s=2.0),
    ):
        assert fp(**overrides) == base, overrides


def test_prompt_text_enters_the_fingerprint(monkeypatch, tmp_path):
    import ual_dagster.config.paths as paths
    import ual_dagster.elicitation.prompt as prompt

    base = fp()
    (tmp_path / "uncertainty_v1.txt").write_text(load_template("uncertainty_v1") + "\nBe careful.\n")
    monkeypatch.setattr(paths, "PROMPTS_DIR", tmp_path)
    prompt.load_template.cache_clear()
    try:
        assert fp() != base
    finally:
        prompt.load_template.cache_clear()


def test_rendered_prompt_round_trips_through_extract_task():
    text = render_prompt("uncertainty_v1", "Name a fruit. Costs $5 {x}", "", "apple", 10)
    task = extract_task(text)
    assert (task.instruction, task.input, task.output, task.scale_max) == (
        "Name a fruit. Costs $5 {x}",
        "",
        "apple",
        10,
    )
    assert '{"uncertainty": <integer from 0 to 10>}' in text
