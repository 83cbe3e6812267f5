"""Launcher-neutral entry: spec files, examples validation, the Pipes subprocess entry."""

import json

import dagster as dg
import pytest

from ual_dagster.config.training import K8sLauncher, LoraConfig, MethodConfig, SubprocessLauncher, TrainingConfig
from ual_dagster.train.records import RESULT_FILE, TrainResult, TrainSpec, read_examples, write_examples
from ual_dagster.train.run import training_command
from ual_dagster.train.versioning import checkpoint_fingerprint

from .conftest import make_examples

CFG = TrainingConfig(
    lora=LoraConfig(r=2, alpha=4, dropout=0.0, target_modules=["q_proj", "v_proj"]),
    epochs=1,
    batch_size=8,
    max_length=48,
    learning_rate=1e-2,
)


def test_examples_roundtrip_and_bad_rows_are_named(tmp_path):
    examples = make_examples(5, epsilon=0.07)
    path = write_examples(tmp_path / "ex.jsonl", examples)
    assert read_examples(path) == examples

    bad_cases = {
        '{"instruction": "a", "input": "", "output": "b"}': "missing field",
        '{"instruction": "a", "input": "", "output": "b", "epsilon": 1.5}': "epsilon must be a number in",
        '{"instruction": "a", "input": "", "output": "b", "epsilon": NaN}': "epsilon must be a number in",
        '{"instruction": 3, "input": "", "output": "b", "epsilon": 0.1}': "'instruction' must be a string",
        "{not json": "not valid JSON",
        "[1, 2]": "expected a JSON object",
    }
    for line, reason in bad_cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(path.read_text() + "\n" + line + "\n")
        with pytest.raises(ValueError, match=reason) as err:
            read_examples(bad)
        assert f"{bad}:7" in str(err.value)


def test_checkpoint_fingerprint_tracks_what_changes_weights():
    sft, ual = MethodConfig(kind="sft"), MethodConfig(kind="ual")
    base = checkpoint_fingerprint("b1", "e1", CFG, sft)
    assert base == checkpoint_fingerprint("b1", "e1", CFG, sft)
    assert base != checkpoint_fingerprint("b2", "e1", CFG, sft)
    assert base != checkpoint_fingerprint("b1", "e2", CFG, sft)
    assert base != checkpoint_fingerprint("b1", "e1", CFG, ual)
    assert base != checkpoint_fingerprint("b1", "e1", CFG.model_copy(update={"learning_rate": 1e-3}), sft)
    overridden = MethodConfig(kind="sft", training={"learning_rate": 1e-3})
    assert checkpoint_fingerprint("b1", "e1", CFG, overridden) != base
    # Where it runs and how often it checkpoints do not change the weights.
    same = CFG.model_copy(update={"launcher": SubprocessLauncher(), "save_every_steps": 7})
    assert checkpoint_fingerprint("b1", "e1", same, sft) == base
    pod = K8sLauncher(image="img:1", state_pvc="pvc", gpus=4, namespace="gpu", memory="1Ti")
    assert checkpoint_fingerprint("b1", "e1", CFG.model_copy(update={"launcher": pod}), sft) == base
    # ...but four data-parallel processes make a four times larger global batch
    accelerate = pod.model_copy(update={"distributed": "accelerate"})
    assert checkpoint_fingerprint("b1", "e1", CFG.model_copy(update={"launcher": accelerate}), sft) != base


def test_training_command_uses_accelerate_for_several_processes(tmp_path):
    single = training_command(tmp_path / "spec.json")
    assert single[1:] == ["-m", "ual_dagster.train.pipes_entry", "--spec", str(tmp_path / "spec.json")]
    multi = training_command(tmp_path / "spec.json", num_processes=4)
    assert multi[1:6] == ["-m", "accelerate.commands.launch", "--num_processes", "4", "-m"]


@pytest.mark.slow
def test_pipes_subprocess_trains_and_reports_its_result(tiny_base, tmp_path):
    spec = TrainSpec(
        base_path=tiny_base,
        examples_path=str(write_examples(tmp_path / "ex.jsonl", make_examples(16, epsilon=0.1))),
        training=CFG.model_dump(mode="json"),
        out_dir=str(tmp_path / "out"),
    )
    spec_path = spec.save(tmp_path / "spec.json")
    reported: list = []

    @dg.asset
    def lora(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient):
        invocation = pipes.run(context=context, command=training_command(spec_path))
        reported.extend(invocation.get_custom_messages())
        return dg.MaterializeResult()

    result = dg.materialize([lora], resources={"pipes": dg.PipesSubprocessClient()})
    assert result.success
    # the step gets the TrainResult from what the job reported through Pipes ...
    assert len(reported) == 1
    payload = TrainResult.model_validate(reported[0])
    assert payload.steps == 2 and payload.eps_stats["mean"] == pytest.approx(0.1)
    # ... which is the result the job also left on disk
    stored = json.loads((tmp_path / "out" / RESULT_FILE).read_text())
    assert stored["steps"] == payload.steps and stored["final_loss"] == pytest.approx(payload.final_loss)
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
