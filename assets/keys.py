"""Every asset key of the pipeline, in one place, in pipeline order.

Keys are one word each, named after the step, because the UI labels a graph node with the
last part of its key only (`instruction_sets/x` and `uncertainty/x` would both read "x").
Each asset module imports the keys of its upstream assets from here, never from another
asset module, so the asset layer has no import cycles.
"""

import dagster as dg

PREFLIGHT_KEY = dg.AssetKey(["preflight"])
BASE_MODEL_KEY = dg.AssetKey(["base_model"])
EVAL_SETS_KEY = dg.AssetKey(["eval_sets"])
EVAL_SCORES_KEY = dg.AssetKey(["eval_scores"])
TOKEN_CLUSTERING_KEY = dg.AssetKey(["token_clustering"])
REPORT_KEY = dg.AssetKey(["comparison_report"])


def instruction_set_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(f"instructions_{dataset}")


def uncertainty_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey(f"uncertainty_{dataset}")


def training_set_key(scenario: str) -> dg.AssetKey:
    return dg.AssetKey(f"training_set_{scenario}")


def lora_key(scenario: str, method: str) -> dg.AssetKey:
    return dg.AssetKey(f"lora_{scenario}_{method}")


def evaluation_key(scenario: str, method: str) -> dg.AssetKey:
    return dg.AssetKey(f"eval_{scenario}_{method}")


def key_str(key: dg.AssetKey) -> str:
    return key.to_user_string()
