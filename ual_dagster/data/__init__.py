"""The data domain: loading, normalising and storing instruction sets; the generated
testbed; scenario selection; asset-check helpers.

Heavy imports (datasets) happen only when a hub data set is read.
"""

from ual_dagster.data.build import InstructionSetResult, build_instruction_set
from ual_dagster.data.errors import DataQualityError, DataSourceError
from ual_dagster.data.samples import Reject, Sample, normalise_text, sample_id_for
from ual_dagster.data.scenarios import ScenarioDraw, draw_scenario, select_scenario
from ual_dagster.data.store import read_rejects, read_samples, train_sample_ids
from ual_dagster.data.testbed import FAMILIES, K_MAX, generate_testbed

__all__ = [
    "FAMILIES",
    "K_MAX",
    "DataQualityError",
    "DataSourceError",
    "InstructionSetResult",
    "Reject",
    "Sample",
    "ScenarioDraw",
    "build_instruction_set",
    "draw_scenario",
    "generate_testbed",
    "normalise_text",
    "read_rejects",
    "read_samples",
    "sample_id_for",
    "select_scenario",
    "train_sample_ids",
]
