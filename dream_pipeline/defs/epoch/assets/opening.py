"""The epoch's opening step: two assets, `roster` and `drafts`, materialized by one Dagster step.

Everything between the predecessor's commit and this epoch's first engine call is dead time, and a
step boundary there costs the executor's transition and four events written to Dagster's event log
(the roster's output and success, the drafts' start, ~6 ms each on 2 cores). So the step that waits at
the barrier goes straight on to the drafts, and the roster's materialization (its table of agents and
ratings) is written once the draft requests are out. The asset graph is unchanged (roster → drafts),
and either asset can still be selected alone (`can_subset`): the drafts alone read the epoch a roster
opened before.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from dream_pipeline.defs.epoch.assets.drafts import DRAFTS, draft_epoch
from dream_pipeline.defs.epoch.assets.roster import ROSTER, RosterConfig, open_epoch, roster_result
from dream_pipeline.defs.epoch.partitions import epochs_partitions
from dream_pipeline.epoch.scope import load_scope, scope_for
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


@dg.multi_asset(specs=[ROSTER_SPEC, DRAFTS_SPEC], partitions_def=epochs_partitions, can_subset=True,
                name="roster_and_drafts")
def roster_and_drafts(context: dg.AssetExecutionContext, config: RosterConfig, fabric: StateFabric,
                      llm: LLMEngine):
    """Open the epoch at the barrier, then draft at once. Dagster wants the roster reported before the
    drafts (topological order), so the drafts go out on a worker thread first and the roster's events are
    written once they are in flight."""
    selected = context.selected_asset_keys
    opened = None
    if ROSTER in selected:
        opened = open_epoch(context, config, fabric, llm)
        if opened is None:  # nothing to do: the run ends cleanly, and the later steps are skipped
            return
    # the epoch just opened is not read again, only its agents
    scope = load_scope(fabric, context.partition_key) if opened is None else scope_for(fabric, opened.epoch)
    if DRAFTS not in selected:
        yield roster_result(fabric, opened, scope)
        return
    sent = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drafts") as pool:
        drafting = pool.submit(draft_epoch, context, fabric, llm, scope, on_sent=sent.set)
        drafting.add_done_callback(lambda _: sent.set())  # a burst that never sent: do not wait for ever
        if opened is not None:
            sent.wait()  # the roster's events take no CPU from the prompt and the requests
            yield roster_result(fabric, opened, scope)  # also when the drafts then fail: who was on the roster
        yield drafting.result()
