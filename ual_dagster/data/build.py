"""build_instruction_set: read a configured data set, normalise, de-duplicate, store.

Counts always add up: n_read = n_kept + n_duplicates + n_rejects. With `limit`, reading
stops once `limit` samples are kept, so the counts describe what was read.
A data set with no kept row, or with more than cfg.max_reject_share of its rows rejected,
raises DataQualityError naming the source, its detected format and the most common reject
reason, and nothing is written: training on what little survived a wrong format (a Dolly
file read as Alpaca, ShareGPT forced to `chat_jsonl`) must never look like success.
The fingerprint is a content hash of the kept rows (sample id, split and, for the
testbed, family / intrinsic uncertainty / valid answers), independent of row order and
file location: re-loading an unchanged file gives the same fingerprint, an edited
row a different one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from ual_dagster.config import resolve_path
from ual_dagster.config.data import DatasetConfig
from ual_dagster.data.errors import DataQualityError
from ual_dagster.data.hub import read_hub
from ual_dagster.data.loaders import read_file
from ual_dagster.data.samples import Reject, Sample
from ual_dagster.data.source import SourceRows
from ual_dagster.data.store import replace_dataset
from ual_dagster.data.testbed import generate_testbed
from ual_dagster.fingerprint import hash_rows
from ual_dagster.storage import DuckDBStore

PROGRESS_EVERY = 100_000
EXAMPLES = 5  # rejects / duplicates quoted in the metadata


@dataclass
class InstructionSetResult:
    fingerprint: str
    n_read: int
    n_kept: int
    n_duplicates: int
    n_rejects: int
    reject_reasons: dict[str, int]
    metadata: dict[str, Any] = field(default_factory=dict)


def open_source(name: str, cfg: DatasetConfig) -> SourceRows:
    if cfg.source == "file":
        assert cfg.path is not None  # DatasetConfig guarantees it
        return read_file(resolve_path(cfg.path), cfg.format, name, cfg.columns)
    if cfg.source == "hub":
        return read_hub(cfg, name)
    assert cfg.testbed is not None
    samples = generate_testbed(cfg.testbed, name)
    return SourceRows((s for s in samples), {"testbed": cfg.testbed.model_dump(mode="json")})


def samples_fingerprint(samples: list[Sample]) -> str:
    return hash_rows(
        (
            s.sample_id,
            s.split,
            s.family,
            s.intrinsic_uncertainty,
            None if s.valid_answers is None else list(s.valid_answers),
        )
        for s in samples
    )


def build_instruction_set(
    name: str, cfg: DatasetConfig, store: DuckDBStore, log: Callable[[str], None] | None = None
) -> InstructionSetResult:
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    source = open_source(name, cfg)
    say(f"{name}: reading {source.info}")
    kept: dict[str, Sample] = {}
    rejects: list[Reject] = []
    duplicate_examples: list[str] = []
    n_read = n_duplicates = 0
    with closing(source.rows):
        for item in source.rows:
            n_read += 1
            if isinstance(item, Reject):
                rejects.append(item)
            elif item.sample_id in kept:
                n_duplicates += 1
                if len(duplicate_examples) < EXAMPLES:
                    duplicate_examples.append(f"{item.source} repeats {kept[item.sample_id].source}")
            else:
                kept[item.sample_id] = item
                if cfg.limit is not None and len(kept) >= cfg.limit:
                    break
            if n_read % PROGRESS_EVERY == 0:
                say(f"{name}: {n_read} rows read, {len(kept)} kept, {len(rejects)} rejected")
    read_s = time.perf_counter() - started
    samples = list(kept.values())
    reasons = Counter(r.reason for r in rejects)
    check_usable(name, cfg, source.info, n_read, len(samples), rejects, reasons)
    fingerprint = samples_fingerprint(samples)

    write_started = time.perf_counter()
    replace_dataset(store, name, samples, rejects)
    write_s = time.perf_counter() - write_started
    say(f"{name}: kept {len(samples)} of {n_read} rows ({n_duplicates} duplicates, {len(rejects)} rejects)")

    splits = Counter(s.split for s in samples)
    metadata: dict[str, Any] = {
        "source": cfg.source,
        **{k: v for k, v in source.info.items() if k != "testbed"},
        "n_read": n_read,
        "n_kept": len(samples),
        "n_train": splits.get("train", 0),
        "n_heldout": splits.get("heldout", 0),
        "n_duplicates": n_duplicates,
        "n_rejects": len(rejects),
        "reject_reasons": dict(sorted(reasons.items())),
        "reject_examples": [f"{r.source}: {r.message}" for r in rejects[:EXAMPLES]],
        "duplicate_examples": duplicate_examples,
        "stopped_at_limit": cfg.limit is not None and len(samples) >= cfg.limit,
        "mean_output_chars": round(sum(len(s.output) for s in samples) / len(samples), 1) if samples else 0.0,
        "read_s": round(read_s, 3),
        "write_s": round(write_s, 3),
    }
    if cfg.source == "testbed":
        metadata["families"] = dict(sorted(Counter(s.family or "" for s in samples).items()))
        metadata["intrinsic_uncertainty_histogram"] = _histogram(s.intrinsic_uncertainty or 0.0 for s in samples)
    return InstructionSetResult(
        fingerprint=fingerprint,
        n_read=n_read,
        n_kept=len(samples),
        n_duplicates=n_duplicates,
        n_rejects=len(rejects),
        reject_reasons=dict(sorted(reasons.items())),
        metadata=metadata,
    )


def describe_source(cfg: DatasetConfig, info: dict[str, Any]) -> str:
    """'file X (detected format: dolly records in jsonl)' and the like, for error messages."""
    schema = info.get("schema", "?")
    if cfg.source == "file":
        how = f"format {cfg.format!r}: " if cfg.format != "auto" else "detected format: "
        fields = f" via columns {info['columns']}" if info.get("columns") else ""
        return f"file {info.get('path', cfg.path)} ({how}{schema} records in {info.get('container', '?')}{fields})"
    if cfg.source == "hub":
        return f"hub data set {cfg.hub_id} split {cfg.split} (detected format: {schema})"
    return "the generated testbed"


def check_usable(
    name: str,
    cfg: DatasetConfig,
    info: dict[str, Any],
    n_read: int,
    n_kept: int,
    rejects: list[Reject],
    reasons: Counter,
) -> None:
    """Raise DataQualityError when the data set kept no row or rejected more than its share."""
    share = len(rejects) / n_read if n_read else 0.0
    if n_kept > 0 and share <= cfg.max_reject_share:
        return
    where = describe_source(cfg, info)
    if n_read == 0:
        raise DataQualityError(f"data set {name!r}: {where} holds no records")
    reason, count = reasons.most_common(1)[0] if reasons else ("(none: every row was a duplicate)", 0)
    example = next((r for r in rejects if r.reason == reason), None)
    verdict = (
        "no row kept" if n_kept == 0 else f"{share:.0%} of rows rejected (max_reject_share {cfg.max_reject_share:.0%})"
    )
    raise DataQualityError(
        f"data set {name!r}: {verdict}, {len(rejects)} of {n_read} rows rejected from {where}; most common reason: "
        f"{reason} ({count} rows"
        + (f", e.g. {example.source}" + (f": {example.detail}" if example.detail else "") if example else "")
        + ")"
    )


def _histogram(values: Any, bins: int = 10) -> dict[str, int]:
    """Counts per [i/bins, (i+1)/bins) bin of values in [0, 1] (1.0 falls in the last bin)."""
    counts = Counter(min(int(v * bins), bins - 1) for v in values)
    return {f"{i / bins:.1f}-{(i + 1) / bins:.1f}": counts.get(i, 0) for i in range(bins)}
