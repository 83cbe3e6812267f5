"""Token clustering in feature space: do a checkpoint's hidden states group by token identity?

The paper reports that UAL gives better-separated token clusters. We feed a fixed,
seeded probe set of held-out (prompt, reference response) pairs through each
checkpoint, take the hidden states at response-token positions, and score how well
they cluster by token id (silhouette: higher is better; Davies-Bouldin: lower is
better) on a seeded sample of tokens whose id occurs at least twice.

Results are kept per clustering fingerprint in DuckDB table `token_clustering` (never
deleted), so reverting a config finds the checkpoints it already scored. A probe set that
cannot be clustered (too few repeated tokens) is a property of the inputs: it raises
ClusteringInputError, and that outcome is kept too, so it is not recomputed either.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ual_dagster import versions
from ual_dagster.config.evaluation import ClusteringConfig
from ual_dagster.evaluation.eval_data import EvalData, HeldoutItem
from ual_dagster.evaluation.models import CheckpointHandle, LoadedCheckpoint
from ual_dagster.evaluation.scores import ScoreRow
from ual_dagster.fingerprint import stable_hash
from ual_dagster.progress import Log, Progress
from ual_dagster.storage import DuckDBStore
from ual_dagster.train.prompts import prompt_token_ids, render_prompt

BENCHMARK = "token_clustering"
CACHE_DDL = """
CREATE TABLE IF NOT EXISTS token_clustering (
    fingerprint VARCHAR PRIMARY KEY,  -- clustering_fingerprint(checkpoint, config, probe data, prompt template)
    checkpoint VARCHAR NOT NULL,
    status VARCHAR NOT NULL,          -- 'ok' or 'failed' (ClusteringInputError: the inputs cannot be clustered)
    rows VARCHAR,                     -- JSON list of the score rows (ScoreRow.as_json)
    error VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
)
"""


class ClusteringInputError(ValueError):
    """The probe set cannot be clustered (no response tokens, too few repeated token ids)."""


@dataclass(frozen=True)
class CachedClustering:
    fingerprint: str
    rows: list[ScoreRow]
    error: str | None  # set when the inputs could not be clustered


def load_clustering(store: DuckDBStore, fingerprint: str) -> CachedClustering | None:
    """The stored outcome for this fingerprint, or None when it was never computed."""
    with store.connect() as con:
        con.execute(CACHE_DDL)
        row = con.execute("SELECT rows, error FROM token_clustering WHERE fingerprint = ?", [fingerprint]).fetchone()
    if row is None:
        return None
    rows = [ScoreRow(**r) for r in json.loads(row[0] or "[]")]
    return CachedClustering(fingerprint, rows, row[1])


def save_clustering(
    store: DuckDBStore, fingerprint: str, checkpoint_fp: str, rows: list[ScoreRow], error: str | None = None
) -> CachedClustering:
    with store.connect() as con:
        con.execute(CACHE_DDL)
        con.execute(
            "INSERT OR REPLACE INTO token_clustering (fingerprint, checkpoint, status, rows, error) VALUES (?, ?, ?, ?, ?)",
            [
                fingerprint,
                checkpoint_fp,
                "failed" if error else "ok",
                json.dumps([r.as_json() for r in rows], default=str),
                error,
            ],
        )
    return CachedClustering(fingerprint, list(rows), error)


def probe_items(eval_data: EvalData, n: int, seed: int) -> list[HeldoutItem]:
    items = eval_data.all_items()
    rng = random.Random(seed)
    return sorted(rng.sample(items, min(n, len(items))), key=lambda it: (it.dataset, it.sample_id))


@torch.no_grad()
def response_hidden_states(
    loaded: LoadedCheckpoint,
    items: list[HeldoutItem],
    layers: list[int],
    prompt_template: str,
    log: Log = None,
    label: str = "",
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """({layer: (tokens, hidden)}, token ids) over the response tokens of every probe item."""
    tok, model = loaded.tokenizer, loaded.model
    feats: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    ids: list[np.ndarray] = []
    with Progress(f"token clustering {label}".rstrip(), len(items), log, unit="items") as progress:
        for it in items:
            prompt = render_prompt(it.instruction, it.input, prompt_template)
            prompt_ids = prompt_token_ids(tok, prompt)
            response_ids = tok(it.output, add_special_tokens=False)["input_ids"]
            if response_ids:
                n_prompt = len(prompt_ids)
                input_ids = torch.tensor([prompt_ids + response_ids], device=loaded.device)
                out = model(input_ids=input_ids, output_hidden_states=True)
                for layer in layers:
                    feats[layer].append(out.hidden_states[layer][0, n_prompt:].float().cpu().numpy())
                ids.append(np.array(response_ids))
            progress.advance()
    if not ids:
        raise ClusteringInputError(f"token clustering: none of the {len(items)} probe items has response tokens")
    return {layer: np.concatenate(f) for layer, f in feats.items()}, np.concatenate(ids)


def cluster_quality(hidden: np.ndarray, labels: np.ndarray, max_tokens: int, seed: int) -> dict[str, Any]:
    """Silhouette and Davies-Bouldin of `hidden` grouped by `labels` (ids seen at least twice)."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    ids, counts = np.unique(labels, return_counts=True)
    keep = np.isin(labels, ids[counts >= 2])
    x, y = hidden[keep], labels[keep]
    if len(x) > max_tokens:
        idx = np.random.default_rng(seed).choice(len(x), size=max_tokens, replace=False)
        x, y = x[idx], y[idx]
    n_labels = len(np.unique(y))
    if n_labels < 2 or n_labels >= len(x):
        raise ClusteringInputError(
            f"token clustering needs at least 2 token ids seen twice or more and fewer ids than tokens "
            f"(got {n_labels} ids over {len(x)} tokens)"
        )
    return {
        "silhouette": float(silhouette_score(x, y, random_state=seed)),
        "davies_bouldin": float(davies_bouldin_score(x, y)),
        "n_tokens": int(len(x)),
        "n_token_ids": int(n_labels),
    }


