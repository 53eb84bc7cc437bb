"""Downtime: when the loop was not running at all. Dead time is the loop's own overhead between two
epochs; a gap between epochs that spans a stop and a start is split into the two, so `dream status` and the
deck's telemetry count only the dead time in their statistics and show the downtime apart.

The loop notes its own resumption: the loop sensor on its first tick after a pause of more than
`LOOP_DOWN_AFTER_S` (the daemon ticks it every few seconds while it runs), and `dream run` when it starts.
The downtime reaches back to the later of the sensor's previous tick and the last commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

# the daemon ticks the loop sensor every ~5 s while it runs, later on a busy machine; a pause this long
# means it was not running
LOOP_DOWN_AFTER_S = 15.0


def resumed_downtime(now: datetime, latest_commit: datetime | None, last_tick: datetime | None = None,
                     *, ticking: bool = False) -> tuple[datetime, datetime] | None:
    """The downtime that ends `now`, or None. `ticking`: the caller is the loop sensor, whose previous tick
    was `last_tick` (None: it never ticked); a tick within `LOOP_DOWN_AFTER_S` means the loop was running."""
    if ticking and last_tick is not None and (now - last_tick).total_seconds() <= LOOP_DOWN_AFTER_S:
        return None
    marks = [t for t in (latest_commit, last_tick if ticking else None) if t is not None]
    if not marks or max(marks) >= now:
        return None
    return max(marks), now


def merged(intervals: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Intervals sorted and with overlaps merged."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def split_gap(start: datetime, end: datetime, downtimes: Sequence[tuple[datetime, datetime]]) -> tuple[float, float]:
    """(dead seconds, down seconds) of the gap from `start` to `end`: the part inside downtime is down."""
    total = (end - start).total_seconds()
    down = sum(max(0.0, (min(end, b) - max(start, a)).total_seconds()) for a, b in merged(downtimes))
    down = min(max(down, 0.0), max(total, 0.0))
    return total - down, down


def note_resumption(fabric, now: datetime, resumed_by: str, *, last_tick: datetime | None = None,
                    ticking: bool = False) -> tuple[datetime, datetime] | None:
    """Record the downtime that ends `now`, if any (a sensor tick soon after the previous one reads nothing)."""
    if ticking and last_tick is not None and (now - last_tick).total_seconds() <= LOOP_DOWN_AFTER_S:
        return None
    interval = resumed_downtime(now, fabric.latest_commit_time(), last_tick, ticking=ticking)
    if interval:
        fabric.record_downtime(*interval, resumed_by)
    return interval
