"""A hub base model is downloaded once, by the main process, before any rank loads it.

The ordering is checked with real ranks: two processes under torch.distributed.run (what
`accelerate launch` starts), each with the Accelerator train_lora makes, run
trainer.resolve_base_model against a stand-in for the hub download (no network here). The
stand-in on a non-main rank reads only the cache and fails if the main process has not
filled it yet, so a wrong order fails the test rather than racing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ual_dagster.config.training import TrainingConfig
from ual_dagster.train import trainer
from ual_dagster.train.records import TrainExample

RANK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    from accelerate import Accelerator

    from ual_dagster.train import trainer

    log, cache = Path(sys.argv[1]), Path(sys.argv[2])
    cache.mkdir(parents=True, exist_ok=True)
    snapshot = cache / "models--org--base" / "snapshots" / "abc123"


    def fake_download(repo_id, revision, *, local_files_only):
        rank = int(os.environ["RANK"])
        if local_files_only:
            (cache / f"rank{rank}_looked").touch()
            if not (snapshot / "config.json").is_file():
                raise FileNotFoundError(f"rank {rank}: {repo_id}@{revision} is not in the cache yet")
        else:
            # Give another rank time to look too early, as it would without the barrier: the
            # test then fails on its FileNotFoundError instead of passing by luck.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not list(cache.glob("rank*_looked")):
                time.sleep(0.05)
            snapshot.mkdir(parents=True)
            (snapshot / "config.json").write_text("{}")
        with open(log, "a") as fh:
            fh.write(json.dumps({"rank": rank, "repo": repo_id, "revision": revision,
                                 "local_files_only": local_files_only}) + "\\n")
        return str(snapshot)


    trainer.download_hub_model = fake_download
    accelerator = Accelerator(cpu=True)  # as train_lora makes it on a machine without CUDA
    assert accelerator.num_processes == 2, accelerator.state
    path = trainer.resolve_base_model("org/base", "abc123", state=accelerator)
    with open(log, "a") as fh:
        fh.write(json.dumps({"rank": accelerator.process_index, "loads": path}) + "\\n")
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_download_once_main_first_then_both_load_the_snapshot(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    log = tmp_path / "events.jsonl"
    cache = tmp_path / "hf_home" / "hub"
    env = {**os.environ, "PYTHONPATH": str(Path.cwd()), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script), str(log), str(cache)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    events = [json.loads(line) for line in log.read_text().splitlines()]
    downloads = [e for e in events if "local_files_only" in e]
    # exactly one network download, by rank 0, before rank 1 looked (rank 1 only reads the cache)
    assert [(e["rank"], e["local_files_only"]) for e in downloads] == [(0, False), (1, True)]
    assert {(e["repo"], e["revision"]) for e in downloads} == {("org/base", "abc123")}
    snapshot = str(cache / "models--org--base" / "snapshots" / "abc123")
    assert sorted((e["rank"], e["loads"]) for e in events if "loads" in e) == [(0, snapshot), (1, snapshot)]


class _OneProcess:
    """The single-process state train_lora has outside `accelerate launch`."""

    is_main_process = True

    def __init__(self) -> None:
        self.entered = 0

    def main_process_first(self):
        import contextlib

        self.entered += 1
        return contextlib.nullcontext()


def test_a_model_directory_is_used_as_it_is_and_nothing_is_downloaded(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a local directory must not be downloaded")

    monkeypatch.setattr(trainer, "download_hub_model", no_download)
    assert trainer.resolve_base_model(str(tmp_path), None, state=_OneProcess()) == str(tmp_path)


def test_one_process_downloads_the_pinned_revision_itself(monkeypatch):
    calls = []
    monkeypatch.setattr(
        trainer,
        "download_hub_model",
        lambda repo, rev, *, local_files_only: calls.append((repo, rev, local_files_only)) or "/snap",
    )
    state = _OneProcess()
    assert trainer.resolve_base_model("meta-llama/Llama-2-7b-hf", "01c7f73d", state=state) == "/snap"
    assert calls == [("meta-llama/Llama-2-7b-hf", "01c7f73d", False)] and state.entered == 1


def test_train_lora_resolves_the_base_model_before_loading_it(tmp_path, monkeypatch):
    order = []

    class Stop(Exception):
        pass

    def fake_resolve(base_path, revision, *, state):
        order.append(("resolve", base_path, revision, type(state).__name__))
        return "/cache/snapshot"

    def fake_load(path, cfg, mixed, revision=None):
        order.append(("load", path, revision))
        raise Stop

    monkeypatch.setattr(trainer, "resolve_base_model", fake_resolve)
    monkeypatch.setattr(trainer, "_load_model", fake_load)
    examples = [TrainExample(instruction="q", input="", output="a", epsilon=0.0)]
    expected = [("resolve", "org/base", "abc123", "Accelerator"), ("load", "/cache/snapshot", "abc123")]
    # the base model's path is a model_ref `<hub id>@<revision>`: its revision is what is fetched and loaded
    with pytest.raises(Stop):
        trainer.train_lora("org/base@abc123", examples, TrainingConfig(), tmp_path)
    assert order == expected


def test_only_one_weight_format_is_fetched_when_safetensors_exist():
    both = ["config.json", "model-00001-of-00002.safetensors", "pytorch_model-00001-of-00002.bin", "tokenizer.model"]
    patterns = trainer.hub_ignore_patterns(both)
    assert "*.bin" in patterns and not any(p.endswith(".safetensors") for p in patterns)
    # a repository with only .bin weights keeps them
    assert trainer.hub_ignore_patterns(["config.json", "pytorch_model.bin"]) == []


def test_the_download_asks_the_hub_for_the_pinned_revision_and_skips_duplicate_weights(monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    calls = []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "list_repo_files",
        lambda self, repo_id, revision=None: ["config.json", "model.safetensors", "pytorch_model.bin"],
    )
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: calls.append((repo_id, kw)) or "/s")
    assert trainer.download_hub_model("org/base", "abc123", local_files_only=False) == "/s"
    assert trainer.download_hub_model("org/base", "abc123", local_files_only=True) == "/s"
    (repo, first), (_, second) = calls
    assert repo == "org/base" and first["revision"] == "abc123" and "*.bin" in first["ignore_patterns"]
    assert second == {"revision": "abc123", "local_files_only": True}
