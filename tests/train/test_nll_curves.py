"""Training curves carry the plain token NLL (cross-entropy without smoothing, on the same
tokens) beside each method's objective: from the same pass of the loss, checked against an
independent float64 reference; written to DuckDB `training_curves.nll` (also into a table
from before the column existed); the report's curve plot shows it, and fits the preview."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from ual_dagster.evaluation.report import MAX_FIGURE_PX, plot_training_curves
from ual_dagster.storage import ArtifactStore, DuckDBStore
from ual_dagster.train.checkpoints import complete_checkpoint
from ual_dagster.train.loss import TokenNLL, uncertainty_smoothed_linear_loss, uncertainty_smoothed_loss
from ual_dagster.train.records import TrainResult
from ual_dagster.train.trainer import train_lora

from .conftest import make_examples
from .test_trainer import CFG

IGNORE = -100


def reference_nll_sum(logits: torch.Tensor, labels: torch.Tensor) -> float:
    logp = logits.double().log_softmax(-1)
    mask = labels != IGNORE
    return float((-logp.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1) * mask).sum())


@pytest.mark.parametrize("path", ["logits", "linear"])
def test_the_loss_reports_the_plain_nll_of_the_same_tokens_and_is_unchanged(path):
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 7, 16, generator=g)
    weight = torch.randn(29, 16, generator=g) * 0.5
    labels = torch.randint(0, 29, (2, 7), generator=g)
    labels[0, :3] = IGNORE
    eps = torch.tensor([0.1, 0.3])  # smoothing: the objective is not the NLL
    logits = hidden @ weight.T
    acc = TokenNLL()
    if path == "logits":
        loss = uncertainty_smoothed_loss(logits, labels, eps, chunk_tokens=4, nll=acc)
        plain = uncertainty_smoothed_loss(logits, labels, eps, chunk_tokens=4)
    else:
        loss = uncertainty_smoothed_linear_loss(hidden, weight, labels, eps, chunk_tokens=4, nll=acc)
        plain = uncertainty_smoothed_linear_loss(hidden, weight, labels, eps, chunk_tokens=4)
    assert torch.equal(loss, plain)  # reporting the NLL changes nothing
    n = int((labels != IGNORE).sum())
    assert acc.tokens == n
    assert acc.total == pytest.approx(reference_nll_sum(logits, labels), rel=1e-5)
    assert acc.mean * n == pytest.approx(acc.total) and abs(acc.mean - float(loss)) > 1e-3


@pytest.mark.slow
def test_training_curves_carry_nll_equal_to_the_loss_for_sft_only(tiny_base, tmp_path):
    cfg = CFG.model_copy(update={"epochs": 1, "grad_accum": 2})
    sft = train_lora(tiny_base, make_examples(16, epsilon=0.0), cfg, tmp_path / "sft")
    ls = train_lora(tiny_base, make_examples(16, epsilon=0.2), cfg, tmp_path / "ls")
    assert all(r["nll"] == pytest.approx(r["loss"], rel=1e-5) for r in sft.curve)  # eps 0: the same number
    assert all(r["nll"] != pytest.approx(r["loss"], rel=1e-3) for r in ls.curve)
    # the first step has seen the same base model: the same NLL on the same tokens whatever the eps
    assert ls.curve[0]["nll"] == pytest.approx(sft.curve[0]["nll"], rel=1e-5)


def test_the_curves_table_gains_nll_also_in_an_existing_database(tmp_path):
    store = DuckDBStore(tmp_path / "ual.duckdb")
    with store.connect() as con:  # a table as an older version created it
        con.execute(
            "CREATE TABLE training_curves (scenario VARCHAR NOT NULL, method VARCHAR NOT NULL, seed INTEGER, "
            "checkpoint VARCHAR NOT NULL, step INTEGER NOT NULL, loss DOUBLE, lr DOUBLE, tokens BIGINT, "
            "tokens_per_s DOUBLE, eps_mean DOUBLE)"
        )
        con.execute("INSERT INTO training_curves VALUES ('old', 'sft', 0, 'c0', 1, 2.0, 0.1, 10, 1.0, 0.0)")
    arts = ArtifactStore(tmp_path / "artifacts")
    out = arts.open("lora", "fp1")
    plan = SimpleNamespace(
        scenario="mixed", method="ls", seed=0, fingerprint="fp1", examples=[1], out_dir=out, eps_summary={}
    )
    curve = [
        {"step": 1, "loss": 2.5, "nll": 2.2, "lr": 0.1, "tokens": 10, "tokens_per_s": 1.0, "eps_mean": 0.1},
        {"step": 2, "loss": 2.0, "nll": 1.7, "lr": 0.1, "tokens": 20, "tokens_per_s": 1.0, "eps_mean": 0.1},
    ]
    result = TrainResult(
        steps=2, final_loss=2.0, curve=curve, tokens_per_s=1.0, eps_stats={"histogram": {}}, resumed_from_step=0
    )
    complete_checkpoint(store, arts, plan, result)
    with store.connect() as con:
        rows = con.execute("SELECT scenario, step, loss, nll FROM training_curves ORDER BY scenario, step").fetchall()
    assert rows == [("mixed", 1, 2.5, 2.2), ("mixed", 2, 2.0, 1.7), ("old", 1, 2.0, None)]


def test_the_report_plots_nll_and_fits_the_preview(tmp_path: Path):
    from PIL import Image

    rows = []
    for scen in ("high_entropy", "low_entropy", "mixed"):
        for method, offset in (("sft", 0.0), ("ls", 0.3)):
            for step in range(1, 6):
                rows.append(
                    {"scenario": scen, "method": method, "seed": 0, "step": step, "loss": 3 - 0.1 * step + offset}
                    | {"nll": 3 - 0.1 * step}
                )
    curves = pd.DataFrame(rows)
    path = plot_training_curves(curves, tmp_path / "c.png")
    width, _ = Image.open(path).size
    assert width <= MAX_FIGURE_PX
    import matplotlib.pyplot as plt

    # what is drawn is the nll column: capture the line data through matplotlib
    plotted: list[list[float]] = []
    real_plot = plt.Axes.plot

    def spy(self, *args, **kwargs):
        if len(args) >= 2:
            plotted.append([float(v) for v in args[1]])
        return real_plot(self, *args, **kwargs)

    plt.Axes.plot = spy
    try:
        plot_training_curves(curves, tmp_path / "d.png")
    finally:
        plt.Axes.plot = real_plot
    assert plotted and all(ys == [3 - 0.1 * s for s in range(1, 6)] for ys in plotted if ys)