def plot_projection(hidden: np.ndarray, labels: np.ndarray, title: str, path: Path, top_k: int = 10) -> Path:
    """2-D PCA of the hidden states, the `top_k` most frequent token ids coloured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, random_state=0).fit_transform(hidden)
    ids, counts = np.unique(labels, return_counts=True)
    top = ids[np.argsort(-counts)[:top_k]]
    fig, ax = plt.subplots(figsize=(6, 5))
    other = ~np.isin(labels, top)
    ax.scatter(xy[other, 0], xy[other, 1], s=4, c="lightgrey", label="other")
    for tid in top:
        m = labels == tid
        ax.scatter(xy[m, 0], xy[m, 1], s=8, label=f"id {int(tid)}")
    ax.set_title(title)
    ax.legend(fontsize=6, markerscale=2, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class ClusteringResult:
    fingerprint: str
    rows: list[ScoreRow]
    plots: list[Path]
    metadata: dict[str, Any] = field(default_factory=dict)


def clustering_fingerprint(checkpoint_fp: str, cfg: ClusteringConfig, eval_data: EvalData, prompt_template: str) -> str:
    return stable_hash(
        versions.CLUSTERING, checkpoint_fp, cfg.model_dump(mode="json"), eval_data.fingerprint, prompt_template
    )


def cluster_checkpoint(
    base_path: str | Path,
    adapter_path: str | Path | None,
    checkpoint_fp: str,
    cfg: ClusteringConfig,
    eval_data: EvalData,
    out_dir: str | Path,
    device: str = "auto",
    prompt_template: str = "alpaca",
    label: str | None = None,
    log: Log = None,
) -> ClusteringResult:
    """Rows (benchmark 'token_clustering', metrics 'silhouette@L<layer>', 'davies_bouldin@L<layer>') and plots."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    items = probe_items(eval_data, cfg.probe_samples, cfg.seed)
    with CheckpointHandle(base_path, adapter_path, device, log) as handle:
        feats, ids = response_hidden_states(
            handle.get(), items, cfg.layers, prompt_template, log, label or checkpoint_fp
        )
    rows: list[ScoreRow] = []
    plots: list[Path] = []
    for layer, hidden in feats.items():
        q = cluster_quality(hidden, ids, cfg.max_tokens, cfg.seed)
        details = {"n_token_ids": q["n_token_ids"], "probe_items": len(items)}
        rows.append(ScoreRow(BENCHMARK, f"silhouette@L{layer}", q["silhouette"], None, q["n_tokens"], details))
        rows.append(ScoreRow(BENCHMARK, f"davies_bouldin@L{layer}", q["davies_bouldin"], None, q["n_tokens"], details))
        name = label or checkpoint_fp
        plots.append(plot_projection(hidden, ids, f"{name}: layer {layer} (PCA)", out_dir / f"pca_L{layer}.png"))
    fp = clustering_fingerprint(checkpoint_fp, cfg, eval_data, prompt_template)
    metadata = {
        "probe_items": len(items),
        "response_tokens": int(len(ids)),
        "scores": {r.metric: r.value for r in rows},
        "plots": [str(p) for p in plots],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if log:
        log(f"token clustering {label or checkpoint_fp}: {metadata['scores']}")
    return ClusteringResult(fp, rows, plots, metadata)
