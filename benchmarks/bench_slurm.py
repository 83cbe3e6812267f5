"""What Slurm costs per step: the `slurm` profile against the same profile in process.

    .venv/bin/python benchmarks/bench_slurm.py [--full] [--keep DIR]

Writes two profiles that `extends: slurm` (state in a temporary folder): one as bundled
(training and evaluation as Slurm jobs, 1 CPU each), one with both launchers `in_process`
and one torch thread per step (OMP_NUM_THREADS=1, the threads of a 1-CPU job). Each runs
`dagster asset materialize --select '*eval_scores+'` from an empty state folder, as a
user would, and the script prints both wall times, their ratio, the jobs submitted and
the cost per job. Without --full the profile is shrunk (a 1-layer model, 80 samples,
one scenario, sft + ual) so the figures come in minutes; with --full it is the bundled
profile's own sizes (tiny's: several minutes a run). Needs a running Slurm
(scripts/slurm_cluster.sh start).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "base_model": {
        "source": "build_tiny",
        "tiny": {
            "vocab_size": 300,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "pretrain_steps": 4,
            "corpus_samples": 100,
        },
    },
    "training": {"epochs": 1, "batch_size": 8, "max_length": 48},
    "datasets": {
        "testbed_exact": {
            "source": "testbed",
            "entropy": "low",
            "testbed": {"kind": "single_answer", "n_samples": 80, "heldout_fraction": 0.1, "seed": 0},
        },
        "testbed_open": {
            "source": "testbed",
            "entropy": "high",
            "testbed": {"kind": "many_answers", "n_samples": 80, "heldout_fraction": 0.1, "seed": 1},
        },
    },
    # tiny's other scenarios and its ls method are removed (null), so 2 variants remain
    "scenarios": {"low_entropy": {"size": 24}, "high_entropy": None, "mixed": None},
    "methods": {"ls": None},
    "evaluation": {
        "generation": {"max_new_tokens": 6, "batch_size": 16, "stop_strings": ["\n"]},
        "lm_eval": [{"name": "testbed_exact_heldout", "limit": 6}],
        "alpaca_eval": {"instructions": "testbed_heldout", "limit": 6, "judge": {"kind": "testbed"}},
        "answer_likelihood": {"datasets": ["testbed_exact", "testbed_open"], "limit": 6},
        "clustering": {"probe_samples": 6, "max_tokens": 200, "layers": [-1]},
    },
}
JOB = re.compile(r"slurm job (\d+) \((ual-[a-z]+-[0-9a-f]{12})\)")


def write_profile(folder: Path, *, slurm: bool, full: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data: dict = {"extends": "slurm", "name": f"bench_{'slurm' if slurm else 'in_process'}"}
    data["storage"] = {"state_dir": str(folder / "state")}
    data["orchestration"] = {"automation": False, "reelicit_schedule": False}
    if not full:
        data.update(yaml.safe_load(yaml.safe_dump(SMALL)))
    if not slurm:
        data.setdefault("training", {})["launcher"] = "in_process"
        data.setdefault("evaluation", {})["launcher"] = "in_process"
    path = folder / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def materialize(profile: Path) -> tuple[float, str]:
    from ual_dagster.config import load_profile
    from ual_dagster.storage import StatePaths

    paths = StatePaths.for_profile(load_profile(str(profile))).ensure()
    env = {
        **os.environ,
        "UAL_PROFILE": str(profile),
        "DAGSTER_HOME": str(paths.dagster_home),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "assets.definitions"]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--select", "*eval_scores+"], cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        sys.stderr.write(log[-5000:])
        raise SystemExit(f"{profile}: the run failed with exit code {proc.returncode}")
    return elapsed, log


def main() -> None:
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the bundled profile's sizes (tiny's)")
    parser.add_argument("--keep", help="write the state folders here and keep them (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_slurm_") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        local_s, _ = materialize(write_profile(root / "in_process", slurm=False, full=args.full))
        print(f"in_process (1 thread per step): {local_s:8.1f} s", flush=True)
        slurm_s, log = materialize(write_profile(root / "slurm", slurm=True, full=args.full))
        jobs = sorted(set(JOB.findall(log)))
        print(f"slurm (1 CPU per job):          {slurm_s:8.1f} s   {len(jobs)} jobs", flush=True)
        extra = slurm_s - local_s
        per_job = f"{extra / len(jobs):+.1f} s per job" if jobs else "no job ids in the log"
        print(f"slurm / in_process: {slurm_s / local_s:.2f}x ({extra:+.1f} s, {per_job})")


if __name__ == "__main__":
    main()
