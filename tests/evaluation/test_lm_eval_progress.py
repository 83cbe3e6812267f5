"""lm-eval steps report progress to the run's log (not only tqdm on stderr): a line per batch
here (PROGRESS_EVERY_S = 0), each with the requests done and an ETA, ending with 'done'.
The heartbeat thread (a line when no batch finished for every_s) is Progress's own, tested in
tests/test_progress.py; here it is left out, so the lines are exactly the batches'."""

from __future__ import annotations

import re

from ual_dagster.config.evaluation import GenerationConfig, LmEvalTaskConfig
from ual_dagster.evaluation import lm_eval_runner
from ual_dagster.evaluation.eval_data import EvalData, HeldoutItem
from ual_dagster.evaluation.lm_eval_runner import run_lm_eval
from ual_dagster.evaluation.models import CheckpointHandle
from ual_dagster.progress import Progress

GEN = GenerationConfig(max_new_tokens=4, batch_size=2, stop_strings=["\n"])
LINE = re.compile(
    r"^lm-eval testbed_exact_heldout generate: (\d+)/7 requests \(\d+%\), \d+s elapsed, (ETA \S+|ETA unknown|done)$"
)


def test_lm_eval_logs_progress_with_an_eta_per_batch(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(lm_eval_runner, "PROGRESS_EVERY_S", 0.0)

    class NoHeartbeat(Progress):
        def __enter__(self) -> "NoHeartbeat":
            return self

    monkeypatch.setattr(lm_eval_runner, "Progress", NoHeartbeat)
    items = [HeldoutItem(f"s{i}", "testbed_exact", f"Add {i} and 1.", "", str(i + 1), (str(i + 1),)) for i in range(7)]
    lines: list[str] = []
    with CheckpointHandle(tiny_checkpoint.base_path, tiny_checkpoint.adapter_path, "cpu") as handle:
        run_lm_eval(
            handle,
            tiny_checkpoint.fingerprint,
            [LmEvalTaskConfig(name="testbed_exact_heldout")],
            EvalData({"testbed_exact": items}),
            GEN,
            tmp_path,
            log=lines.append,
        )
    progress = [m for m in map(LINE.match, lines) if m]
    done = [int(m.group(1)) for m in progress]
    # 7 requests in batches of 2: a line per batch (the last capped below 7), then 'done'
    assert done == [2, 4, 6, 6, 7]
    assert progress[-1].group(2) == "done"
    assert any(m.group(2).startswith("ETA ") and m.group(2) != "ETA unknown" for m in progress[:-1])
