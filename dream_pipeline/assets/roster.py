"""The roster: opens the epoch with the agents alive at its start (seating the cast on a new book)."""


import dagster as dg

from dream_pipeline.assets.common import markdown_table
from dream_pipeline.partitions import epochs_partitions, parse_epoch_key
from resources.fabric import StateFabric
from spica import SpicaBook


@dg.asset(partitions_def=epochs_partitions, group_name="epoch", kinds={"postgres"})
def roster(context: dg.AssetExecutionContext, fabric: StateFabric) -> dg.MaterializeResult:
    """The 5–7 agents who compete in this epoch; a rerun keeps the roster the epoch started with."""
    book_name, number = parse_epoch_key(context.partition_key)
    book = SpicaBook.load(book_name)
    if fabric.ensure_book(book):
        context.log.info(f"new book {book.title!r}: seated {len(book.initial_cast())} agents")
    epoch = fabric.open_epoch(book.name, context.partition_key, number)
    agents = fabric.agents(epoch.active_agent_ids)
    ratings = fabric.ratings_before(book.name, number)
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
        metadata={
            "epoch_id": str(epoch.epoch_id),
            "epoch_number": number,
            "book": book.title,
            "agents": len(agents),
            "roster": dg.MetadataValue.md(markdown_table(rows)),
        }
    )
