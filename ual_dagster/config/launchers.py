"""Where heavy steps run: the launcher union shared by `training.launcher` (and evaluation's).

`{kind: in_process}`, `{kind: subprocess, ...}`, `{kind: k8s, ...}` or `{kind: slurm, ...}`;
the strings `in_process` / `subprocess` are short for the first two. A launcher says where
the processes start, never what they compute: it enters no fingerprint.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from ual_dagster.config.base import StrictModel

#: environment variable naming the Slurm partition when a SlurmLauncher sets none
SLURM_PARTITION_ENV = "UAL_SLURM_PARTITION"


class InProcessLauncher(StrictModel):
    """Train inside the Dagster step's own process."""

    kind: Literal["in_process"] = "in_process"


class SubprocessLauncher(StrictModel):
    """Train in a local child process through Dagster Pipes (PipesSubprocessClient)."""

    kind: Literal["subprocess"] = "subprocess"
    distributed: Literal["none", "accelerate"] = Field(
        "none", description="accelerate: start with `accelerate launch`, one process per local GPU"
    )


class K8sLauncher(StrictModel):
    """Train in a Kubernetes pod through Dagster Pipes (PipesK8sClient); ual_dagster.train.k8s builds the pod."""

    kind: Literal["k8s"] = "k8s"
    image: str = Field(min_length=1, description="the training image (built from docker/Dockerfile.cuda)")
    state_pvc: str = Field(
        min_length=1,
        description="ReadWriteMany PersistentVolumeClaim holding storage.state_dir, mounted at that same path",
    )
    namespace: str = "default"
    gpus: int = Field(1, ge=0)
    distributed: Literal["none", "accelerate"] = Field(
        "none", description="accelerate: start with `accelerate launch`, one process per GPU of the pod"
    )
    accelerate_config: str | None = Field(
        None, description="`accelerate launch --config_file` (a path inside the training container); None = flags only"
    )
    secret: str | None = Field(
        None, description="name of a Kubernetes Secret exposed as env vars in the pod (e.g. HF_TOKEN); never values"
    )
    cpu: str = Field("8", description="CPU request of the training pod (Kubernetes quantity)")
    memory: str = Field("64Gi", description="memory request and limit of the training pod")
    shm: str = Field("16Gi", description="size of /dev/shm; NCCL and DataLoader workers outgrow the 64Mi default")
    node_selector: dict[str, str] = Field({}, description="e.g. {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}")
    service_account: str | None = None


# Slurm's time formats (sbatch --time): minutes, minutes:seconds, hours:minutes:seconds,
# days-hours, days-hours:minutes, days-hours:minutes:seconds; or no limit.
_TIME_FORMATS = [
    r"(?P<m>\d+)",
    r"(?P<m>\d+):(?P<s>\d{1,2})",
    r"(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2})",
    r"(?P<d>\d+)-(?P<h>\d{1,2})",
    r"(?P<d>\d+)-(?P<h>\d{1,2}):(?P<m>\d{1,2})",
    r"(?P<d>\d+)-(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})",
]
_UNLIMITED = {"INFINITE", "UNLIMITED"}

# sbatch options the Slurm client sets itself (job name, log file, run id, environment, output)
_RESERVED_SBATCH = {
    "-J": "job name (ual-<step>-<fingerprint>)",
    "--job-name": "job name (ual-<step>-<fingerprint>)",
    "-o": "log file (under the job's work folder)",
    "--output": "log file (under the job's work folder)",
    "-e": "log file (stderr goes with stdout)",
    "--error": "log file (stderr goes with stdout)",
    "--comment": "the Dagster run id (for cancelling a dead run's jobs)",
    "--export": "environment (--export=ALL plus the Dagster Pipes variables)",
    "--parsable": "sbatch output",
}

# `export NAME=literal` in a setup line for a NAME that looks like a secret
_SECRET_ASSIGNMENT = re.compile(
    r"\b(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:TOKEN|KEY|SECRET|PASSWORD)[A-Za-z0-9_]*)=(?P<value>\S*)", re.IGNORECASE
)


