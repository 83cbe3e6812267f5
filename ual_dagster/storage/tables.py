"""Which module owns each DuckDB table.

A table's owner holds its DDL and is the only module whose SQL names it: every other module
calls the owner's functions (tests/storage/test_table_owners.py scans ual_dagster/ and
assets/ and fails on SQL naming a table outside its owner, and on a CREATE TABLE of a table
not listed here). The owner is where the table's writer lives; a reader in a lower package
than the owner would need the owner moved down (tests/test_import_graph.py's order).

Joins across two owners' tables go through a read view the other owner hands out
(`ual_dagster.data.store.samples_view`), not through its table's name.
"""

from __future__ import annotations

OWNERS: dict[str, str] = {
    "asset_versions": "ual_dagster.storage.duckdb_store",
    "samples": "ual_dagster.data.store",
    "rejects": "ual_dagster.data.store",
    "uncertainty": "ual_dagster.elicitation.table",
    "elicitation_batches": "ual_dagster.elicitation.batch_tables",
    "elicitation_batch_requests": "ual_dagster.elicitation.batch_tables",
    "training_sets": "ual_dagster.train.training_sets",
    "base_models": "ual_dagster.train.checkpoints",
    "training_curves": "ual_dagster.train.checkpoints",
    "variant_checkpoints": "ual_dagster.train.checkpoints",
    "eval_scores": "ual_dagster.evaluation.scores",
    "eval_items": "ual_dagster.evaluation.scores",
    "comparisons": "ual_dagster.evaluation.comparisons",
    "token_clustering": "ual_dagster.evaluation.clustering",
}
