"""The D-REAM loop: epochs back to back, never two at once, paused by PHASE.

`plan_loop` is the whole decision, a pure function of a snapshot (clock included), so a simulated
day can be tested without waiting for 3 AM. The sensors only gather the snapshot and return the
decision:

- `dream_loop_sensor` starts an epoch on a cold start (nothing queued or running) and keeps the
  next ones staged: a staged run waits at the fabric's barrier (LISTEN/NOTIFY) and starts the
  moment its predecessor commits, so no sensor tick or run launch sits between two epochs.
- `epoch_failure_sensor` records why an epoch run failed; the loop sensor retries it with backoff.

Two runs can never work on one epoch: the opening step (`roster_drafts_and_votes`) claims the epoch for its run in the fabric.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import dagster as dg

from dream_pipeline.config.experiments import enabled_experiments
from dream_pipeline.defs.epoch.jobs import epoch_job
from dream_pipeline.defs.epoch.partitions import epoch_key, epochs_partitions, parse_epoch_key
from dream_pipeline.defs.loop.downtime import note_resumption
from dream_pipeline.defs.loop.loop_state import (
    LIVE_STATUSES,
    LOOP_TAG,
    PARTITION_TAG,
    fail_gone_runs,
    last_phase_success,
)
from dream_pipeline.defs.phase.window import PhaseWindow, phase_window_from_env
from resources.fabric import StateFabric

# one running, three waiting at the barrier, one queued behind the run queue's tag limit (4): the third
# has two whole epochs to boot, so epochs of a second or two (the offline engine) still find it ready
STAGING_DEPTH = 5
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_MAX = timedelta(minutes=10)


@dataclass(frozen=True)
class LoopSnapshot:
    now: datetime
    books: tuple[str, ...]
    next_numbers: Mapping[str, int]  # per book: the first epoch not yet committed
    active: tuple[str, ...] = ()  # epoch keys of queued or running loop runs, oldest first
    failures: Mapping[str, tuple[int, datetime]] = field(default_factory=dict)  # key -> (count, last end)
    previous_runs: Mapping[str, int] = field(default_factory=dict)  # key -> runs it already had (run keys)
    window: PhaseWindow = PhaseWindow()
    phase_completed_at: datetime | None = None
    last_key: str | None = None  # the last epoch the loop requested (sensor cursor)
    depth: int = STAGING_DEPTH
    epochs_per_cycle: Mapping[str, int] = field(default_factory=dict)  # per book; 1 when not given


def staging_depth() -> int:
    """`DREAM_LOOP_STAGING_DEPTH`: loop runs queued or running at once; 1 turns staging off."""
    raw = os.environ.get("DREAM_LOOP_STAGING_DEPTH", str(STAGING_DEPTH))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"DREAM_LOOP_STAGING_DEPTH must be a whole number >= 1, got {raw!r}")
    return int(raw)


def loop_default_status() -> dg.DefaultSensorStatus:
    """`DREAM_LOOP` (on/off, default on): whether the loop sensor runs until someone toggles it in the UI.
    `dream ui` sets it off (a user who opens the UI to look must not find new epochs written) unless
    `--loop`; `dream start` and `dream daemon` leave it on. A toggle in the UI is kept by the instance."""
    raw = os.environ.get("DREAM_LOOP", "on")
    if raw not in ("on", "off"):
        raise ValueError(f"DREAM_LOOP must be on or off, got {raw!r}")
    return dg.DefaultSensorStatus.RUNNING if raw == "on" else dg.DefaultSensorStatus.STOPPED


LOOP_DESCRIPTION = (
    "The D-REAM loop: keeps epochs running back to back (cold start, staging, retries with backoff, PHASE "
    "pause). {state}"
)
LOOP_STATES = {
    dg.DefaultSensorStatus.RUNNING: "On by default here (DREAM_LOOP=on: `dream start`, `dream daemon`, "
    "`dream ui --loop`): new epochs are written while it runs; stop it here to only look.",
    dg.DefaultSensorStatus.STOPPED: "Off by default here (DREAM_LOOP=off: `dream ui` without --loop), so "
    "opening the UI writes nothing; start it here, or use `dream start`, to run the loop.",
}


def backoff(failures: int) -> timedelta:
    """10 s, 20 s, 40 s, … capped at 10 minutes: a failing engine is retried, never abandoned."""
    return min(BACKOFF_BASE * 2 ** max(failures - 1, 0), BACKOFF_MAX)


def next_book(books: tuple[str, ...], base: str | None, epochs_per_cycle: Mapping[str, int]) -> str:
    """The book whose turn follows epoch `base`: books in turn, each for its `epochs_per_cycle` epochs.

    A turn ends at an epoch number that is a multiple of the book's epochs per cycle (1: every epoch), so
    the turn survives a restart: it is read off the epoch key, not kept in memory."""
    if base is None or parse_epoch_key(base)[0] not in books:
        return books[0]
    book, number = parse_epoch_key(base)
    if number % epochs_per_cycle.get(book, 1):
        return book
    return books[(books.index(book) + 1) % len(books)]


def next_key(snapshot: LoopSnapshot) -> str:
    """The epoch after the newest live one (or after the cursor): books in turn, numbers in order."""
    base = snapshot.active[-1] if snapshot.active else snapshot.last_key
    book = next_book(snapshot.books, base, snapshot.epochs_per_cycle)
    # the first epoch of the book without a live run, from its first uncommitted one: a gap (a run that
    # died ahead of staged ones) is filled before anything further is staged
    number = snapshot.next_numbers.get(book, 1)
    while epoch_key(book, number) in snapshot.active:
        number += 1
    return epoch_key(book, number)


def staging_keys(snapshot: LoopSnapshot) -> list[str]:
    """The epochs to request now: every free staging slot, filled in loop order in one tick.

    The daemon ticks a sensor at most every ~5 s; an epoch can be shorter than that, so one request
    per tick would hold the loop to one epoch per tick."""
    active = list(snapshot.active)
    keys = []
    for _ in range(snapshot.depth - len(snapshot.active)):
        key = next_key(replace(snapshot, active=tuple(active)))
        keys.append(key)
        active.append(key)
    return keys


def plan_loop(snapshot: LoopSnapshot) -> dg.SensorResult | dg.SkipReason:
    if snapshot.window.blocks(snapshot.now, snapshot.phase_completed_at):
        w = snapshot.window
        return dg.SkipReason(
            f"PHASE window {w.start:%H:%M}-{w.end:%H:%M} {w.timezone} is open: no new epoch until the "
            f"PHASE job completes or {w.closes_at(snapshot.now):%H:%M}"
        )
    if len(snapshot.active) >= snapshot.depth:
        return dg.SkipReason(f"{snapshot.active[0]} is running; {', '.join(snapshot.active[1:])} staged")
    keys = []
    for key in staging_keys(snapshot):
        failed, last_failure = snapshot.failures.get(key, (0, None))
        if failed and last_failure is not None and snapshot.now < last_failure + backoff(failed):
            if not keys:  # the epochs behind it would only wait for it
                wait = (last_failure + backoff(failed) - snapshot.now).total_seconds()
                return dg.SkipReason(f"{key} failed {failed} time(s); retrying in {wait:.0f} s")
            break
        keys.append(key)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"{key}#{snapshot.previous_runs.get(key, 0) + 1}", partition_key=key,
                          tags={LOOP_TAG: "epoch"})
            for key in keys
        ],
        dynamic_partitions_requests=[epochs_partitions.build_add_request(keys)],
        cursor=keys[-1],
    )


def _active_loop_keys(instance: dg.DagsterInstance) -> tuple[str, ...]:
    runs = instance.get_runs(dg.RunsFilter(job_name=epoch_job.name, statuses=LIVE_STATUSES))
    runs = fail_gone_runs(instance, runs)  # a killed worker must not hold the loop forever
    keys = [r.tags.get(PARTITION_TAG) for r in reversed(runs)]  # get_runs is newest first
    return tuple(dict.fromkeys(k for k in keys if k))


def _history(instance: dg.DagsterInstance, keys: list[str]) -> tuple[dict[str, tuple[int, datetime]], dict[str, int]]:
    """Each epoch's failed runs (count, last end) and how many runs it had at all (for a fresh run key)."""
    failures, runs = {}, {}
    for key in keys:
        records = instance.get_run_records(dg.RunsFilter(tags={PARTITION_TAG: key}), limit=200)
        if records:
            runs[key] = len(records)
        failed = [r for r in records if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
        if failed:
            latest = max(r.end_time or r.create_timestamp.timestamp() for r in failed)
            failures[key] = (len(failed), datetime.fromtimestamp(latest, tz=UTC))
    return failures, runs


@dg.sensor(
    job=epoch_job,
    minimum_interval_seconds=1,  # the daemon still ticks at most every ~5 s; staging hides it
    default_status=loop_default_status(),
    description=LOOP_DESCRIPTION.format(state=LOOP_STATES[loop_default_status()]),
)
def dream_loop_sensor(context: dg.SensorEvaluationContext, fabric: StateFabric):
    experiments = enabled_experiments()
    books = tuple(experiment.name for experiment in experiments)
    now = datetime.now(UTC)
    last_tick = context.last_tick_completion_time
    # the first tick after a stop notes the downtime, so status does not count it as dead time
    note_resumption(fabric, now, "loop sensor", ticking=True,
                    last_tick=None if last_tick is None else datetime.fromtimestamp(last_tick, tz=UTC))
    snapshot = LoopSnapshot(
        now=now,
        books=books,
        next_numbers={book: fabric.next_epoch_number(book) for book in books},
        active=_active_loop_keys(context.instance),
        window=phase_window_from_env(),
        phase_completed_at=last_phase_success(context.instance),
        last_key=context.cursor,
        depth=staging_depth(),
        epochs_per_cycle={experiment.name: experiment.epochs_per_cycle for experiment in experiments},
    )
    failures, previous_runs = _history(context.instance, staging_keys(snapshot))
    return plan_loop(replace(snapshot, failures=failures, previous_runs=previous_runs))


@dg.run_failure_sensor(
    # every job of the code location: epoch_job, the UI's implicit asset job (a backfill or a
    # materialization from the asset graph), re-rolls and promotions all run on epoch partitions
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records on its epoch why any run on an epoch partition failed (the loop sensor retries an "
    "open epoch with backoff; a failed replay of a committed epoch is recorded beside it, the canon untouched).",
)
def epoch_failure_sensor(context: dg.RunFailureSensorContext, fabric: StateFabric):
    key = context.dagster_run.tags.get(PARTITION_TAG)
    if key:
        fabric.record_run_failure(key, context.dagster_run.job_name, context.dagster_run.run_id,
                                  context.failure_event.message or "run failed")
