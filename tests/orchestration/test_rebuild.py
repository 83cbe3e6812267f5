"""Rebuild exactly what changed (issue 6, (a)-(f)), end to end on a small tiny-like profile.

What was rebuilt is measured from what the pipeline leaves behind, not from its own
`reused` flags: LoRA directories and their finish markers (a retrain writes a new
fingerprint directory), eval_scores rows (rewritten rows get a new created_at), and
uncertainty rows (every elicitation call writes or replaces one). Dagster's own
staleness is read from the instance with the same resolver the UI uses.

Every test starts from the same first full materialisation (built once per module and
kept untouched) and edits only its own copy of it, so each test passes alone and in any
order.
"""

import json
import logging
import shutil
from pathlib import Path

import dagster as dg
import pytest

from assets.definitions import build_definitions
from assets.staleness import unsynced_assets
from tests.orchestration.profiles import NOTES, write_jsonl, write_rebuild_profile
from ual_dagster.config import PROFILE_ENV, load_profile
from ual_dagster.storage import StatePaths

pytestmark = pytest.mark.slow


class Pipeline:
    """The rebuild profile's pipeline under `root`: its profile, notes file, state and Dagster instance."""

    def __init__(self, root: Path):
        self.root = root
        self.profile_path = root / "profile.yaml"
        self.instance = dg.DagsterInstance.local_temp(str(root / "dagster_home"))

    @classmethod
    def create(cls, root: Path) -> "Pipeline":
        root.mkdir(parents=True)
        write_jsonl(root / "notes.jsonl", NOTES)
        write_rebuild_profile(root)
        (root / "dagster_home").mkdir()
        return cls(root)

    # -- running -------------------------------------------------------------------
    def defs(self) -> dg.Definitions:
        return build_definitions(load_profile(str(self.profile_path)))

    def materialize(self, keys: list[str] | None = None) -> dg.ExecuteInProcessResult:
        defs = self.defs()
        assets = list(defs.assets)
        selection = [dg.AssetKey.from_user_string(k) for k in keys] if keys is not None else None
        result = dg.materialize(assets, resources=defs.resources, instance=self.instance, selection=selection)
        assert result.success
        return result

    def latest_metadata(self, key: str) -> dict:
        event = self.instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    def all_keys(self) -> list[str]:
        return sorted(k.to_user_string() for k in self.defs().resolve_asset_graph().get_all_asset_keys())

    def reconfigure(self, **edits) -> None:
        """Rewrite the profile as the baseline's with dotted `edits` (not cumulative: each call starts over)."""
        write_rebuild_profile(self.root, **edits)

    # -- what the pipeline left behind -----------------------------------------------
    @property
    def paths(self) -> StatePaths:
        return StatePaths.for_profile(load_profile(str(self.profile_path)))

    def lora_markers(self) -> dict[str, float]:
        return {
            str(p.parent.name): p.stat().st_mtime_ns for p in (self.paths.artifacts / "lora").glob("*/_FINISHED.json")
        }

    def checkpoint_of(self) -> dict[str, str]:
        with self.paths.store().connect(read_only=True) as con:
            rows = con.execute("SELECT asset, fingerprint FROM asset_versions WHERE asset LIKE 'lora_%'").fetchall()
        return dict(rows)

    def eval_rows(self) -> dict[tuple[str, str], set]:
        with self.paths.store().connect(read_only=True) as con:
            rows = con.execute(
                "SELECT scenario, method, benchmark, created_at FROM eval_scores WHERE benchmark <> 'token_clustering'"
            ).fetchall()
        out: dict[tuple[str, str], set] = {}
        for s, m, b, t in rows:
            out.setdefault((s, m), set()).add((b, t))
        return out

    def uncertainty_rows(self) -> dict[str, tuple]:
        with self.paths.store().connect(read_only=True) as con:
            rows = con.execute("SELECT sample_id, elicitor, created_at FROM uncertainty").fetchall()
        return {f"{s}|{e}": t for s, e, t in rows}

    def snapshot(self) -> dict:
        return {
            "lora": self.lora_markers(),
            "ckpt": self.checkpoint_of(),
            "eval": self.eval_rows(),
            "unc": self.uncertainty_rows(),
        }

    # -- Dagster's view --------------------------------------------------------------
    def stale(self) -> set[str]:
        return {k.to_user_string() for k in unsynced_assets(self.instance, self.defs().resolve_asset_graph())}


