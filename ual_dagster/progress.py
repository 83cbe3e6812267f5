"""Progress lines with an ETA for long steps, at least every `every_s` seconds.

    with Progress("pre-training", total_steps, log, unit="steps") as progress:
        for step in range(total_steps):
            ...
            progress.advance(note=f"loss {loss:.3f}")

A line is logged when an item finishes and `every_s` has passed since the last line,
always for the last item, and, while inside the `with` block, from a heartbeat thread
when no item finished for `every_s` (a single slow item, a model load): so a watcher of
the run log never waits longer than that without news. Used without `with`, there is no
thread, and lines come only as items finish (enough for loops of short steps). The ETA assumes the remaining
items take as long on average as the finished ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EVERY_S = 10.0
Log = Callable[[str], None] | None


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    def __init__(
        self,
        label: str,
        total: int,
        log: Log,
        *,
        unit: str = "steps",
        start: int = 0,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.log, self.unit = label, max(0, int(total)), log, unit
        self.every_s, self.clock = every_s, clock
        # `start`: items finished before this run (a resumed training); the ETA uses this run's pace
        self.start = self.done = max(0, int(start))
        self.note = ""
        self.started = self.last_line_at = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # -- what a line says -------------------------------------------------------------
    def eta_s(self) -> float | None:
        run_done = self.done - self.start
        if run_done <= 0 or self.total <= 0:
            return None
        elapsed = self.clock() - self.started
        return elapsed / run_done * max(0, self.total - self.done)

    def line(self) -> str:
        elapsed = self.clock() - self.started
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = self.eta_s()
        eta_text = (
            "ETA unknown" if eta is None else ("done" if self.done >= self.total else f"ETA {format_seconds(eta)}")
        )
        note = f"; {self.note}" if self.note else ""
        return f"{self.label}: {self.done}/{self.total} {self.unit}{pct}, {format_seconds(elapsed)} elapsed, {eta_text}{note}"

    # -- reporting --------------------------------------------------------------------
    def _emit(self) -> None:
        if self.log is None:
            return
        with self._lock:
            self.last_line_at = self.clock()
            text = self.line()
        self.log(text)

    def advance(self, n: int = 1, note: str = "", force: bool = False) -> None:
        self.update(self.done + n, note, force)

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        """Record `done` items; log a line if `force`, at the end, or if `every_s` passed since the last."""
        with self._lock:
            self.done = done
            if note:
                self.note = note
            due = force or self.done >= self.total or self.clock() - self.last_line_at >= self.every_s
        if due:
            self._emit()

    def heartbeat(self) -> bool:
        """Log a line if none was logged for `every_s`; True when it did (the thread calls this)."""
        with self._lock:
            due = self.clock() - self.last_line_at >= self.every_s and self.done < self.total
        if due:
            self._emit()
        return due

    # -- the heartbeat thread ---------------------------------------------------------
    def __enter__(self) -> "Progress":
        if self.log is not None and self.total > 0:
            self._heartbeat = threading.Thread(target=self._beat, name=f"progress:{self.label}", daemon=True)
            self._heartbeat.start()
        return self

    def _beat(self) -> None:
        # wake often enough that a line is never much later than every_s
        while not self._stop.wait(min(1.0, self.every_s / 4)):
            self.heartbeat()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
