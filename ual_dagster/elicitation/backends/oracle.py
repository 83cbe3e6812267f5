"""The `oracle` backend: the testbed's intrinsic uncertainty, known by construction.

An upper bound for elicitation quality on the tiny profile. Samples without an intrinsic
value (anything that is not testbed data) get status 'failed' with the reason.
"""

from __future__ import annotations

from ual_dagster.elicitation.outcome import Outcome
from ual_dagster.elicitation.table import SampleToScore


def oracle_outcome(sample: SampleToScore) -> Outcome:
    u = sample.intrinsic_uncertainty
    if u is None:
        return Outcome(status="failed", error="oracle: sample has no intrinsic_uncertainty (not a testbed sample)")
    if not 0.0 <= u <= 1.0:
        return Outcome(status="failed", error=f"oracle: intrinsic_uncertainty {u} outside [0, 1]")
    return Outcome(status="ok", uncertainty=float(u))
