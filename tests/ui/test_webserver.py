"""The Dagster UI end to end: `dagster dev` on a small profile, checked over GraphQL and in a browser.

1. the asset graph, checks, schedule and sensor the profile implies are all served;
2. a run launched through the webserver is dequeued by the daemon and materialises
   instructions_testbed_exact with its metadata and checks;
3. the lineage page actually draws the graph (headless Chromium screenshot + DOM);
4. the whole pipeline, launched from the UI: every image in the report's (and the plots')
   metadata loads in the browser, each graph node's label names exactly one asset, and the
   run log shows progress lines with an ETA (screenshots in benchmarks/out/ui_*.png).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import duckdb
import headless_chromium
import matplotlib.image
import numpy as np
import pytest
from cdp_page import ChromiumPage
from dagster_dev_server import DagsterDevServer
from small_profile import LOCATION_NAME, PROJECT_ROOT, UIProfile

pytestmark = pytest.mark.slow

REPOSITORY_NAME = "__repository__"  # the repository a `Definitions` object becomes
LAUNCHED_DATASET = "testbed_exact"
LAUNCHED_ASSET = (f"instructions_{LAUNCHED_DATASET}",)
SCREENSHOT_COPY = PROJECT_ROOT / "benchmarks" / "out" / "ui_asset_graph.png"

Key = tuple[str, ...]


def expected_asset_keys(ui: UIProfile) -> set[Key]:
    p = ui.profile
    variants = [f"{s}_{m}" for s in p.scenarios for m in p.methods]
    return (
        {(f"instructions_{d}",) for d in p.datasets}
        | {(f"uncertainty_{d}",) for d in p.datasets}
        | {(f"training_set_{s}",) for s in p.scenarios}
        | {
            ("preflight",),
            ("base_model",),
            ("eval_sets",),
            ("token_clustering",),
            ("eval_scores",),
            ("comparison_report",),
        }
        | {(f"lora_{v}",) for v in variants}
        | {(f"eval_{v}",) for v in variants}
    )


ASSET_NODES = """
query AssetNodes($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on PythonError { message }
    ... on Repository {
      assetNodes {
        assetKey { path }
        groupName
        dependencyKeys { path }
        assetChecksOrError { ... on AssetChecks { checks { name } } }
      }
      schedules { name scheduleState { status } assetSelection { assetKeys { path } } }
      sensors { name sensorType sensorState { status } }
    }
  }
}"""


def _repository(server: DagsterDevServer) -> dict:
    selector = {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME}
    repo = server.graphql(ASSET_NODES, {"selector": selector})["repositoryOrError"]
    assert repo["__typename"] == "Repository", repo
    return repo


def _nodes_by_key(repo: dict) -> dict[Key, dict]:
    return {tuple(n["assetKey"]["path"]): n for n in repo["assetNodes"]}


def _deps(node: dict) -> set[Key]:
    return {tuple(k["path"]) for k in node["dependencyKeys"]}


def _check_names(node: dict) -> set[str]:
    return {c["name"] for c in node["assetChecksOrError"].get("checks", [])}


def test_served_asset_graph_matches_profile(dagster_ui: DagsterDevServer, ui_profile: UIProfile) -> None:
    repo = _repository(dagster_ui)
    nodes = _nodes_by_key(repo)
    expected = expected_asset_keys(ui_profile)
    assert set(nodes) == expected, f"missing {expected - set(nodes)}, unexpected {set(nodes) - expected}"

    p = ui_profile.profile
    for dataset in p.datasets:
        assert _deps(nodes[(f"uncertainty_{dataset}",)]) == {(f"instructions_{dataset}",)}
        assert {"unique_sample_ids", "no_empty_outputs", "reject_rate"} <= _check_names(
            nodes[(f"instructions_{dataset}",)]
        )
        assert {"uncertainty_coverage", "uncertainty_range"} <= _check_names(nodes[(f"uncertainty_{dataset}",)])
    for scenario, cfg in p.scenarios.items():
        assert _deps(nodes[(f"training_set_{scenario}",)]) == {(f"uncertainty_{d}",) for d in cfg.weights}
        for method in p.methods:
            assert _deps(nodes[(f"lora_{scenario}_{method}",)]) == {(f"training_set_{scenario}",), ("base_model",)}
            assert (f"lora_{scenario}_{method}",) in _deps(nodes[(f"eval_{scenario}_{method}",)])
    assert {(f"eval_{s}_{m}",) for s in p.scenarios for m in p.methods} <= _deps(nodes[("eval_scores",)])
    assert ("eval_scores",) in _deps(nodes[("comparison_report",)])
    # the groups read as the pipeline: each only feeds later ones (no back-edge in the group graph)
    order = ["preflight", "data", "elicitation", "training", "evaluation"]
    assert {n["groupName"] for n in nodes.values()} == set(order)
    assert all(order.index(a) < order.index(b) for a, b in _cross_group_edges(nodes)), _cross_group_edges(nodes)

    schedules = {s["name"]: s for s in repo["schedules"]}
    assert "reelicitation" in schedules, list(schedules)
    targets = {tuple(k["path"]) for k in schedules["reelicitation"]["assetSelection"]["assetKeys"]}
    assert targets == {(f"uncertainty_{d}",) for d in p.datasets}
    sensors = {s["name"]: s for s in repo["sensors"]}
    assert "ual_automation" in sensors, list(sensors)
    assert sensors["ual_automation"]["sensorType"] == "AUTO_MATERIALIZE"  # how 1.13 reports an automation sensor
    # The profile turns automation and the schedule off; the served state must say so.
    assert sensors["ual_automation"]["sensorState"]["status"] == "STOPPED"
    assert schedules["reelicitation"]["scheduleState"]["status"] == "STOPPED"


LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""

RUN_STATUS = """
query Run($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } }
}"""

RUN_FAILURE_EVENTS = """
query Events($runId: ID!) {
  logsForRun(runId: $runId) { ... on EventConnection { events {
    __typename ... on MessageEvent { message }
  } } }
}"""

LATEST_MATERIALISATION = """
query Asset($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode {
    dataVersion
    assetMaterializations(limit: 1) {
      runId
      metadataEntries {
        label
        __typename
        ... on IntMetadataEntry { intValue }
        ... on TextMetadataEntry { text }
        ... on BoolMetadataEntry { boolValue }
      }
    }
    assetChecksOrError { ... on AssetChecks { checks {
      name
      executionForLatestMaterialization { runId status evaluation { success } }
    } } }
  } }
}"""

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def _wait_for_run(server: DagsterDevServer, run_id: str, timeout_s: float) -> tuple[str, list[str]]:
    """Poll until the run ends; returns its status and the statuses it went through."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = server.graphql(RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in TERMINAL:
            return status, seen
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} not finished after {timeout_s:.0f} s (went {seen}):\n{server.log_tail()}")


