"""Hugging Face data sets: `datasets.load_dataset(hub_id, hub_config, split, revision)`.

`hub_id` may also be a local directory (absolute, or relative to the project root): a
`Dataset.save_to_disk` / `DatasetDict.save_to_disk` copy is opened with `load_from_disk`,
any other directory of data files with `load_dataset(<dir>)`. That is how a cluster
mirror or an offline copy is used, and how the hub path is tested without the network.

`columns` maps {instruction, input, output} to the data set's column names; without it
the schema is detected from the column names by its defining fields, like a file's keys
(records.DEFINING_FIELDS: e.g. MetaMathQA's query/response, Dolly's
instruction/context/response). Rows are named "hub_id:split:row".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ual_dagster.config import resolve_path
from ual_dagster.config.data import DatasetConfig
from ual_dagster.data.errors import DataSourceError
from ual_dagster.data.records import ACCEPTED, SCHEMA_FIELDS, Schema, detect_schema, record_to_sample
from ual_dagster.data.samples import Reject, Sample
from ual_dagster.data.source import SourceRows

_BATCH_ROWS = 10_000


def _describe(cfg: DatasetConfig) -> str:
    parts = [f"hub data set {cfg.hub_id!r}"]
    if cfg.hub_config:
        parts.append(f"config {cfg.hub_config!r}")
    parts.append(f"split {cfg.split!r}")
    if cfg.revision:
        parts.append(f"revision {cfg.revision!r}")
    return ", ".join(parts)


def _load(cfg: DatasetConfig) -> Any:
    import datasets

    assert cfg.hub_id is not None  # DatasetConfig guarantees it for source 'hub'
    local = resolve_path(cfg.hub_id)
    try:
        if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(local))
            if isinstance(loaded, datasets.DatasetDict):
                if cfg.split not in loaded:
                    raise DataSourceError(f"{_describe(cfg)}: no such split; it has {sorted(loaded)}")
                return loaded[cfg.split]
            return loaded
        path = str(local) if local.is_dir() else cfg.hub_id
        return datasets.load_dataset(path, cfg.hub_config, split=cfg.split, revision=cfg.revision)
    except DataSourceError:
        raise
    except Exception as exc:  # datasets raises many types (hub, network, file, builder errors)
        raise DataSourceError(f"{_describe(cfg)} could not be loaded: {type(exc).__name__}: {exc}") from exc


def read_hub(cfg: DatasetConfig, dataset: str) -> SourceRows:
    ds = _load(cfg)
    available = list(ds.column_names)
    if cfg.columns:
        missing = sorted(col for col in cfg.columns.values() if col not in available)
        if missing:
            raise DataSourceError(f"{_describe(cfg)}: 'columns' names {missing}, but its columns are {available}")
        rename = {col: field for field, col in cfg.columns.items()}
        schema: Schema = "mapped"
    else:
        detected = detect_schema(available)
        if detected is None:
            raise DataSourceError(
                f"{_describe(cfg)}: cannot tell the record schema from its columns {available}; accepted: "
                f"{ACCEPTED}; or set 'columns'"
            )
        schema = detected
        rename = {col: col for col in SCHEMA_FIELDS[schema] if col in available}
    ds = ds.select_columns(list(rename))
    info = {"hub_id": cfg.hub_id, "split": cfg.split, "revision": cfg.revision, "schema": schema, "columns": rename}
    return SourceRows(_rows(ds, rename, schema, dataset, f"{cfg.hub_id}:{cfg.split}"), info)


def _rows(ds: Any, rename: dict[str, str], schema: Schema, dataset: str, prefix: str) -> Iterator[Sample | Reject]:
    row = 0
    for batch in ds.iter(batch_size=_BATCH_ROWS):
        columns = [(rename[col], values) for col, values in batch.items()]
        for i in range(len(columns[0][1])):
            record = {name: values[i] for name, values in columns}
            yield record_to_sample(schema, record, dataset, f"{prefix}:{row}")
            row += 1
