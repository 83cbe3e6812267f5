"""The one error a data source raises when it cannot be read at all."""

from __future__ import annotations


class DataSourceError(ValueError):
    """A file or hub data set that cannot be read as a whole (missing, unreadable, wrong shape).

    Bad *rows* never raise: they become rejects. The message always names the source.
    """


class DataQualityError(DataSourceError):
    """A data set that was read but is not usable: no row kept, or more than its
    `max_reject_share` of the rows rejected. Nothing is written for it."""
