"""`dream status`: is the loop running or paused, which epochs ran lately, how much dead time between them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dream_pipeline.defs.loop.downtime import split_gap
from dream_pipeline.defs.phase.window import phase_window_from_env
from dream_pipeline.epoch.engine_report import engine_lines, stall_lines
from resources.fabric import StateFabric


def dead_times(timeline: Sequence[dict[str, Any]], until: str = "first_call_at",
               downtimes: Sequence[tuple[datetime, datetime]] = ()) -> list[float]:
    """Seconds from each epoch's commit to the next epoch's first engine call (`until="released_at"`: to
    its barrier release), for consecutive epochs: the time the engine waited for the loop, without the
    `downtimes` (the loop stopped) inside the gap."""
    return [dead for dead, _ in gap_parts(timeline, until, downtimes).values()]


def gap_parts(timeline: Sequence[dict[str, Any]], until: str = "first_call_at",
              downtimes: Sequence[tuple[datetime, datetime]] = ()) -> dict[str, tuple[float, float]]:
    """Per epoch key, the gap before it split into (dead seconds, down seconds) (dream_pipeline/defs/loop/downtime.py)."""
    parts = {}
    for i, (previous, current) in enumerate(zip(timeline, timeline[1:], strict=False)):
        if previous["end_time"] and current[until]:
            parts[current.get("epoch_key", i)] = split_gap(previous["end_time"], current[until], downtimes)
    return parts


# dream_pipeline.defs.epoch.jobs.epoch_job's name: importing the job would import the whole asset graph (a second of
# CPU) for a name (tests/test_downtime.py checks they agree)
EPOCH_JOB_NAME = "epoch_job"

# what an epoch's status means (README, "Glossary")
STATUS_MEANINGS = {
    "running": "its agents are drafting or voting",
    "collapsed": "the votes chose the chapter and who is eliminated; the Reaper has not committed it yet",
    "committed": "its chapter is in the canon",
    "failed": "it stopped on an error; the loop rolls it again",
}


def render_status(fabric: StateFabric, limit: int = 12, now: datetime | None = None, instance=None) -> str:
    import dagster as dg

    from dream_pipeline.cli.instance import dagster_instance
    from dream_pipeline.defs.loop.loop_state import (
        LIVE_STATUSES,
        PARTITION_TAG,
        another_daemon_alive,
        last_phase_success,
        orphaned_runs,
    )

    now = now or datetime.now(UTC)
    instance = instance or dagster_instance()
    window = phase_window_from_env()
    live = instance.get_runs(dg.RunsFilter(job_name=EPOCH_JOB_NAME, statuses=LIVE_STATUSES))
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
    downtimes = fabric.downtimes(timeline[0]["start_time"]) if timeline else []
    lines = [
        f"loop   : {state}",
        f"PHASE  : {window.start:%H:%M}-{window.end:%H:%M} {window.timezone}",
        *engine_lines(fabric),
        *stall_lines(fabric),
        *domain_lines(fabric),
        "",
    ]
    return "\n".join(lines + render_timeline(timeline, downtimes, limit))


def domain_lines(fabric: StateFabric) -> list[str]:
    """One line per enabled experiment: its domain, its turn, its committed epochs (and, for a domain with
    tests, the mean pass rate of its winners)."""
    from dream_pipeline.config.experiments import enabled_experiments

    try:
        experiments = enabled_experiments()
    except ValueError as exc:
        return [f"domains: {exc}"]
    summaries = fabric.domain_summaries([e.name for e in experiments])
    lines = []
    for e in experiments:
        row = summaries.get(e.name, {})
        rate = row.get("winner_pass_rate")
        lines.append(
            f"domain : {e.name} ({e.domain}), {e.epochs_per_cycle} epoch(s) a turn: {row.get('committed', 0)} "
            f"committed" + (f", latest {row['last']}" if row.get("last") else "")
            + (f", {row['open']} open" if row.get("open") else "")
            + ("" if rate is None else f", winners pass {rate:.0%} of hidden tests"))
    return lines


def render_timeline(timeline: Sequence[dict[str, Any]], downtimes: Sequence[tuple[datetime, datetime]],
                    limit: int) -> list[str]:
    """The latest `limit` epochs with their run time and the gap before each, split into dead time and
    downtime; the dead-time statistics; the downtime apart."""
    parts = gap_parts(timeline, downtimes=downtimes)
    gaps = [dead for dead, _ in parts.values()]
    down = [d for _, d in parts.values() if d > 0]
    lines = [f"  {'epoch':<18} {'status':<10} {'started':<20} {'run s':>7} {'dead s':>7} {'down s':>8}"]
    for row in timeline[-limit:]:
        began = row["released_at"] or row["start_time"]
        run = (row["end_time"] - began).total_seconds() if row["end_time"] else None
        dead, stopped = parts.get(row["epoch_key"], (None, None))
        lines.append(
            f"  {row['epoch_key']:<18} {row['status']:<10} {began:%Y-%m-%d %H:%M:%S} "
            f"{_num(run):>7} {_num(dead):>7} {_num(stopped or None, blank=''):>8}"
        )
    if not timeline:
        lines.append("  (no epoch yet)")
    shown = {row["status"] for row in timeline[-limit:]}
    meanings = [f"{status}: {STATUS_MEANINGS[status]}" for status in STATUS_MEANINGS if status in shown]
    if meanings:
        lines += ["", "status " + "; ".join(meanings)]
    if gaps:
        ordered = sorted(gaps)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        lines += ["", f"dead time (a commit to the next epoch's first engine call, while the loop runs): median "
                      f"{statistics.median(gaps):.2f} s, p95 {p95:.2f} s, max {max(gaps):.2f} s over {len(gaps)} gaps"]
    if down:
        lines.append(f"downtime (the loop was stopped; not dead time): {sum(down):.0f} s in {len(down)} gap"
                     f"{'s' if len(down) != 1 else ''}")
    return lines


def _num(value: float | None, blank: str = "—") -> str:
    return blank if value is None else f"{value:.2f}"