def changed(before: dict, after: dict) -> dict[str, set]:
    lora_before = set(before["ckpt"].items())
    return {
        "retrained": {a for a, fp in after["ckpt"].items() if (a, fp) not in lora_before},
        "reevaluated": {f"{s}/{m}" for (s, m), rows in after["eval"].items() if rows != before["eval"].get((s, m))},
        "elicited": set(after["unc"]) - set(before["unc"])
        | {k for k in after["unc"] if k in before["unc"] and after["unc"][k] != before["unc"][k]},
    }


def propagate(p: Pipeline) -> list[set[str]]:
    """Materialise what Dagster says is stale, level by level, until nothing is; return the levels."""
    levels = []
    for _ in range(10):
        stale = p.stale()
        if not stale:
            return levels
        levels.append(stale)
        p.materialize(sorted(stale))
    raise AssertionError(f"staleness did not settle: {levels}")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """(where tests run, the saved first full materialisation), built once for the module.

    The profile's paths are absolute and the notes file's path is part of its loader's code
    version, so a test's copy must sit where the baseline was built: each test restores the
    saved copy to that same folder (see `pipeline`), and nothing ever writes to the saved one.
    """
    with pytest.MonkeyPatch.context() as env:
        env.delenv(PROFILE_ENV, raising=False)  # every profile here is named by its path, for this module only
        base = tmp_path_factory.mktemp("rebuild")
        built = Pipeline.create(base / "pipeline")
        built.materialize()
        assert built.stale() == set()
        built.instance.dispose()
        saved = base / "baseline"
        shutil.copytree(built.root, saved, symlinks=True)
        yield built.root, saved


@pytest.fixture
def pipeline(baseline) -> Pipeline:
    """A fresh copy of the baseline, with its own Dagster instance: no test sees another's edits."""
    workdir, saved = baseline
    shutil.rmtree(workdir)
    shutil.copytree(saved, workdir, symlinks=True)
    p = Pipeline(workdir)
    yield p
    p.instance.dispose()


def test_a_second_run_with_nothing_changed_trains_evaluates_and_elicits_nothing(pipeline):
    before = pipeline.snapshot()
    assert len(before["ckpt"]) == 4 and len(before["eval"]) == 4 and before["unc"]
    pipeline.materialize()
    after = pipeline.snapshot()
    assert after["lora"] == before["lora"]  # no marker rewritten: no training step
    assert changed(before, after) == {"retrained": set(), "reevaluated": set(), "elicited": set()}
    assert pipeline.stale() == set()
    # and every asset says so (issue 12): its output is the one it already had
    assert {k: pipeline.latest_metadata(k)["reused"] for k in pipeline.all_keys()} == dict.fromkeys(
        pipeline.all_keys(), True
    )
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("eval_scores"))
    assert isinstance(event.asset_materialization.metadata["scores_table"], dg.MarkdownMetadataValue)
    # the config the run used is recorded as data, not as a string of Python reprs
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("lora_mixed_ual"))
    used = event.asset_materialization.metadata["config"].value
    assert used[0]["learning_rate"] == 0.01 and used[1] == {**used[1], "kind": "ual", "eps_max": 0.2}


def test_c_a_knob_of_one_method_retrains_only_that_method(pipeline):
    pipeline.reconfigure(**{"methods.ual.eps_max": 0.3})
    assert pipeline.stale() == {"lora_low_entropy_ual", "lora_mixed_ual"}  # (f): CODE
    before = pipeline.snapshot()
    # a bare `--select eval_scores` republishes the old scores, and says that its upstream is stale
    result = pipeline.materialize(["eval_scores"])
    stale = pipeline.latest_metadata("eval_scores")["stale_upstream"]
    assert [line.split(":")[0] for line in stale] == ["lora_low_entropy_ual", "lora_mixed_ual"], stale
    assert all("code version" in line for line in stale), stale
    warnings = [e.user_message for e in pipeline.instance.all_logs(result.run_id) if e.level == logging.WARNING]
    assert any("lora_mixed_ual" in w and "stale" in w for w in warnings), warnings
    pipeline.materialize()
    diff = changed(before, pipeline.snapshot())
    assert diff["retrained"] == {"lora_low_entropy_ual", "lora_mixed_ual"}
    assert diff["reevaluated"] == {"low_entropy/ual", "mixed/ual"}
    assert diff["elicited"] == set()
    assert pipeline.stale() == set()


