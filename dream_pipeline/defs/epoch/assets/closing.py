"""The epoch's closing step: two assets, `elo_rankings` and `chapter`, materialized by one Dagster step.

The rolling summary's engine call needs only the chapter, and the chapter only the winner, which the
epoch's own ballots decide (`decide_winner`: its Elo update and epoch scores, or in a domain with tests
the candidates' runs). So the summary goes out as soon as the winner is known: from the opening step,
once the last ballot is in (`epoch/summary_ahead.py`; this step takes that call when its own ranking
crowns the same draft, else sends it here), and the votes' bookkeeping, the step boundary and the
window's statistics (Bradley–Terry bootstrap, voter flags, the elimination rule: the step's CPU) pass
while it is in flight; without this the summary waited for all of them.
The order of the writes is unchanged: ratings, chapter, summary, then the Reaper's commit. The asset
graph is unchanged (peer_votes → elo_rankings → chapter), and either asset can still be selected alone
(`can_subset`): the chapter alone reads the winner the stored ranking names. A domain without a
summary (CodeRepair) decides its winner last instead, by its candidates' sandbox runs, which finish
while the window's statistics are computed.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import dagster as dg

from dream_pipeline.defs.epoch.assets.chapter import CHAPTER, CHAPTER_SPEC, close_epoch
from dream_pipeline.defs.epoch.assets.elo_rankings import (
    ELO_RANKINGS,
    ELO_RANKINGS_SPEC,
    EloConfig,
    rank_epoch,
)
from dream_pipeline.defs.epoch.partitions import epochs_partitions
from dream_pipeline.epoch.collapse import chapter_draft, summarize
from dream_pipeline.epoch.rank import compose_ranking, decide_winner
from dream_pipeline.epoch.replay import is_replay
from dream_pipeline.epoch.scope import load_scope
from dream_pipeline.epoch.summary_ahead import take_summary
from resources.fabric import StateFabric
from resources.llm import LLMEngine


@dg.multi_asset(specs=[ELO_RANKINGS_SPEC, CHAPTER_SPEC], partitions_def=epochs_partitions, can_subset=True,
                name="rankings_and_chapter")
def rankings_and_chapter(context: dg.AssetExecutionContext, config: EloConfig, fabric: StateFabric,
                         llm: LLMEngine):
    """Rank the epoch, then commit its chapter and reap; the summary's engine call is out from the moment
    the winner is known."""
    selected = context.selected_asset_keys
    scope = load_scope(fabric, context.partition_key)
    if ELO_RANKINGS not in selected:  # the chapter alone: the stored ranking named the winner
        yield close_epoch(context, fabric, llm, scope)
        return
    written, votes = fabric.drafts(scope.epoch.epoch_id), fabric.votes(scope.epoch.epoch_id)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="summary") as pool:
        summary = verdict = None
        if CHAPTER in selected and scope.book.canon_memory and not is_replay(scope.epoch):
            verdict = decide_winner(scope, written, votes, fabric, config)
            winner = next(d for d in written if d.agent_name == verdict.winner)
            # out since the last ballot (`summary_ahead`), when the opening step crowned the same draft
            summary = take_summary(scope.key, winner.draft_id) or \
                pool.submit(summarize, fabric, llm, scope, chapter_draft(scope, winner))
        ranking = compose_ranking(scope, written, votes, fabric, config, verdict)
        yield rank_epoch(context, config, fabric, scope, written, ranking)
        if CHAPTER in selected:  # the epoch as the ranking left it: winner and loser stored
            yield close_epoch(context, fabric, llm, replace(scope, epoch=fabric.epoch(scope.key)), summary)
