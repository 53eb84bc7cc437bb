"""`dream start`'s terminal: one line per finished epoch, each printed once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dream_pipeline.cli.epoch_lines import new_epoch_lines

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _row(key, status, start, end=None, first_call=None, failure=None):
    return {"epoch_key": key, "status": status, "start_time": T0 + timedelta(seconds=start), "released_at": None,
            "end_time": None if end is None else T0 + timedelta(seconds=end),
            "first_call_at": None if first_call is None else T0 + timedelta(seconds=first_call), "failure": failure}


def test_a_line_per_finished_epoch_with_run_and_dead_time_each_once():
    printed: set = set()
    timeline = [_row("b-00001", "committed", 0, 4.0, 0.1), _row("b-00002", "running", 4.1, None, 4.3)]
    assert new_epoch_lines(timeline, printed) == ["epoch b-00001 committed in 4.0 s"]
    assert new_epoch_lines(timeline, printed) == []  # nothing new
    timeline[1] = _row("b-00002", "committed", 4.1, 9.1, 4.3)
    timeline.append(_row("b-00003", "failed", 9.2, None, 9.4, failure="no valid ballot:\n the model\tdoes not"))
    assert new_epoch_lines(timeline, printed) == [
        "epoch b-00002 committed in 5.0 s, dead time 0.30 s",
        "epoch b-00003 failed: no valid ballot: the model does not (retried with backoff)",
    ]
