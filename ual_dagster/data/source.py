"""What every source (file, hub, testbed) hands to the builder: a stream of rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ual_dagster.data.samples import Reject, Sample


@dataclass
class SourceRows:
    """`rows` yields one Sample or Reject per record read, in source order.

    `info` describes the source (path, detected format and schema) and gains counters
    while `rows` is consumed (e.g. blank lines skipped); it is JSON-able metadata.
    """

    rows: Iterator[Sample | Reject]
    info: dict[str, Any] = field(default_factory=dict)
