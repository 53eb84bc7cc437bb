"""The roster's half of the opening step: wait at the barrier, open the epoch and claim it; the roster's
materialization (the agents alive at the epoch's start). `opening.py` composes it with the drafts."""

import weakref
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from dream_pipeline.config.settings import cast_size
from dream_pipeline.defs.epoch.partitions import epoch_key, parse_epoch_key
from dream_pipeline.defs.loop.loop_state import (
    LOOP_TAG,
    WORKER_TAG,
    last_phase_success,
    live_runs,
    run_is_live,
    worker_identity,
)
from dream_pipeline.defs.metadata import markdown_table
from dream_pipeline.defs.phase.window import phase_window_from_env
from dream_pipeline.domains import load_domain
from dream_pipeline.epoch.replay import is_replay
from dream_pipeline.epoch.scope import EpochScope
from resources.epoch_barrier import EpochBarrier, PredecessorLost
from resources.fabric import EpochRecord, StateFabric
from resources.llm import LLMEngine

OUTCOME_TAG = "dream/outcome"
ROSTER = dg.AssetKey("roster")
_HELD: weakref.WeakSet = weakref.WeakSet()  # instances whose storage already keeps its connection


def hold_storage_connection(instance: dg.DagsterInstance) -> None:
    """Let this process's Dagster storage keep a connection between events, as the webserver does: by
    default (a NullPool) it opens one per event written or run read, about 5 ms each and some sixty an
    epoch, most of them after the barrier's release. One is held (replaced after 5 minutes), up to four
    more while busy; no statement timeout. A no-op on storage without a pool (SQLite)."""
    if instance in _HELD:
        return
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=300, max_overflow=4)
    _HELD.add(instance)


class RosterConfig(dg.Config):
    barrier_timeout_s: float = 6 * 3600.0  # a staged run waits for its whole predecessor epoch
    phase_gate: bool = True  # a new epoch of the loop never starts inside the PHASE window


@dataclass(frozen=True)
class OpenedEpoch:
    """The epoch a run opened (or found committed, for a replay) and its barrier wait: the roster's
    materialization is reported from it after the drafts are out (`roster_result`)."""

    epoch: EpochRecord
    replay: bool
    waited: float


def open_epoch(context: dg.AssetExecutionContext, config: RosterConfig, fabric: StateFabric,
               llm: LLMEngine) -> OpenedEpoch | None:
    """Wait at the barrier, then open (or find) the epoch and claim it for this run; None when the run
    ends cleanly with nothing to do (PHASE is open, the predecessor was lost, another live run owns it).

    A run staged early waits here until the previous epoch has committed (LISTEN/NOTIFY in the
    fabric), with its engine client warmed up first."""
    key = context.partition_key
    book_name, number = parse_epoch_key(key)
    book = load_domain(book_name)  # from the SPICA registry only
    seats = cast_size()
    if fabric.ensure_book(book, seats):
        context.log.info(f"new book {book.title!r}: seated {seats or len(book.initial_cast())} agents")
    instance = context.instance
    hold_storage_connection(instance)  # before the barrier: the epoch's events then reuse it
    instance.add_run_tags(context.run_id, {WORKER_TAG: worker_identity()})  # lets the loop see a killed run
    barrier = EpochBarrier(fabric, lambda k: bool(live_runs(instance, k, exclude=context.run_id)))
    existing = fabric.find_epoch(key)
    waited = 0.0
    loop_run = context.run.tags.get(LOOP_TAG) == "epoch"

    def phase_allows() -> bool:
        # PHASE gates the loop's own new epochs; an epoch a person asks for (`dream run`, a backfill) just runs
        if existing is not None or not config.phase_gate or not loop_run:
            return True
        window, now = phase_window_from_env(), datetime.now(UTC)
        # Dagster's run history is read only inside the window (did PHASE already finish tonight?)
        return not window.contains(now) or not window.blocks(now, last_phase_success(instance))

    if existing is not None and existing.status == "committed":
        epoch = existing  # a replay: no barrier, nothing opened
    else:
        previous = epoch_key(book_name, number - 1) if number > 1 else None
        llm.warm_up()
        try:
            epoch, waited = barrier.open_in_turn(book_name, key, number, previous, config.barrier_timeout_s,
                                                 gate=phase_allows)
        except PredecessorLost as lost:
            if not loop_run:
                raise
            # a staged run whose predecessor died: end cleanly at once; the loop runs the predecessor again
            context.log.info(f"{lost}; ending this staged run")
            instance.add_run_tags(context.run_id, {OUTCOME_TAG: "predecessor-lost"})
            return None
        if epoch is None:
            context.log.info(f"PHASE window is open: {key} will start after it; ending this run cleanly")
            instance.add_run_tags(context.run_id, {OUTCOME_TAG: "deferred-phase"})
            return None
    replay = is_replay(epoch)  # a committed epoch is verified, never claimed or written
    owner = None if replay else barrier.claim(epoch.epoch_id, context.run_id, lambda run_id: run_is_live(instance, run_id))
    if owner is not None:
        context.log.info(f"{key} is already owned by live run {owner}; ending this run cleanly")
        instance.add_run_tags(context.run_id, {OUTCOME_TAG: "duplicate"})
        return None
    return OpenedEpoch(epoch, replay, waited)


def roster_result(fabric: StateFabric, opened: OpenedEpoch, scope: EpochScope) -> dg.MaterializeResult:
    """The roster's materialization: the agents alive at the epoch's start (`scope`'s), with their ratings
    before it."""
    epoch, book, number, agents = scope.epoch, scope.book, scope.number, scope.agents
    ratings = fabric.ratings_before(book.name, number, epoch.active_agent_ids)
    rows = [
        {
            "agent": a.name,
            "generation": a.lineage.generation,
            "origin": a.lineage.origin,
            "rating": ratings.get(a.instance_id),
        }
        for a in agents
    ]
    return dg.MaterializeResult(
        asset_key=ROSTER,
        metadata={
            "epoch_id": str(epoch.epoch_id),
            "epoch_number": number,
            "book": book.title,
            "agents": len(agents),
            "barrier_wait_s": round(opened.waited, 3),
            "replay": "verifying the committed epoch (nothing is rewritten)" if opened.replay else "no",
            "roster": dg.MetadataValue.md(markdown_table(rows)),
        },
    )