def test_d_an_eval_setting_reruns_only_evaluation(pipeline):
    pipeline.reconfigure(**{"evaluation.generation.max_new_tokens": 5})
    assert pipeline.stale() == {f"eval_{s}_{m}" for s in ("low_entropy", "mixed") for m in ("sft", "ual")}
    before = pipeline.snapshot()
    pipeline.materialize()
    diff = changed(before, pipeline.snapshot())
    assert diff["retrained"] == set() and diff["elicited"] == set()
    assert diff["reevaluated"] == {"low_entropy/sft", "low_entropy/ual", "mixed/sft", "mixed/ual"}


def test_b_editing_one_source_row_reelicits_it_and_retrains_only_variants_holding_it(pipeline):
    with pipeline.paths.store().connect(read_only=True) as con:
        held = {
            r[0]
            for r in con.execute(
                "SELECT s.output FROM training_sets t JOIN samples s USING (dataset, sample_id) WHERE t.dataset = 'notes'"
            ).fetchall()
        }
    rows = [json.loads(line) for line in (pipeline.root / "notes.jsonl").read_text().splitlines()]
    target = next(i for i, r in enumerate(rows) if r["output"] in held)
    rows[target]["output"] += " Edited."
    write_jsonl(pipeline.root / "notes.jsonl", rows)
    before = pipeline.snapshot()
    # (f): Dagster sees it level by level (staleness is not transitive) and never beyond the cone
    levels = propagate_from(pipeline, "instructions_notes")
    assert levels == [
        {"uncertainty_notes"},
        {"training_set_mixed"},
        {"lora_mixed_sft", "lora_mixed_ual"},
        {"eval_mixed_sft", "eval_mixed_ual", "token_clustering"},
        {"eval_scores"},
        {"comparison_report"},
    ]
    diff = changed(before, pipeline.snapshot())
    assert len(diff["elicited"]) == 1  # exactly the edited sample
    assert diff["retrained"] == {"lora_mixed_sft", "lora_mixed_ual"}
    assert diff["reevaluated"] == {"mixed/sft", "mixed/ual"}


def propagate_from(p: Pipeline, root_key: str) -> list[set[str]]:
    p.materialize([root_key])  # the root reads the file: Dagster cannot know it changed before
    return propagate(p)


def _new_elicitor_rows(pipeline: Pipeline) -> tuple[int, int]:
    from ual_dagster.data.selection import targets_for_dataset
    from ual_dagster.elicitation import elicitor_fingerprint

    profile = load_profile(str(pipeline.profile_path))
    cfg = profile.elicitation
    # only the rows the scenarios use are elicited (issue 10): the selection, not every sample
    n_samples = sum(len(targets_for_dataset(profile, d, pipeline.paths.store())) for d in profile.datasets)
    with pipeline.paths.store().connect(read_only=True) as con:
        n_new = con.execute(
            "SELECT count(*) FROM uncertainty WHERE elicitor = ?", [elicitor_fingerprint(cfg)]
        ).fetchone()[0]
    return n_samples, n_new


