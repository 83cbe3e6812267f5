"""Progress lines: an ETA from this run's pace, a line at least every `every_s`, one at the end."""

import threading

from ual_dagster.progress import Progress, format_seconds


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_every_interval_with_an_eta_and_at_the_end():
    clock, lines = Clock(), []
    progress = Progress("pre-training", 60, lines.append, every_s=10, clock=clock)
    for _ in range(60):
        clock.now += 1.5  # 1.5 s per step: a line every 7th step (10.5 s), plus the last
        progress.advance(note="loss 2.0")
    assert len(lines) == 9, lines
    assert lines[0] == "pre-training: 7/60 steps (12%), 10s elapsed, ETA 1m20s; loss 2.0"  # 53 steps x 1.5 s
    assert lines[-1] == "pre-training: 60/60 steps (100%), 1m30s elapsed, done; loss 2.0"


def test_a_resumed_run_estimates_from_its_own_pace_and_force_logs():
    clock, lines = Clock(), []
    progress = Progress("LoRA training", 100, lines.append, start=90, every_s=10, clock=clock)
    clock.now += 2.0
    progress.advance(force=True)  # 1 step in 2 s, 9 left
    assert lines == ["LoRA training: 91/100 steps (91%), 2s elapsed, ETA 18s"]


def test_heartbeat_reports_a_slow_item_and_stops_at_the_end():
    clock, lines = Clock(), []
    progress = Progress("generation", 4, lines.append, every_s=10, clock=clock)
    assert not progress.heartbeat()  # nothing due yet
    clock.now += 11  # one item takes longer than the interval
    assert progress.heartbeat()
    assert lines == ["generation: 0/4 steps (0%), 11s elapsed, ETA unknown"]
    progress.update(4)
    clock.now += 60
    assert not progress.heartbeat()  # finished: no more lines


def test_the_heartbeat_thread_logs_while_an_item_blocks():
    seen = threading.Event()
    lines = []

    def log(line: str) -> None:
        lines.append(line)
        seen.set()

    with Progress("clustering", 2, log, every_s=0.05):
        assert seen.wait(timeout=30), "no heartbeat line while the step blocked"
    assert lines[0].startswith("clustering: 0/2 steps")


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.4, 61, 3725)] == ["0s", "59s", "1m01s", "1h02m"]


def test_no_log_no_thread():
    with Progress("quiet", 3, None) as progress:
        progress.advance(3)
    assert progress._heartbeat is None
