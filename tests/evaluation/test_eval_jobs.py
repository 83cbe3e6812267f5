"""A checkpoint's evaluation as a job: the spec and items as files in, the result file out.

The job-side entry point (`python -m ual_dagster.evaluation.job_entry`, what every cluster
launcher runs) must give exactly the rows and items the in-process path gives, from files
alone, and report them through Dagster Pipes.
"""

import json
import subprocess
import sys

import dagster as dg
import pytest

from assets.launch import EngineJobsResource
from ual_dagster.config.evaluation import AnswerLikelihoodConfig, ClusteringConfig, EvaluationConfig
from ual_dagster.config.launchers import SubprocessLauncher
from ual_dagster.evaluation.eval_data import EvalData, HeldoutItem
from ual_dagster.evaluation.jobs import EvalJobSpec, read_eval_data, result_rows, run_eval_job, write_eval_data
from ual_dagster.train.entry_points import EVAL_ENTRY

DATA = EvalData(
    {
        "testbed_exact": [
            HeldoutItem("e1", "testbed_exact", "Add 2 and 3.", "", "5", ("5",)),
            HeldoutItem("e2", "testbed_exact", "Sort the letters c a b.", "", "a b c", ("a b c",)),
        ],
        "testbed_open": [
            HeldoutItem("o1", "testbed_open", "Name a fruit.", "", "apple", ("apple", "pear", "plum")),
            HeldoutItem("o2", "testbed_open", "Name a colour.", "", "red", ("red", "blue")),
        ],
    }
)
CFG = EvaluationConfig(
    device="cpu",
    generation={"max_new_tokens": 4, "batch_size": 4, "stop_strings": ["\n"]},
    lm_eval=[],
    alpaca_eval={"instructions": "testbed_heldout", "datasets": ["testbed_open"], "judge": {"kind": "testbed"}},
    answer_likelihood=AnswerLikelihoodConfig(datasets=["testbed_exact", "testbed_open"]),
    clustering=ClusteringConfig(probe_samples=12, max_tokens=200, layers=[-1]),
)


def _spec(ckpt, root, task="evaluate") -> EvalJobSpec:
    return EvalJobSpec(
        task=task,
        base_path=str(ckpt.base_path),
        adapter_path=str(ckpt.adapter_path),
        checkpoint_fp=ckpt.fingerprint,
        evaluation=CFG.model_dump(mode="json"),
        eval_data_path=str(write_eval_data(DATA, root / "data")),
        work_dir=str(root / "work"),
        result_path=str(root / "job" / "result.json"),
    )


def test_items_file_round_trips_and_a_tampered_one_is_refused(tmp_path):
    path = write_eval_data(DATA, tmp_path)
    assert path.name == f"{DATA.fingerprint}.json"
    assert read_eval_data(path) == DATA
    raw = json.loads(path.read_text())
    raw["testbed_open"][0]["output"] = "banana"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=rf"{DATA.fingerprint}\.json: its items hash to"):
        read_eval_data(path)


def test_the_job_entry_gives_the_in_process_rows_and_reports_them_through_pipes(tiny_checkpoint, tmp_path):
    local = run_eval_job(_spec(tiny_checkpoint, tmp_path / "local"))
    rows, items = result_rows(local)
    assert {r.benchmark for r in rows} == {"alpaca_eval", "testbed_likelihood"}
    assert len(items) >= 4
    assert json.loads((tmp_path / "local" / "job" / "result.json").read_text()) == local

    # the subprocess launcher, through the engine_jobs resource the assets use
    spec = _spec(tiny_checkpoint, tmp_path / "job")
    spec_path = spec.save(tmp_path / "job" / "job_spec.json")
    reported: list = []

    @dg.asset
    def evaluation(context: dg.AssetExecutionContext, engine_jobs: EngineJobsResource):
        result, job = engine_jobs.run(
            context,
            SubprocessLauncher(),
            step="eval",
            fingerprint="0123456789abcdef",
            module=EVAL_ENTRY,
            spec_path=spec_path,
            work_dir=spec_path.parent,
        )
        reported.append((result, job))
        return dg.MaterializeResult()

    assert dg.materialize([evaluation], resources={"engine_jobs": EngineJobsResource.default()}).success
    ((result, job),) = reported
    assert job["launcher"] == "subprocess" and job["job_name"] == "ual-eval-0123456789ab"
    reported = [result]
    job_rows, job_items = result_rows(reported[0])
    assert [r.as_json() for r in job_rows] == [r.as_json() for r in rows]  # same numbers, from files alone
    assert job_items == items
    assert reported[0] == json.loads(open(spec.result_path).read())


def test_the_job_entry_outside_dagster_writes_its_result(tiny_checkpoint, tmp_path):
    probes = EvalData(
        {
            "testbed_exact": [
                HeldoutItem(f"p{i}", "testbed_exact", f"Add {i} and 3.", "", f"{i} plus 3 is {i + 3}", ())
                for i in range(12)
            ]
        }
    )
    spec = _spec(tiny_checkpoint, tmp_path, task="cluster").model_copy(
        update={"eval_data_path": str(write_eval_data(probes, tmp_path / "probes"))}
    )
    spec_path = spec.save(tmp_path / "job_spec.json")
    out = subprocess.run(
        [sys.executable, "-m", "ual_dagster.evaluation.job_entry", "--spec", str(spec_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(open(spec.result_path).read())
    assert result["task"] == "cluster"
    assert {r["metric"] for r in result["rows"]} == {"silhouette@L-1", "davies_bouldin@L-1"}, result