def test_e_a_new_elicitation_prompt_reelicits_and_cascades(pipeline, tmp_path):
    """The bundled heuristic 'model' reads the task and the answer scale from the prompt.

    A reworded prompt is a new elicitor: every sample is asked again, but identical
    answers give identical data versions, so nothing downstream moves. A prompt that
    changes the answers (here: the scale the model is told to use) cascades to the
    training sets and to UAL's checkpoints; SFT's epsilons are all zero, so its
    checkpoints are reused.
    """
    template = (Path(__file__).parents[2] / "ual_dagster/elicitation/prompts/uncertainty_v1.txt").read_text()
    uncertainty = {"uncertainty_testbed_exact", "uncertainty_testbed_open", "uncertainty_notes"}

    reworded = tmp_path / "reworded.txt"
    reworded.write_text(template.replace("You rate", "Please rate"))
    pipeline.reconfigure(**{"elicitation.prompt": str(reworded)})
    assert pipeline.stale() == uncertainty  # (f): the elicitor changed
    before = pipeline.snapshot()
    assert propagate(pipeline) == [uncertainty]  # same answers: the cascade stops here
    n_samples, n_new = _new_elicitor_rows(pipeline)
    diff = changed(before, pipeline.snapshot())
    assert n_new == n_samples == len(diff["elicited"])  # every sample asked once under the new prompt
    assert diff["retrained"] == set() and diff["reevaluated"] == set()
    pipeline.materialize()  # a whole CLI-style run re-derives the training sets: same content, same versions
    assert pipeline.stale() == set()
    assert changed(before, pipeline.snapshot())["retrained"] == set()

    rescaled = tmp_path / "rescaled.txt"
    rescaled.write_text(template.replace("integer from 0 to ${scale_max}", "integer from 0 to 5"))
    pipeline.reconfigure(**{"elicitation.prompt": str(rescaled)})
    before = pipeline.snapshot()
    levels = propagate(pipeline)
    assert levels[:2] == [uncertainty, {"training_set_low_entropy", "training_set_mixed"}]
    diff = changed(before, pipeline.snapshot())
    assert diff["retrained"] == {"lora_low_entropy_ual", "lora_mixed_ual"}
    assert diff["reevaluated"] == {"low_entropy/ual", "mixed/ual"}
    # the report counts the current elicitor's scores only (issue 12), not every prompt's rows
    n_current = _current_samples_by_dataset(pipeline)
    report = Path(pipeline.latest_metadata("comparison_report")["report"]).read_text()
    for dataset, n in n_current.items():
        assert f"| {dataset} | {n} |" in report, (dataset, n, report)


def _current_samples_by_dataset(pipeline: Pipeline) -> dict[str, int]:
    from ual_dagster.elicitation.elicitor import elicitor_fingerprint

    cfg = load_profile(str(pipeline.profile_path)).elicitation
    with pipeline.paths.store().connect(read_only=True) as con:
        rows = con.execute(
            "SELECT dataset, count(*) FROM uncertainty WHERE elicitor = ? AND status = 'ok' GROUP BY 1",
            [elicitor_fingerprint(cfg)],
        ).fetchall()
        every_prompt = con.execute("SELECT count(*) FROM uncertainty").fetchone()[0]
    assert sum(n for _, n in rows) < every_prompt  # three prompts' rows are stored: the count must choose
    return dict(rows)


def _clustering_rows(pipeline: Pipeline) -> int:
    with pipeline.paths.store().connect(read_only=True) as con:
        return con.execute("SELECT count(*) FROM token_clustering").fetchone()[0]


def test_f_a_reverted_config_reuses_the_clustering_it_computed(pipeline):
    """A UAL knob trains new checkpoints; back on the baseline's setting they are the baseline's
    checkpoints again, whose clustering is already in the token_clustering table."""
    first = pipeline.snapshot()
    pipeline.reconfigure(**{"methods.ual.eps_max": 0.3})
    pipeline.materialize(["lora_low_entropy_ual", "lora_mixed_ual", "token_clustering"])  # evaluation is not needed
    assert set(pipeline.lora_markers()) > set(first["lora"])  # UAL's new checkpoints, beside the baseline's
    assert pipeline.latest_metadata("token_clustering")["checkpoints_computed"] == 2  # UAL's two, SFT's reused
    cached = _clustering_rows(pipeline)
    pipeline.reconfigure()  # the baseline's profile again
    before = pipeline.snapshot()
    pipeline.materialize()
    assert pipeline.lora_markers() == before["lora"]  # the earlier checkpoints, reused: no training step
    assert pipeline.checkpoint_of() == first["ckpt"]
    assert pipeline.latest_metadata("token_clustering")["checkpoints_computed"] == 0
    assert _clustering_rows(pipeline) == cached


def test_g_a_clustering_failure_does_not_block_the_scores_or_the_report(pipeline):
    pipeline.reconfigure(**{"evaluation.clustering.layers": [50]})
    result = pipeline.materialize()  # the model has 2 hidden-state layers: layer 50 fails every checkpoint
    failed = pipeline.latest_metadata("token_clustering")["failed"]
    assert set(failed) == {f"{s}/{m}" for s in ("low_entropy", "mixed") for m in ("sft", "ual")}
    assert all("IndexError" in why for why in failed.values()), failed
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "clustering_complete")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"token_clustering", "eval_scores", "comparison_report"} <= materialised
    with pipeline.paths.store().connect(read_only=True) as con:  # no clustering rows of another config left behind
        assert con.execute("SELECT count(*) FROM eval_scores WHERE benchmark = 'token_clustering'").fetchone()[0] == 0
