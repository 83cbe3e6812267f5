"""Retry timing: exponential backoff with jitter, or the server's Retry-After.

The openai client's own retries are switched off (max_retries=0) so that every attempt is
counted against the row and the budget, and so Retry-After is honoured exactly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


def backoff_delay(retry_number: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Wait before retry `retry_number` (1-based): half of base*2**(n-1) fixed, half jitter, capped."""
    ceiling = min(max_s, base_s * 2 ** (retry_number - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def retry_after_s(headers: Mapping[str, str] | None, cap_s: float) -> float | None:
    """Seconds the server asked us to wait: 'retry-after-ms', or 'retry-after' as seconds or HTTP date."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    value: float | None = None
    if "retry-after-ms" in lowered:
        try:
            value = float(lowered["retry-after-ms"]) / 1000.0
        except ValueError:
            value = None
    if value is None and "retry-after" in lowered:
        text = lowered["retry-after"].strip()
        try:
            value = float(text)
        except ValueError:
            try:
                when = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return None
            value = (when - datetime.now(timezone.utc)).total_seconds()
    if value is None:
        return None
    return min(max(value, 0.0), cap_s)
