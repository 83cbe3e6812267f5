"""The one error a data source raises when it cannot be read at all."""

from __future__ import annotations


class DataSourceError(ValueError):
    """A file or hub data set that cannot be read as a whole (missing, unreadable, wrong shape).

    Bad *rows* never raise: they become rejects. The message always names the source.
    """