def test_ui_launched_run_is_dequeued_and_materialises(dagster_ui: DagsterDevServer, ui_profile: UIProfile) -> None:
    key_input = {"path": list(LAUNCHED_ASSET)}
    params = {
        "selector": {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY_NAME,
            "jobName": "__ASSET_JOB",
            "assetSelection": [key_input],
        },
        "executionMetadata": {"tags": [{"key": "ual/test", "value": "ui"}]},
    }
    launched = dagster_ui.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    # The instance's QueuedRunCoordinator holds the run until the daemon takes it.
    assert launched["run"]["status"] in {"QUEUED", "NOT_STARTED"}, launched

    status, seen = _wait_for_run(dagster_ui, run_id, timeout_s=90)
    if status != "SUCCESS":
        events = dagster_ui.graphql(RUN_FAILURE_EVENTS, {"runId": run_id})["logsForRun"]["events"]
        messages = "\n".join(e.get("message", "") for e in events if e.get("message"))
        pytest.fail(f"run {run_id} ended {status} (went {seen}):\n{messages[-6000:]}")

    node = dagster_ui.graphql(LATEST_MATERIALISATION, {"key": key_input})["assetNodeOrError"]
    materialisations = node["assetMaterializations"]
    assert materialisations and materialisations[0]["runId"] == run_id
    metadata = {e["label"]: e for e in materialisations[0]["metadataEntries"]}
    # The data version the UI shows is the library's fingerprint, also recorded as metadata.
    assert metadata["fingerprint"]["text"] == node["dataVersion"]
    assert metadata["reused"]["boolValue"] is False

    # Row counts in the metadata agree with the rows actually written to DuckDB.
    rows = _duckdb_sample_count(ui_profile, LAUNCHED_DATASET)
    counts = {label: e["intValue"] for label, e in metadata.items() if e["__typename"] == "IntMetadataEntry"}
    assert rows > 0
    assert rows in counts.values(), f"no metadata count equals the {rows} rows in DuckDB: {counts}"

    checks = {c["name"]: c["executionForLatestMaterialization"] for c in node["assetChecksOrError"]["checks"]}
    for name in ("unique_sample_ids", "no_empty_outputs"):
        assert checks[name] is not None and checks[name]["runId"] == run_id, checks
        assert checks[name]["status"] == "SUCCEEDED", checks[name]


