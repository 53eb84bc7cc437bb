"""`dream status`: is the loop running or paused, which epochs ran lately, how much dead time between them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from resources.fabric import StateFabric
from schedules.phase_window import phase_window_from_env


def dead_times(timeline: Sequence[dict[str, Any]], until: str = "first_call_at") -> list[float]:
    """Seconds from each epoch's commit to the next epoch's first engine call (`until="released_at"`: to
    its barrier release), for consecutive epochs: the time the engine waited for the loop."""
    gaps = []
    for previous, current in zip(timeline, timeline[1:], strict=False):
        if previous["end_time"] and current[until]:
            gaps.append((current[until] - previous["end_time"]).total_seconds())
    return gaps


def render_status(fabric: StateFabric, limit: int = 12, now: datetime | None = None, instance=None) -> str:
    import dagster as dg

    from dream_pipeline.instance import dagster_instance
    from dream_pipeline.jobs import epoch_job
    from dream_pipeline.loop_state import (
        LIVE_STATUSES,
        PARTITION_TAG,
        another_daemon_alive,
        last_phase_success,
        orphaned_runs,
    )

    now = now or datetime.now(UTC)
    instance = instance or dagster_instance()
    window = phase_window_from_env()
    live = instance.get_runs(dg.RunsFilter(job_name=epoch_job.name, statuses=LIVE_STATUSES))
    # a run whose process is gone is not running, whatever its status says
    gone = {r.run_id for r in orphaned_runs(instance, daemon_alive=another_daemon_alive(instance, now.timestamp()))}
    keys = [r.tags.get(PARTITION_TAG, "?") for r in reversed(live) if r.run_id not in gone]
    stale = sorted({r.tags.get(PARTITION_TAG, "?") for r in live if r.run_id in gone})
    if window.blocks(now, last_phase_success(instance)):
        state = f"paused for PHASE until the PHASE job completes or {window.closes_at(now):%H:%M} {window.timezone}"
    elif keys:
        state = f"running {keys[0]}" + (f"; staged: {', '.join(keys[1:])}" if keys[1:] else "")
    else:
        state = "idle (no epoch queued or running: is `dream start` or the daemon up?)"
    if stale:
        state += f"; interrupted (process gone, resumed by the next start): {', '.join(stale)}"
    timeline = fabric.loop_timeline(limit + 1)
    gaps = dead_times(timeline)
    lines = [
        f"loop   : {state}",
        f"PHASE  : {window.start:%H:%M}-{window.end:%H:%M} {window.timezone}",
        "",
        f"  {'epoch':<18} {'status':<10} {'started':<20} {'run s':>7} {'dead s':>7}",
    ]
    gap_by_key = {current["epoch_key"]: gap for current, gap in zip(timeline[1:], gaps, strict=False)}
    for row in timeline[-limit:]:
        began = row["released_at"] or row["start_time"]
        run = (row["end_time"] - began).total_seconds() if row["end_time"] else None
        gap = gap_by_key.get(row["epoch_key"])
        lines.append(
            f"  {row['epoch_key']:<18} {row['status']:<10} {began:%Y-%m-%d %H:%M:%S} "
            f"{_num(run):>7} {_num(gap):>7}"
        )
    if not timeline:
        lines.append("  (no epoch yet)")
    if gaps:
        ordered = sorted(gaps)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        lines += ["", f"dead time (a commit to the next epoch's first engine call): median "
                      f"{statistics.median(gaps):.2f} s, p95 {p95:.2f} s, max {max(gaps):.2f} s over {len(gaps)} gaps"]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
