"""`plan --json` shows the whole bill (issue 20, item 3), never more rows used than a data set
has, and says "to elicit: 0 (612 cached)" when everything is cached (issue 21)."""

from __future__ import annotations

import yaml

from ual_dagster.config import load_profile
from ual_dagster.config.loader import BUNDLED_DIR
from ual_dagster.data.testbed import generate_testbed
from ual_dagster.elicitation.cost import CHARS_PER_TOKEN
from ual_dagster.plan import format_plan, plan


def test_plan_paper_has_the_judge_generation_gpu_hours_and_a_total(tmp_path):
    data = yaml.safe_load((BUNDLED_DIR / "paper.yaml").read_text())
    data["storage"] = {"state_dir": str(tmp_path / "state")}  # nothing loaded yet: estimates
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(data))
    p = plan(load_profile(str(path)))
    checkpoints = 3 * 3  # scenarios x methods, one seed
    assert p["judge_calls"] == checkpoints * 805 == 7245  # AlpacaEval's 805 instructions per checkpoint
    # judge prompt: template 400 + instruction 40 + reference 512 + our output at max_new_tokens 1024;
    # one completion token (logprob-weighted annotator); gpt-4.1 at $2 / $8 per 1M tokens
    per_call = (400 + 40 + 512 + 1024) * 2.0 / 1e6 + 1 * 8.0 / 1e6
    assert abs(p["judge_cost_usd"] - round(7245 * per_call, 2)) < 0.006
    # every AlpacaEval item and both GSM8K tasks' 1,319 test items at max_new_tokens, per checkpoint
    assert p["generation_tokens"] == checkpoints * (805 + 2 * 1319) * 1024
    # training: 80,000 scenario rows x 3 methods x 3 epochs at the assumed 800-character row
    row_tokens = round(800 / CHARS_PER_TOKEN)
    assert p["training_tokens"] == 80_000 * 3 * 3 * row_tokens
    # A100-80GB: 40% of 312 TFLOP/s at 4 x 6.74e9 FLOPs a token; generation: batch 16 x 30% of
    # 2.039 TB/s over 2 bytes x 6.74e9 parameters a step
    train_tps = 0.4 * 312e12 / (4 * 6.74e9)
    gen_tps = 16 * 0.3 * 2.039e12 / (2 * 6.74e9)
    expected_hours = (p["training_tokens"] / train_tps + p["generation_tokens"] / gen_tps) / 3600
    assert p["gpu"] == "A100-80GB" and abs(p["gpu_hours"] - expected_hours) <= 0.05
    assert p["gpu_cost_usd"] is None  # the profile prices no GPU-hour
    assert p["total_cost_usd"] == round(p["estimated_cost_usd"] + p["judge_cost_usd"], 2)
    assert p["paid_services"] and p["judge_paid"] and p["elicitation_paid"]


def test_tiny_bill_is_free_and_unknown_gpu_is_said_not_guessed():
    p = plan(load_profile("tiny"))
    assert (p["judge_calls"], p["judge_cost_usd"], p["total_cost_usd"], p["paid_services"]) == (0, 0.0, 0.0, [])
    assert p["gpu_hours"] is None and "names no GPU" in p["gpu_hours_basis"]


def test_plan_never_claims_more_rows_used_than_the_data_set_has(tmp_path):
    profile_path = tmp_path / "big.yaml"
    profile_path.write_text(
        yaml.safe_dump(
            {
                "extends": str(BUNDLED_DIR / "tiny.yaml"),
                "name": "big",
                "storage": {"state_dir": str(tmp_path / "state")},
                "scenarios": {"high_entropy": {"size": 10000, "weights": {"testbed_open": 1.0}}},
            }
        )
    )
    profile = load_profile(str(profile_path))
    p = plan(profile)
    # testbed_open: 1,500 samples, 10% held out per family: the generator's own count, not 10,000
    train_rows = sum(s.split == "train" for s in generate_testbed(profile.datasets["testbed_open"].testbed, "x"))
    assert train_rows == 1351
    assert p["datasets"]["testbed_open"]["rows_used"] == train_rows
    assert p["datasets"]["testbed_open"]["to_elicit"] <= train_rows


def test_plan_wording_counts_what_is_still_to_elicit():
    result = plan(load_profile("tiny"))
    result["datasets"] = {"testbed_open": {"rows_used": 600, "to_elicit": 612, "cached": 612, "basis": "samples"}}
    assert "  testbed_open: to elicit: 0 (612 cached, 600 used; samples)" in format_plan(result).splitlines()
