"""The Dagster face of alternate worlds: `reroll_job` and `promote_job`, both on the `epochs` partitions.

Backfilling `epoch_job` over committed epochs replays them; launching (or backfilling) `reroll_job`
over them re-rolls each into a new alternate world instead, leaving the canon alone. `promote_job`
makes a world of the latest epoch the canon and runs the epoch again to rebuild it from the record.
They are op jobs, not asset jobs, on purpose: a re-roll is not a materialization of the canon.
"""

import dagster as dg

from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.assets.elo_rankings import EloConfig
from dream_pipeline.defs.epoch.partitions import epochs_partitions
from dream_pipeline.defs.metadata import chapter_metadata, markdown_table
from dream_pipeline.domains import load_domain
from dream_pipeline.epoch.worlds import RerollFailed, reroll, unwind_for_promotion
from resources.fabric import PromotionError, StateFabric
from resources.llm import LLMEngine


@dg.op(out=dg.Out(dg.Nothing))
def reroll_epoch(context: dg.OpExecutionContext, config: EloConfig, fabric: StateFabric, llm: LLMEngine) -> None:
    """A new alternate world of the committed epoch: fresh engine calls with the world's seed."""
    key = context.partition_key
    try:
        world = reroll(fabric, llm, key, config, context.log.info)
    except (RerollFailed, PromotionError) as exc:
        raise dg.Failure(str(exc)) from None  # the message says it all; the CLI prints it as one line
    canon = fabric.epoch(key)
    canon_names = {a.instance_id: a.name for a in fabric.agents(canon.active_agent_ids)}
    doc = world.document
    chapter = doc["chapter"]
    context.add_output_metadata({
        "world": world.world_key,
        "seed": world.seed,
        "winner": doc["winner"],
        "canon_winner": canon_names.get(canon.winner_agent_id, ""),
        "eliminated": doc["eliminated"] or "(nobody: all in grace)",
        "canon_eliminated": canon_names.get(canon.loser_agent_id, "") or "(nobody)",
        "abstentions": len(doc["abstentions"]),
        "standings": dg.MetadataValue.md(markdown_table(
            [{k: s[k] for k in ("rank", "agent", "epoch_score", "elo_before", "elo_after")} for s in doc["standings"]]
        )),
        "chapter": dg.MetadataValue.md(load_domain(canon.book).canon_markdown(
            chapter["number"], chapter["title"], chapter["author"], chapter["text"], world=world.world_number)),
    })


@dg.job(
    partitions_def=epochs_partitions,
    executor_def=dg.in_process_executor,
    description="Re-roll a committed epoch into a new alternate world (fresh engine calls); the canon is untouched.",
)
def reroll_job():
    reroll_epoch()


class PromoteConfig(dg.Config):
    world: int  # the world number, as `dream worlds` lists it


@dg.op(out=dg.Out(dg.Nothing))
def promote_world(context: dg.OpExecutionContext, config: PromoteConfig, fabric: StateFabric,
                  llm: LLMEngine) -> None:
    """Make the world the canon of the latest epoch, then rebuild the epoch from its recorded calls."""
    key = context.partition_key
    try:
        unwind_for_promotion(fabric, key, config.world)
    except PromotionError as exc:
        raise dg.Failure(str(exc)) from None  # the message says it all; the CLI prints it as one line
    context.log.info(f"{key}: world {config.world} promoted; running the epoch again from its record")
    run = dg.materialize(
        epoch_assets, instance=context.instance, partition_key=key, resources={"fabric": fabric, "llm": llm},
        tags={"dream/promoted-world": str(config.world)}, raise_on_error=False,
    )
    if not run.success:
        raise dg.Failure(f"{key}: world {config.world} is promoted but the epoch did not finish; "
                         "`dream run` (or the loop) finishes it from the same record")
    epoch = fabric.epoch(key)
    chapter = fabric.chapter_for_epoch(epoch.epoch_id)
    context.add_output_metadata(chapter_metadata(chapter, load_domain(epoch.book)))


@dg.job(
    partitions_def=epochs_partitions,
    executor_def=dg.in_process_executor,
    description="Promote an alternate world of the book's latest epoch to the canon (config: world).",
)
def promote_job():
    promote_world()
