"""The epoch's opening step: three assets, `roster`, `drafts` and `peer_votes`, materialized by one Dagster step.

Everything between the predecessor's commit and this epoch's first engine call is dead time, and
everything between the drafts' last answer and the first ballot request is overhead: a step boundary
there costs the executor's transition and the events written to Dagster's event log (an asset's
output and success, the next step's start, ~6 ms each on 2 cores). So the step that waits at the
barrier goes straight on to the drafts and from the drafts straight on to the ballots, and each
asset's materialization is written while the next engine phase is in flight: the roster's once the
draft requests are out, the drafts' once the ballot requests are. The asset graph is unchanged
(roster → drafts → peer_votes), and any of the three can still be selected alone (`can_subset`): the
drafts or the votes alone read the epoch a roster opened before.
"""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import dagster as dg

from dream_pipeline.defs.epoch.assets.chapter import CHAPTER
from dream_pipeline.defs.epoch.assets.drafts import DRAFTS, draft_epoch
from dream_pipeline.defs.epoch.assets.peer_votes import PEER_VOTES, PEER_VOTES_SPEC, vote_epoch
from dream_pipeline.defs.epoch.assets.roster import ROSTER, RosterConfig, open_epoch, roster_result
from dream_pipeline.defs.epoch.partitions import epochs_partitions
from dream_pipeline.epoch.scope import EpochScope, load_scope, scope_for
from dream_pipeline.epoch.summary_ahead import start_summary
from resources.fabric import StateFabric
from resources.llm import LLMEngine

ROSTER_SPEC = dg.AssetSpec(
    ROSTER, group_name="epoch", kinds={"postgres"}, skippable=True,
    description="The agents who compete in this epoch (the book's cast size, `DREAM_CAST_SIZE`); a rerun keeps "
                "the roster the epoch started with. Its step waits at the barrier until the previous epoch has "
                "committed, and ends cleanly, materializing nothing, when PHASE is open or another live run "
                "already owns the epoch.",
)
DRAFTS_SPEC = dg.AssetSpec(
    DRAFTS, deps=[ROSTER], group_name="epoch", kinds={"openai", "postgres"}, skippable=True,
    description="Every rostered agent's draft of the next chapter; truncated drafts carry the −5 penalty.",
)

Phase = Callable[[Callable[[], None]], dg.MaterializeResult]  # an engine phase, given its `on_sent`


@dg.multi_asset(specs=[ROSTER_SPEC, DRAFTS_SPEC, PEER_VOTES_SPEC], partitions_def=epochs_partitions,
                can_subset=True, name="roster_drafts_and_votes")
def roster_drafts_and_votes(context: dg.AssetExecutionContext, config: RosterConfig, fabric: StateFabric,
                            llm: LLMEngine):
    """Open the epoch at the barrier, then draft at once, then vote at once. Dagster wants the assets
    reported in their graph's order, so each engine phase runs on a worker thread and the asset before
    it is reported once its requests are in flight."""
    selected = context.selected_asset_keys
    opened = None
    if ROSTER in selected:
        opened = open_epoch(context, config, fabric, llm)
        if opened is None:  # nothing to do: the run ends cleanly, and the later steps are skipped
            return
    # the epoch just opened is not read again, only its agents
    scope = load_scope(fabric, context.partition_key) if opened is None else scope_for(fabric, opened.epoch)
    phases: list[Phase] = []
    if DRAFTS in selected:
        phases.append(lambda on_sent: draft_epoch(context, fabric, llm, scope, on_sent=on_sent))
    if PEER_VOTES in selected:  # the epoch as the drafts left it: their context window sizes the review
        phases.append(lambda on_sent: _vote(context, fabric, llm, replace(scope, epoch=fabric.epoch(scope.key)),
                                            on_sent))
    yield from _overlapped(phases, (lambda: roster_result(fabric, opened, scope)) if opened is not None else None)


def _vote(context: dg.AssetExecutionContext, fabric: StateFabric, llm: LLMEngine, scope: EpochScope,
          on_sent: Callable[[], None]) -> dg.MaterializeResult:
    """The votes; when this run goes on to the chapter, the rolling summary's engine call goes out as soon
    as the last ballot is in (`summary_ahead`), for the closing step to take."""
    closes = CHAPTER in context.job_def.asset_layer.selected_asset_keys  # the run's assets, as subset
    return vote_epoch(context, fabric, llm, scope, on_sent=on_sent,
                      on_ballots=(lambda: start_summary(fabric, llm, scope)) if closes else None)


def _overlapped(phases: list[Phase], first: Callable[[], dg.MaterializeResult] | None) -> Iterator[dg.MaterializeResult]:
    """Run the phases in turn on a worker thread, each once the one before has succeeded, and report each
    phase's result (and `first`'s, before them all) once the next phase's requests are on their way: the
    events take no CPU from the next phase's prompts and requests. A failed phase ends the step, after
    what came before it has been reported."""
    pending: list[Callable[[], dg.MaterializeResult]] = [first] if first is not None else []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine") as pool:
        for phase in phases:
            sent = threading.Event()
            running = pool.submit(phase, sent.set)
            running.add_done_callback(lambda _, s=sent: s.set())  # a phase that never sent: do not wait for ever
            sent.wait()
            for report in pending:  # also when this phase then fails: what came before it was done
                yield report()
            result = running.result()
            pending = [lambda r=result: r]
    for report in pending:
        yield report()
