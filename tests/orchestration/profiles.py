"""Small profiles for the orchestration tests, written into a test's own folder.

The bundled tiny profile with a 1-layer model and LoRA settings that train in seconds on
2 cores, its state folder under the test's root, and the sections a test needs replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ual_dagster.config.loader import BUNDLED_DIR

ONE_LAYER_MODEL = {
    "vocab_size": 300,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "pretrain_batch_size": 8,
}
SMALL_LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def small_profile(
    root: Path, name: str, *, pretrain_steps: int, corpus_samples: int, training: Mapping[str, Any], **sections: Any
) -> dict:
    """The tiny profile as a dict: state under `root`, the 1-layer model, LoRA with `training`'s
    settings, and every other top-level section in `sections` replaced whole."""
    data = yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())
    data["name"] = name
    data["storage"] = {"state_dir": str(root / "state")}
    data["base_model"] = {
        "source": "build_tiny",
        "tiny": {**ONE_LAYER_MODEL, "pretrain_steps": pretrain_steps, "corpus_samples": corpus_samples},
    }
    data["training"] = {"lora": dict(SMALL_LORA), "learning_rate": 0.01, **training}
    data.update(sections)
    return data


def set_dotted(data: dict, edits: Mapping[str, Any]) -> dict:
    """Set `{"a.b.c": value}` edits in place: a test states only the settings it changes."""
    for dotted, value in edits.items():
        node = data
        *parents, leaf = dotted.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return data


def write_profile(root: Path, data: Mapping[str, Any]) -> Path:
    path = root / "profile.yaml"
    path.write_text(yaml.safe_dump(dict(data)))
    return path


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- the rebuild profile: two testbed data sets and a file of notes, two scenarios, SFT and UAL ----------

NOTES = [
    {"instruction": f"Write a short note about topic {i}.", "input": "", "output": f"Topic {i} is interesting."}
    for i in range(40)
]


def write_rebuild_profile(root: Path, **edits: Any) -> Path:
    """The rebuild tests' profile under `root` (its notes file is `root/notes.jsonl`), with dotted `edits`."""
    data = small_profile(
        root,
        "rebuild",
        pretrain_steps=6,
        corpus_samples=200,
        training={"epochs": 1, "batch_size": 8, "max_length": 64, "save_every_steps": 50},
        datasets={
            "testbed_exact": {
                "source": "testbed",
                "entropy": "low",
                "testbed": {"kind": "single_answer", "n_samples": 120, "heldout_fraction": 0.1, "seed": 0},
            },
            "testbed_open": {
                "source": "testbed",
                "entropy": "high",
                "testbed": {"kind": "many_answers", "n_samples": 120, "heldout_fraction": 0.1, "seed": 1},
            },
            "notes": {
                "source": "file",
                "entropy": "high",
                "path": str(root / "notes.jsonl"),
                "format": "alpaca_jsonl",
            },
        },
        scenarios={
            "low_entropy": {"size": 24, "weights": {"testbed_exact": 1.0}},
            "mixed": {"size": 30, "weights": {"testbed_open": 0.4, "testbed_exact": 0.3, "notes": 0.3}},
        },
        methods={"sft": {"kind": "sft"}, "ual": {"kind": "ual", "eps_min": 0.0, "eps_max": 0.2}},
    )
    data["elicitation"]["concurrency"] = 8
    ev = data["evaluation"]
    ev["generation"] = {"max_new_tokens": 6, "temperature": 0.0, "batch_size": 16, "stop_strings": ["\n"]}
    ev["lm_eval"] = [{"name": "testbed_exact_heldout", "limit": 6}]
    ev["alpaca_eval"] = {"instructions": "testbed_heldout", "limit": 6, "judge": {"kind": "testbed"}}
    ev["clustering"] = {"probe_samples": 6, "max_tokens": 200, "layers": [-1]}
    return write_profile(root, set_dotted(data, edits))


def materialize_profile(path: Path, instance) -> dict[str, dict]:
    """Materialise every asset of the profile at `path` in `instance`; each asset's metadata by key."""
    import dagster as dg

    from assets.definitions import build_definitions
    from ual_dagster.config import load_profile

    defs = build_definitions(load_profile(str(path)))
    result = dg.materialize(list(defs.assets), resources=defs.resources, instance=instance)
    assert result.success
    metadata = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        metadata[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return metadata


def finished_checkpoints(root: Path) -> dict[str, int]:
    """Each finished LoRA checkpoint of the profile in `root` (its folder name) and its marker's mtime."""
    from ual_dagster.config import load_profile
    from ual_dagster.storage import StatePaths

    lora = StatePaths.for_profile(load_profile(str(root / "profile.yaml"))).artifacts / "lora"
    return {p.parent.name: p.stat().st_mtime_ns for p in lora.glob("*/_FINISHED.json")}
