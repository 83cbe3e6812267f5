"""Result versions: one per step that produces something, all in one place.

A version enters its step's fingerprint (so a bump rebuilds the step's rows or artifacts,
and everything downstream of them) and its asset's code_version (so the UI shows the asset
stale before anything runs). Bump a version when a code change alters what the step
produces; leave it when the change is only a refactor, a speed-up or a new log line.

Nobody remembers that by hand, so `SOURCES` names the files each version stands for, and
tests/test_versions.py compares their code (comments, docstrings and formatting ignored)
with `versions.lock.json`. When it fails, decide: the output changes, so bump the version;
or it does not. Either way record the decision with

    python -m ual_dagster.versions
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

# data: loading, normalising and generating instruction sets
LOADERS = "loaders-2"  # 2: Dolly/MetaMathQA/ShareGPT, GSM8K final-answer marker
# elicitation: the prompt, the answer parsing and every backend's way to a score
ELICITATION = "elicitation-v1"
ORACLE = "intrinsic-v1"  # the testbed's known uncertainty, used as a score
UNCERTAINTY_ASSET = "uncertainty-asset-1"
# training
TRAINING_SETS = "training_sets-1"
BASE_MODEL = "base_model-1"
LORA = "lora-train-1"
# evaluation
EVAL_SETS = "eval-sets-1"
GENERATION = "generate-v2"  # 2: transformers stop_strings; a stop string may now span the prompt's end
EVALUATION = "evaluate-checkpoint-v2"
LM_EVAL = "lm-eval-runner-v1"
ALPACA_EVAL = "alpaca-eval-v1"
ANSWER_LIKELIHOOD = "answer-likelihood-v1"
CLUSTERING = "token-clustering-v1"
EVAL_PIPELINE = "eval-pipeline-1"
# 4: +1.81 labelled as the mean over MetaMath and GSM8K, never beside GSM8K alone;
# 5: the training-curve plot shows the plain token NLL, one significance mark (Holm), identical contrasts labelled
# 6: dose-response plots of experiment.sweep; the one-sentence caveat of a run with fewer than 3 seeds
# 7: a sentence when too few bootstrap resamples let no contrast pass Holm
REPORT = "comparison-report-v7"
PREFLIGHT = "preflight-2"  # 2: HF_TOKEN check for gated base models; a hub refusal is named as such

PACKAGE = Path(__file__).resolve().parent
LOCK = PACKAGE / "versions.lock.json"

# The files whose code decides each version's output (paths relative to ual_dagster/).
SOURCES: dict[str, tuple[str, ...]] = {
    LOADERS: (
        "data/loaders.py",
        "data/records.py",
        "data/samples.py",
        "data/build.py",
        "data/hub.py",
        "data/source.py",
        "data/testbed.py",
        "testbed_families.py",
    ),
    ELICITATION: (
        "elicitation/prompt.py",
        "elicitation/parsing.py",
        "elicitation/heuristic.py",
        "elicitation/local_server.py",
        "elicitation/model_server.py",
        "elicitation/backends/openai_api.py",
        "elicitation/backends/hf_local.py",
        "elicitation/backends/file_import.py",
        "elicitation/prompts/uncertainty_v1.txt",
    ),
    ORACLE: ("elicitation/backends/oracle.py",),
    UNCERTAINTY_ASSET: ("data/selection.py",),
    TRAINING_SETS: ("train/training_sets.py", "data/selection.py"),
    BASE_MODEL: ("train/base_model.py", "train/corpus.py"),
    LORA: (
        "train/trainer.py",
        "train/loss.py",
        "train/lm_loss.py",
        "train/step.py",
        "train/batch.py",
        "train/examples.py",
        "train/prompts.py",
        "train/records.py",
        "train/epsilon.py",
        "train/versioning.py",
    ),
    EVAL_SETS: ("evaluation/eval_sets.py", "evaluation/eval_data.py"),
    GENERATION: ("evaluation/models.py", "train/prompts.py"),
    EVALUATION: ("evaluation/checkpoint_eval.py",),
    LM_EVAL: (
        "evaluation/lm_eval_runner.py",
        "evaluation/tasks/gsm8k_local.yaml",
        "evaluation/tasks/gsm8k_ual.yaml",
        "evaluation/tasks/testbed_exact_heldout.yaml",
    ),
    ALPACA_EVAL: ("evaluation/alpaca.py", "evaluation/judges/testbed_judge.py", "evaluation/judges/client_config.py"),
    ANSWER_LIKELIHOOD: ("evaluation/answer_likelihood.py",),
    CLUSTERING: ("evaluation/clustering.py",),
    EVAL_PIPELINE: (
        "evaluation/pipeline.py",
        "evaluation/scores.py",
        "evaluation/comparisons.py",
        "evaluation/stats.py",
    ),
    REPORT: ("evaluation/report.py", "figures.py"),
    PREFLIGHT: ("preflight.py",),
}


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(relative: str) -> str:
    """The file's code: Python as its syntax tree without docstrings (so comments, docstrings
    and formatting do not count), any other file (templates, task YAML) byte for byte."""
    path = PACKAGE / relative
    if path.suffix == ".py":
        text = ast.unparse(_without_docstrings(ast.parse(path.read_text(encoding="utf-8"))))
    else:
        text = path.read_text(encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_digests() -> dict[str, dict[str, str]]:
    """version -> {source file: digest}, as the code stands now."""
    return {version: {f: source_digest(f) for f in files} for version, files in SOURCES.items()}


def recorded_digests() -> dict[str, dict[str, str]]:
    return json.loads(LOCK.read_text()) if LOCK.exists() else {}


def changed_without_a_bump() -> list[str]:
    """One line per source file whose code differs from what its (unchanged) version recorded."""
    recorded = recorded_digests()
    out = []
    for version, digests in current_digests().items():
        if version not in recorded:
            out.append(f"{version}: not recorded yet")
            continue
        for f, digest in digests.items():
            if recorded[version].get(f) != digest:
                out.append(f"{version}: ual_dagster/{f} changed")
    return out


def record() -> None:
    LOCK.write_text(json.dumps(current_digests(), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    changed = changed_without_a_bump()
    record()
    print("\n".join(changed) or "nothing changed", f"\nrecorded {LOCK}", sep="")