def _duckdb_sample_count(ui: UIProfile, dataset: str) -> int:
    with duckdb.connect(str(ui.duckdb_path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM samples WHERE dataset = ?", [dataset]).fetchone()[0]


def lineage_url(server: DagsterDevServer) -> str:
    """The global asset lineage page (sidebar "Lineage") as it opens: one box per asset group.

    Its `expanded=global@global:<group>,...` parameter opens groups, but Dagster 1.13 fits
    the zoom to the collapsed layout it mounts with, so an expanded graph of this size
    overflows the window; the collapsed view shows the whole graph.
    """
    return f"{server.base_url}/asset-groups"


def _cross_group_edges(nodes: dict[Key, dict]) -> set[tuple[str, str]]:
    return {
        (nodes[dep]["groupName"], node["groupName"])
        for node in nodes.values()
        for dep in _deps(node)
        if dep in nodes and nodes[dep]["groupName"] != node["groupName"]
    }


def test_lineage_page_draws_the_asset_graph(
    dagster_ui: DagsterDevServer, ui_profile: UIProfile, tmp_path: Path
) -> None:
    binary = headless_chromium.chromium_binary()
    if binary is None:
        pytest.skip("Debian package `chromium` is not installed (apt-get install chromium); CI installs it")
    nodes = _nodes_by_key(_repository(dagster_ui))
    # A fresh instance shows a "Join the Dagster community" dialog over every page until
    # it is dismissed; dismissing it is the same mutation the dialog's Skip button sends.
    assert dagster_ui.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
    url = lineage_url(dagster_ui)

    png = headless_chromium.screenshot(binary, url, tmp_path / "asset_graph.png", tmp_path / "chromium-shot")
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, SCREENSHOT_COPY)

    image = matplotlib.image.imread(png)
    assert image.shape[:2] == (headless_chromium.WINDOW[1], headless_chromium.WINDOW[0]), image.shape
    rgb = (image[..., :3] * 255).round().astype(np.uint8)
    # The graph canvas: right of the navigation and group tree, below the header. While
    # the page loads it is blank but for a spinner (measured: 256 colours, 0.1 % foreground;
    # drawn: about 900 colours, 3 % foreground).
    height, width = rgb.shape[:2]
    canvas = headless_chromium.region_stats(rgb[int(height * 0.12) :, int(width * 0.35) :])
    assert canvas.distinct_colours > 500, canvas
    assert canvas.foreground_fraction > 0.01, canvas

    # Inside the graph viewport (not the sidebar's group tree): a node per group and an
    # edge per pair of groups that the served dependencies connect.
    dom = headless_chromium.rendered_dom(binary, url, tmp_path / "chromium-dom")
    assert "data-svg-viewport" in dom, f"no graph viewport on {url}"
    viewport = dom[dom.index("data-svg-viewport") :]
    groups = {n["groupName"] for n in nodes.values()}
    missing = sorted(g for g in groups if f'data-tooltip="{g}"' not in viewport)
    assert not missing, f"group nodes not drawn on {url}: {missing}"
    edges = viewport.count('stroke="var(--color-lineage-edge)"')
    assert edges == len(_cross_group_edges(nodes)), (edges, _cross_group_edges(nodes))


# --- the whole pipeline from the UI: the report's pictures, unambiguous graph labels, the run log ---

SCREENSHOTS = PROJECT_ROOT / "benchmarks" / "out"
GRAPH_VIEWPORT = (1600, 4400)  # tall enough that a group's graph fits at full zoom (Dagster culls off-screen nodes)

LATEST_MARKDOWN = """
query Asset($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode {
    assetMaterializations(limit: 1) { runId metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } }
  } }
}"""

RUN_MESSAGES = """
query Events($runId: ID!) {
  logsForRun(runId: $runId, limit: 20000) { ... on EventConnection { events {
    __typename ... on MessageEvent { message stepKey level }
  } } }
}"""


@pytest.fixture(scope="module")
def pipeline_run(dagster_ui: DagsterDevServer) -> str:
    """Every asset (what `*eval_scores+` selects), launched from the webserver as a user would; its run id."""
    keys = sorted(_nodes_by_key(_repository(dagster_ui)))
    params = {
        "selector": {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY_NAME,
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": list(k)} for k in keys],
        }
    }
    launched = dagster_ui.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    status, seen = _wait_for_run(dagster_ui, run_id, timeout_s=1500)
    if status != "SUCCESS":
        events = dagster_ui.graphql(RUN_FAILURE_EVENTS, {"runId": run_id})["logsForRun"]["events"]
        messages = "\n".join(e.get("message", "") for e in events if e.get("message"))
        pytest.fail(f"pipeline run {run_id} ended {status} (went {seen}):\n{messages[-6000:]}")
    return run_id


def _markdown_images(server: DagsterDevServer, key: str, run_id: str) -> dict[str, int]:
    """{metadata label: number of Markdown images} of the asset's materialisation in `run_id`."""
    node = server.graphql(LATEST_MARKDOWN, {"key": {"path": [key]}})["assetNodeOrError"]
    (materialisation,) = node["assetMaterializations"]
    assert materialisation["runId"] == run_id, (key, materialisation["runId"])
    return {e["label"]: e["mdStr"].count("![") for e in materialisation["metadataEntries"] if e.get("mdStr")}


OPEN_MARKDOWN = """(() => {
  const row = Array.from(document.querySelectorAll('tr')).find(r => r.cells.length && r.cells[0].textContent.trim() === %s);
  const button = row && Array.from(row.querySelectorAll('button, a')).find(b => b.textContent.trim() === '[Show Markdown]');
  if (!button) return false;
  button.click();
  return true;
})()"""

DIALOG_IMAGES = """(() => {
  const dialog = document.querySelector('[role=dialog], .bp5-dialog');
  if (!dialog) return null;
  return Array.from(dialog.querySelectorAll('img')).map(i => ({
    src: i.currentSrc || i.src, alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}));
})()"""


def _rendered_images(page: ChromiumPage, server: DagsterDevServer, key: str, label: str, expected: int) -> list[dict]:
    """Open the asset's page, show metadata entry `label`'s Markdown, and return its images once loaded."""
    url = f"{server.base_url}/assets/{key}"
    page.navigate(url)
    page.wait_for(OPEN_MARKDOWN % json.dumps(label), timeout_s=90, what=f"the [Show Markdown] button of {key}/{label}")
    check_loaded = f"(() => {{ const imgs = {DIALOG_IMAGES}; return imgs && imgs.length >= {expected} && imgs.every(i => i.complete) }})()"
    page.wait_for(check_loaded, timeout_s=60, what=f"{expected} loaded images in {key}/{label}")
    assert page.responses[url]["status"] == 200, page.responses.get(url)
    return page.evaluate(DIALOG_IMAGES)


def test_every_image_in_the_metadata_renders(dagster_ui: DagsterDevServer, pipeline_run: str, tmp_path: Path) -> None:
    binary = headless_chromium.chromium_binary()
    if binary is None:
        pytest.skip("Debian package `chromium` is not installed (apt-get install chromium); CI installs it")
    assert dagster_ui.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
    # the report, and one asset of each kind whose metadata draws a histogram, curve or projection
    pages = ["comparison_report", "token_clustering", "uncertainty_testbed_open", "lora_mixed_ual"]
    checked: dict[str, list[dict]] = {}
    with ChromiumPage(binary, tmp_path / "chromium-cdp") as page:
        for key in pages:
            entries = {label: n for label, n in _markdown_images(dagster_ui, key, pipeline_run).items() if n}
            assert entries, f"{key}: no Markdown metadata with images"
            for label, n in entries.items():
                images = _rendered_images(page, dagster_ui, key, label, n)
                assert len(images) == n, (key, label, images)
                checked[f"{key}/{label}"] = images
                if key == "comparison_report" and label == "preview":
                    page.screenshot(SCREENSHOTS / "ui_report.png")
    assert {
        "comparison_report/preview",
        "token_clustering/plots",
        "uncertainty_testbed_open/score_histogram_plot",
    } <= set(checked)
    lora_plots = [where for where in checked if where.startswith("lora_mixed_ual/")]  # names may carry a seed
    assert any("loss_curve" in p for p in lora_plots) and any("eps_histogram" in p for p in lora_plots), lora_plots
    assert len(checked["comparison_report/preview"]) >= 3  # deltas, training curves, uncertainty
    for where, images in checked.items():
        for image in images:
            # a broken image (a relative link the webserver answers with its HTML page) has naturalWidth 0
            assert image["complete"] and image["width"] > 0 and image["height"] > 0, (where, image["alt"])
            if not image["src"].startswith("data:"):
                assert page.responses[image["src"]]["status"] == 200, (where, image["src"])


def test_graph_node_labels_name_one_asset_each(dagster_ui: DagsterDevServer, pipeline_run: str, tmp_path: Path) -> None:
    binary = headless_chromium.chromium_binary()
    if binary is None:
        pytest.skip("Debian package `chromium` is not installed (apt-get install chromium); CI installs it")
    nodes = _nodes_by_key(_repository(dagster_ui))
    groups = sorted({n["groupName"] for n in nodes.values()})
    labels: dict[str, list[str]] = {}
    with ChromiumPage(binary, tmp_path / "chromium-cdp") as page:
        page.navigate(lineage_url(dagster_ui))
        edges = len(_cross_group_edges(nodes))
        page.wait_for(  # the group boxes and the edges between them are drawn
            "document.querySelectorAll('[data-svg-viewport] [stroke=\"var(--color-lineage-edge)\"]').length"
            f" >= {edges}",
            timeout_s=90,
            what=f"{edges} edges between the groups",
        )
        page.screenshot(SCREENSHOTS / "ui_lineage.png")
        page.set_viewport(*GRAPH_VIEWPORT)
        for group in groups:
            page.navigate(f"{dagster_ui.base_url}/locations/{LOCATION_NAME}/asset-groups/{group}")
            members = sum(1 for n in nodes.values() if n["groupName"] == group)
            # the node's name row carries its label as data-tooltip; other groups' assets show as links
            labels[group] = page.wait_for(
                "(() => { const l = Array.from(document.querySelectorAll('[data-svg-viewport] [data-tooltip]'))"
                f".map(e => e.getAttribute('data-tooltip')); return l.length >= {members} ? l : null }})()",
                timeout_s=90,
                what=f"{members} nodes in group {group}",
            )
            if group == "training":
                page.screenshot(SCREENSHOTS / "ui_training_group.png")
    shown = [label for group in groups for label in labels[group]]
    names = {key[-1]: key for key in nodes}
    assert sorted(shown) == sorted(names), f"labels {sorted(shown)} vs assets {sorted(names)}"
    assert len(set(shown)) == len(shown) == len(nodes)  # one label per asset, none shared
    for group in groups:  # and each node sits in its own group
        assert {nodes[names[label]]["groupName"] for label in labels[group]} == {group}


def test_run_log_shows_progress_with_an_eta(dagster_ui: DagsterDevServer, pipeline_run: str, tmp_path: Path) -> None:
    events = dagster_ui.graphql(RUN_MESSAGES, {"runId": pipeline_run})["logsForRun"]["events"]
    line = re.compile(r"\d+/\d+ \w+ \(\d+%\), \S+ elapsed, (ETA \S+|done)")
    steps = {e["stepKey"] for e in events if line.search(e.get("message") or "")}
    # base model pre-training, LoRA training, generation and clustering all report progress
    assert {"base_model", "lora_mixed_ual", "eval_mixed_ual", "token_clustering"} <= steps, sorted(steps)
    binary = headless_chromium.chromium_binary()
    if binary is None:
        pytest.skip("Debian package `chromium` is not installed (apt-get install chromium); CI installs it")
    with ChromiumPage(binary, tmp_path / "chromium-cdp") as page:
        url = f"{dagster_ui.base_url}/runs/{pipeline_run}?logs=elapsed"  # the log filtered to progress lines
        page.navigate(url)
        page.wait_for(
            "document.body.innerText.includes(' elapsed, ')",
            timeout_s=90,
            what="progress lines in the run log",
        )
        page.screenshot(SCREENSHOTS / "ui_run_log.png")
        assert page.responses[url]["status"] == 200
