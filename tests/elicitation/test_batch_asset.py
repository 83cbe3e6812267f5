"""The default (tiny) profile with elicitation.mode: batch: the uncertainty asset, its failure while a
batch runs, the uncertainty_batches sensor, and the rows compared with online mode."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.definitions import build_definitions
from tests.elicitation.batch_server import BatchServer, forwarding_answerer
from tests.elicitation.test_batch_mode import serving
from ual_dagster.config import load_profile
from ual_dagster.elicitation.local_server import local_heuristic_server
from ual_dagster.storage import StatePaths

pytestmark = pytest.mark.slow

COLUMNS = (
    "sample_id, dataset, elicitor, uncertainty, status, raw_answer, error, prompt_tokens, completion_tokens, attempts"
)


def write_profile(root: Path, elicitation: dict) -> str:
    path = root / "profile.yaml"
    path.write_text(
        yaml.safe_dump({"extends": "tiny", "storage": {"state_dir": str(root / "state")}, "elicitation": elicitation})
    )
    return str(path)


def materialize(profile_path: str, instance: dg.DagsterInstance, keys: list[str]) -> dg.ExecuteInProcessResult:
    defs = build_definitions(load_profile(profile_path))
    return dg.materialize(
        list(defs.assets),
        resources=defs.resources,
        instance=instance,
        selection=[dg.AssetKey.from_user_string(k) for k in keys],
        raise_on_error=False,
    )


def table(profile_path: str) -> list[tuple]:
    with StatePaths.for_profile(load_profile(profile_path)).store().connect() as con:
        return con.execute(f"SELECT {COLUMNS} FROM uncertainty ORDER BY dataset, sample_id").fetchall()


def test_tiny_profile_batch_mode_fills_the_same_rows_as_online(tmp_path):
    datasets = list(load_profile("tiny").datasets)
    keys = [f"instructions_{d}" for d in datasets] + [f"uncertainty_{d}" for d in datasets]

    (tmp_path / "online").mkdir()
    online = write_profile(tmp_path / "online", {})
    assert materialize(online, dg.DagsterInstance.ephemeral(), keys).success

    (tmp_path / "batch").mkdir()
    instance = dg.DagsterInstance.ephemeral()
    with local_heuristic_server() as heuristic_url:
        server = BatchServer(forwarding_answerer(heuristic_url))
        server.hold = True
        with serving(server) as url:
            batch = write_profile(
                tmp_path / "batch",
                {"mode": "batch", "base_url": url, "batch_wait_s": 0.2, "batch_poll_interval_s": 0.05},
            )
            first = materialize(batch, instance, keys)
            assert not first.success  # the batches are still running: the asset says so and fails
            failures = [e for e in first.all_events if e.event_type_value == "STEP_FAILURE"]
            messages = " ".join(str(e.event_specific_data.error) for e in failures)
            assert "still running (0/" in messages and "re-run or let the sensor pick it up" in messages
            assert server.created_batches == len(datasets)

            defs = build_definitions(load_profile(batch))
            sensor = defs.resolve_sensor_def("uncertainty_batches")
            waiting = sensor.evaluate_tick(
                dg.build_sensor_context(
                    instance=instance, definitions=defs, resources={"duckdb": defs.resources["duckdb"]}
                )
            )
            assert not waiting.run_requests and "in_progress" in (waiting.skip_message or "")

            server.hold = False
            requested = []
            for _ in range(5):  # each poll advances the fake: in_progress -> finalizing -> completed
                tick = sensor.evaluate_tick(
                    dg.build_sensor_context(
                        instance=instance, definitions=defs, resources={"duckdb": defs.resources["duckdb"]}
                    )
                )
                requested = tick.run_requests
                if len(requested) == len(datasets):
                    break
            assert sorted(k.to_user_string() for r in requested for k in r.asset_selection) == sorted(
                keys[len(datasets) :]
            )
            answered = sum(server.answered.values())

            second = materialize(batch, instance, keys[len(datasets) :])
            assert second.success
            assert server.created_batches == len(datasets) and sum(server.answered.values()) == answered
            assert all(n == 1 for n in server.answered.values())

            ops_after = dict(server.ops)
            assert materialize(batch, instance, keys[len(datasets) :]).success  # nothing left to ask
            assert dict(server.ops) == ops_after and sum(server.answered.values()) == answered

    online_rows, batch_rows = table(online), table(batch)
    assert len(online_rows) > 1000  # the tiny scenarios' selected rows and reserve (elicit_scope: used)
    assert batch_rows == online_rows
