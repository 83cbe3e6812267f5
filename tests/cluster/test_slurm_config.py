"""training.launcher {kind: slurm, ...}: defaults, Slurm's time formats, and errors that name the key."""

import pytest

from ual_dagster.config import ProfileError, load_profile
from ual_dagster.config.launchers import SlurmLauncher, slurm_time_seconds
from ual_dagster.config.training import InProcessLauncher, K8sLauncher, Launcher, SubprocessLauncher, TrainingConfig


def _profile(tmp_path, launcher: str):
    path = tmp_path / "slurm.yaml"
    path.write_text(f"extends: tiny\nname: s\ntraining:\n  launcher: {launcher}\n")
    return load_profile(str(path))


def test_slurm_launcher_loads_with_its_defaults(tmp_path):
    launcher = _profile(tmp_path, "{kind: slurm}").training.launcher
    assert launcher == SlurmLauncher()
    assert (launcher.partition, launcher.gpus, launcher.cpus_per_task, launcher.mem_gb) == (None, 0, 1, None)
    assert (launcher.time_limit, launcher.sbatch_args, launcher.setup, launcher.poll_interval_s) == (None, [], [], 2.0)
    full = _profile(
        tmp_path,
        "{kind: slurm, partition: gpu, gpus: 2, cpus_per_task: 8, mem_gb: 64, time_limit: '1-00:00:00',"
        " sbatch_args: ['--account=proj', '--qos=high'], setup: ['module load cuda/12.4']}",
    ).training.launcher
    assert full.partition == "gpu" and full.gpus == 2 and full.mem_gb == 64.0 and full.time_limit == "1-00:00:00"
    # the string shorthand still works for the other kinds, and the names still import from config.training
    assert TrainingConfig(launcher="subprocess").launcher == SubprocessLauncher()
    assert TrainingConfig(launcher="in_process").launcher == InProcessLauncher()
    assert Launcher is not None and K8sLauncher.model_fields["kind"].default == "k8s"
    # a dump round-trips (the training spec travels as JSON)
    cfg = TrainingConfig(launcher=full)
    assert TrainingConfig.model_validate_json(cfg.model_dump_json()) == cfg


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("0:30", 30),
        ("1:00:00", 3600),
        ("2-0", 2 * 86400),
        ("1-02:03", 86400 + 2 * 3600 + 3 * 60),
        ("1-02:03:04", 86400 + 2 * 3600 + 3 * 60 + 4),
        ("INFINITE", None),
        ("unlimited", None),
    ],
)
def test_slurm_time_formats(text, seconds):
    assert slurm_time_seconds(text) == seconds
    assert SlurmLauncher(time_limit=text).time_limit == text


@pytest.mark.parametrize(
    ("launcher", "key", "reason"),
    [
        ("{kind: slurm, time_limit: '1h'}", "training.launcher.time_limit", "not a Slurm time"),
        ("{kind: slurm, time_limit: '0:00'}", "training.launcher.time_limit", "zero time limit"),
        ("{kind: slurm, gpus: -1}", "training.launcher.gpus", "greater than or equal to 0"),
        ("{kind: slurm, cpus_per_task: 0}", "training.launcher.cpus_per_task", "greater than or equal to 1"),
        ("{kind: slurm, mem_gb: 0}", "training.launcher.mem_gb", "greater than 0"),
        ("{kind: slurm, sbatch_args: ['account=x']}", "training.launcher.sbatch_args", "not an sbatch option"),
        ("{kind: slurm, sbatch_args: ['--job-name=x']}", "training.launcher.sbatch_args", "sets --job-name itself"),
        ("{kind: slurm, sbatch_args: ['-ofile.log']}", "training.launcher.sbatch_args", "sets -o itself"),
        ("{kind: slurm, sbatch_args: ['--export=NONE']}", "training.launcher.sbatch_args", "sets --export itself"),
        ("{kind: slurm, setup: ['export HF_TOKEN=hf_abc']}", "training.launcher.setup", "secrets must not be"),
        ("{kind: slurm, image: x}", "training.launcher.image", "not a key of kind 'slurm'"),
        ("{kind: slurm, poll_interval_s: 0}", "training.launcher.poll_interval_s", "greater than 0"),
    ],
)
def test_bad_slurm_settings_name_the_key(tmp_path, launcher, key, reason):
    with pytest.raises(ProfileError) as err:
        _profile(tmp_path, launcher)
    text = str(err.value)
    assert f"key '{key}'" in text and reason in text, text


def test_setup_may_read_secrets_from_the_environment_or_a_file():
    ok = SlurmLauncher(setup=["export HF_TOKEN=$HF_TOKEN", 'export OPENAI_API_KEY="${OPENAI_API_KEY}"', "source ~/.s"])
    assert len(ok.setup) == 3
