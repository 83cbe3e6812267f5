"""A paper-like profile with a (fake) OpenAI key starts no paid call by itself (issue 20, item 2).

Its elicitation and its AlpacaEval judge are OpenAI's (paid endpoints). The automation sensor
and the re-elicitation schedule are off by default; turned on, the schedule plans first and
requests nothing when that costs more than orchestration.max_unattended_cost_usd (0 by
default), the automation may not start the judged evaluations, and an uncertainty asset that
a schedule, sensor or the automation started refuses before any call. Every outgoing
connection is recorded: none may leave this machine.
"""

from __future__ import annotations

import socket
from datetime import datetime, timezone

import dagster as dg
import pytest
import yaml

from assets.definitions import automation_target, build_definitions
from ual_dagster.config import load_profile
from ual_dagster.config.loader import BUNDLED_DIR
from ual_dagster.data import build_instruction_set
from ual_dagster.plan import automation_on, paid_services, plan, reelicit_schedule_on
from ual_dagster.storage import StatePaths


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every connection to a non-loopback address."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(address, tuple) and not (host.startswith("127.") or host in ("::1", "localhost")):
            attempts.append(address)
            raise OSError(f"test: no network ({address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    return attempts


def paper_like(tmp_path, **orchestration) -> str:
    """The paper profile's elicitation and evaluation (OpenAI, paid) on small local testbed data."""
    paper = yaml.safe_load((BUNDLED_DIR / "paper.yaml").read_text())
    tiny = yaml.safe_load((BUNDLED_DIR / "tiny.yaml").read_text())
    data = {**paper, "name": "paper_like", "storage": {"state_dir": str(tmp_path / "state")}}
    data["datasets"] = tiny["datasets"]
    for ds in data["datasets"].values():
        ds["testbed"]["n_samples"] = 60
    data["scenarios"] = {"mixed": {"size": 40, "weights": {"testbed_open": 0.5, "testbed_exact": 0.5}}}
    data["base_model"] = tiny["base_model"]
    data["orchestration"] = {**paper["orchestration"], **orchestration}
    path = tmp_path / "paper_like.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_sensors_and_schedule_are_off_by_default_where_calls_cost_money(tmp_path, no_network):
    profile = load_profile(paper_like(tmp_path))
    assert [s.split(" ")[0] for s in paid_services(profile)] == ["elicitation", "judge"]
    assert not automation_on(profile) and not reelicit_schedule_on(profile)
    defs = build_definitions(profile)
    assert defs.get_schedule_def("reelicitation").default_status == dg.DefaultScheduleStatus.STOPPED
    for name in ("ual_automation", "source_files", "uncertainty_batches"):
        assert defs.get_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED, name
    # the offline default profile keeps its automation
    tiny = load_profile("tiny")
    assert paid_services(tiny) == [] and automation_on(tiny) and reelicit_schedule_on(tiny)
    assert no_network == []


def test_a_schedule_turned_on_plans_first_and_requests_nothing_over_the_limit(tmp_path, no_network):
    profile = load_profile(paper_like(tmp_path, automation=True, reelicit_schedule=True))
    store = StatePaths.for_profile(profile).ensure().store()
    for name, cfg in profile.datasets.items():
        build_instruction_set(name, cfg, store)
    defs = build_definitions(profile)
    schedule = defs.get_schedule_def("reelicitation")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING  # the profile turned it on
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime.now(timezone.utc),
            resources={"duckdb": defs.resources["duckdb"]},
        )
        tick = schedule.evaluate_tick(ctx)
    assert tick.run_requests == []
    message = tick.skip_message
    assert message.startswith("reelicitation refused before any call: the plan costs $")
    assert "stale rows" in message and "max_unattended_cost_usd = $0.00" in message and "\n" not in message

    # the automation may not start the judged evaluations (7 judge calls x price > $0)
    target = automation_target(profile).resolve(defs.resolve_asset_graph())
    assert dg.AssetKey("eval_mixed_sft") not in target and dg.AssetKey("uncertainty_testbed_open") in target
    # ...and an uncertainty asset the automation started refuses before any call
    keys = [dg.AssetKey("instructions_testbed_open"), dg.AssetKey("uncertainty_testbed_open")]
    assets = [a for a in defs.assets if set(a.keys) & set(keys)]
    dg.materialize(assets, resources=defs.resources, selection=keys[:1])  # by hand: free, records its version
    result = dg.materialize(
        assets,
        resources=defs.resources,
        tags={"dagster/from_automation_condition": "true"},
        raise_on_error=False,
        selection=keys[1:],
    )
    assert not result.success
    failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    failure_text = " ".join(failures) + " ".join(
        str(e.step_failure_data.user_failure_data.description)
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data.user_failure_data
    )
    assert "uncertainty_testbed_open refused before any call" in failure_text
    assert no_network == []


def test_a_limit_the_plan_fits_under_lets_the_schedule_request(tmp_path, no_network):
    profile = load_profile(paper_like(tmp_path, reelicit_schedule=True, max_unattended_cost_usd=5.0))
    store = StatePaths.for_profile(profile).ensure().store()
    for name, cfg in profile.datasets.items():
        build_instruction_set(name, cfg, store)
    defs = build_definitions(profile)
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime.now(timezone.utc),
            resources={"duckdb": defs.resources["duckdb"]},
        )
        tick = defs.get_schedule_def("reelicitation").evaluate_tick(ctx)
    assert sorted(r.asset_selection[0].path[0] for r in tick.run_requests) == [
        "uncertainty_testbed_exact",
        "uncertainty_testbed_open",
    ]
    assert plan(profile)["estimated_cost_usd"] < 5.0  # the whole selection costs cents
    assert no_network == []  # requesting is not calling