def slurm_time_seconds(value: str) -> int | None:
    """Seconds of a Slurm time limit string; None for INFINITE / UNLIMITED; ValueError if malformed."""
    text = value.strip()
    if text.upper() in _UNLIMITED:
        return None
    for pattern in _TIME_FORMATS:
        match = re.fullmatch(pattern, text)
        if match:
            parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
            return ((parts.get("d", 0) * 24 + parts.get("h", 0)) * 60 + parts.get("m", 0)) * 60 + parts.get("s", 0)
    raise ValueError(
        f"{value!r} is not a Slurm time: write minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or INFINITE"
    )


class SlurmLauncher(StrictModel):
    """Run the step's work as a Slurm batch job (sbatch) that reports through Dagster Pipes.

    The job's Pipes context and messages are files in a folder on the shared state file
    system (compute nodes share a file system with the submitting host, not a socket).
    Secrets are never written anywhere: the job inherits the submitting environment
    (`sbatch --export=ALL`), or gets them from the `setup` lines (e.g. `source ~/.secrets`).
    """

    kind: Literal["slurm"] = "slurm"
    partition: str | None = Field(
        None,
        min_length=1,
        description=f"sbatch --partition; None: ${SLURM_PARTITION_ENV} if set, else the cluster's default partition",
    )
    gpus: int = Field(0, ge=0, description="GPUs of the job (sbatch --gres=gpu:N); 0 asks for none")
    cpus_per_task: int = Field(
        1, ge=1, description="CPU cores of the job (sbatch -c); also OMP_NUM_THREADS / MKL_NUM_THREADS inside it"
    )
    mem_gb: float | None = Field(
        None, gt=0, description="memory of the job in GB (sbatch --mem); None: the partition's default"
    )
    time_limit: str | None = Field(
        None,
        description="sbatch --time in Slurm's format (minutes, MM:SS, HH:MM:SS, D-HH:MM:SS, ...; Slurm rounds up to "
        "whole minutes); the job ends TIMEOUT after it, and a re-run resumes from the last saved step. "
        "None: the partition's default",
    )
    sbatch_args: list[str] = Field(
        [],
        description="extra sbatch options, one per item, written as #SBATCH lines (e.g. --account=proj, "
        "--qos=high, --constraint=a100, --gres=gpu:a100:2)",
    )
    setup: list[str] = Field(
        [],
        description="shell lines run in the job before the entry point (e.g. `module load cuda/12.4`, "
        "`source /shared/venv/bin/activate`); never write secrets here",
    )
    poll_interval_s: float = Field(
        2.0, gt=0, description="seconds between two looks at the job's state and log from the Dagster step"
    )

    @field_validator("time_limit")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is None:
            return None
        seconds = slurm_time_seconds(value)
        if seconds == 0:
            raise ValueError(f"{value!r} is a zero time limit: give a positive one, or INFINITE")
        return value.strip()

    @field_validator("sbatch_args")
    @classmethod
    def _sbatch_args(cls, value: list[str]) -> list[str]:
        for arg in value:
            if not arg.startswith("-"):
                raise ValueError(f"{arg!r} is not an sbatch option (options start with '-', e.g. --account=proj)")
            option = arg.split("=", 1)[0].split(" ", 1)[0]
            if option in _RESERVED_SBATCH or (option[:2] in _RESERVED_SBATCH and not option.startswith("--")):
                reserved = option if option in _RESERVED_SBATCH else option[:2]
                raise ValueError(f"{arg!r}: the Slurm client sets {reserved} itself ({_RESERVED_SBATCH[reserved]})")
        return value

    @field_validator("setup")
    @classmethod
    def _no_secret_values(cls, value: list[str]) -> list[str]:
        for line in value:
            for match in _SECRET_ASSIGNMENT.finditer(line):
                if not match.group("value").lstrip("\"'").startswith("$"):
                    raise ValueError(
                        f"setup line {line!r} writes a value into {match.group('name')}: secrets must not be "
                        "written into a profile or a job script; jobs inherit them from the submitting environment "
                        "(sbatch --export=ALL) or read them from a file (`source ~/.secrets`)"
                    )
        return value


def launcher_shorthand(value: object) -> object:
    """`launcher: subprocess` is short for `launcher: {kind: subprocess}`."""
    return {"kind": value} if isinstance(value, str) else value


Launcher = Annotated[
    InProcessLauncher | SubprocessLauncher | K8sLauncher | SlurmLauncher,
    Field(discriminator="kind"),
    BeforeValidator(launcher_shorthand),
]
