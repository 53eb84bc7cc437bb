"""Collapse and Reap: the winning draft becomes the next chapter, then the Reaper op replaces the loser.

The chapter asset is a graph of two ops so that the replacement happens in the same run as the
epoch (no run sits between two epochs) and so that the epoch's commit, the new roster and the
`dream_epochs` notification land in one transaction (`StateFabric.reap`).
"""


import asyncio
import math
import random

import dagster as dg

from dream_pipeline.defs.epoch.partitions import epochs_partitions
from dream_pipeline.domains.book.prompts import chapter_title, summary_messages
from dream_pipeline.epoch import canon
from dream_pipeline.epoch.replay import is_replay, verify_replay
from dream_pipeline.epoch.scope import EpochScope, epoch_seed, load_scope
from dream_pipeline.tournament.diversity import Member, choose_replacement_parent, crossed_traits
from dream_pipeline.tournament.sanitize import storable_text
from resources.fabric import ChapterRow, StateFabric
from resources.llm import LLMCallError, LLMEngine
from spica import SpicaAgent


@dg.op(ins={"ranked": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def commit_chapter(context: dg.OpExecutionContext, fabric: StateFabric, llm: LLMEngine) -> None:
    """Collapse: write the epoch winner's draft to the canon (a rerun rewrites the same chapter), then
    bring the book's rolling summary up to date with it (one recorded engine call)."""
    scope = load_scope(fabric, context.partition_key)
    if scope.epoch.winner_agent_id is None:
        raise dg.Failure(f"{scope.key} has no winner yet: materialize elo_rankings first")
    winner = next(d for d in fabric.drafts(scope.epoch.epoch_id) if d.agent_id == scope.epoch.winner_agent_id)
    scores = sorted(
        (r.epoch_score for r in fabric.ratings(scope.epoch.epoch_id) if r.epoch_score is not None), reverse=True
    )
    margin = scores[0] - scores[1] if len(scores) > 1 else None
    row = ChapterRow(
        chapter_number=scope.number, draft_id=winner.draft_id, agent_id=winner.agent_id,
        title=chapter_title(winner.text, scope.number), text=winner.text,
        epoch_score=scores[0] if scores else None, margin=margin, embedding=winner.embedding,
    )
    if is_replay(scope.epoch):  # a committed epoch: compare with the canon, write nothing (summary included)
        verify_replay(fabric, scope.epoch, {"chapter": canon.chapter_facts(row)})
        context.log.info(f"chapter {scope.number} verified against its commit")
        return
    fabric.commit_chapter(scope.epoch.epoch_id, scope.book.name, row)
    context.log.info(f"chapter {scope.number} committed: written by the {winner.agent_name}")
    update_summary(context, fabric, llm, scope)


def update_summary(context: dg.OpExecutionContext, fabric: StateFabric, llm: LLMEngine, scope: EpochScope) -> None:
    """The rolling summary after this epoch's chapter. A failed call leaves the previous summary in
    use (the next chapter's summary starts from it); it never fails the epoch."""
    chapter = fabric.chapter_for_epoch(scope.epoch.epoch_id)
    previous = fabric.latest_summary(scope.book.name, scope.number)
    messages = summary_messages(scope.book, previous, chapter, llm.summary_tokens)

    async def summarize():
        async with llm.session(scope.key) as session:
            try:
                completion = await session.chat(
                    purpose="summary", agent_name=None, messages=messages, max_tokens=llm.summary_tokens
                )
            except LLMCallError as exc:
                return None, str(exc), session.calls
            return completion, None, session.calls

    completion, error, calls = asyncio.run(summarize())
    fabric.record_llm_calls(calls)
    if completion is None or not completion.text.strip():
        context.log.warning(f"the summary was not updated after chapter {scope.number}: {error or 'empty reply'}")
        return
    fabric.write_summary(scope.epoch.epoch_id, scope.book.name, scope.number, storable_text(completion.text.strip()))


def lineage_root(agent: SpicaAgent) -> str:
    """The root persona an agent descends from (a mutation keeps its root's name as `base_name`)."""
    return str(agent.manifest.get("base_name", agent.name))


def choose_replacement(scope: EpochScope, loser: SpicaAgent, used_names: set[str], survivors: list[SpicaAgent],
                       members: list[tuple[SpicaAgent, bool, float | None]]) -> SpicaAgent:
    """A fresh reserve persona if any is left (drawn with the epoch's seed), else a mutation of the elite
    of the least-represented lineage among the survivors, its traits crossed with another lineage's
    (`tournament/diversity.py`)."""
    pool = [p for p in scope.book.reserve() if p["name"] not in used_names]
    seed = epoch_seed(scope.key)
    if pool:
        persona = random.Random(seed).choice(pool)  # noqa: S311 (reproducible draw, not crypto)
        return scope.book.recruit(persona, replaced=loser)
    by_name = {agent.name: agent for agent, _, _ in members}
    for agent in survivors:
        by_name.setdefault(agent.name, agent)
    scored = [Member(agent.name, lineage_root(agent), agent.name in {s.name for s in survivors},
                     -math.inf if score is None else float(score)) for agent, _, score in members]
    parent = by_name[choose_replacement_parent(scored, [s.name for s in survivors])]
    donors = sorted({lineage_root(a): a for a in survivors if lineage_root(a) != lineage_root(parent)}.items())
    donor = donors[seed % len(donors)][1] if donors else parent
    generation = parent.lineage.generation + 1
    child = parent.mutate(generation)
    while child.name in used_names:
        generation += 1
        child = parent.mutate(generation)
    crossed = {**child.manifest, **crossed_traits(child.manifest, donor.manifest, seed)}
    return SpicaAgent(crossed, instance_id=child.instance_id, lineage=child.lineage)


@dg.op(ins={"committed": dg.In(dg.Nothing)}, out=dg.Out(dg.Nothing))
def reaper(context: dg.OpExecutionContext, fabric: StateFabric) -> None:
    """Reap: retire the eliminated agent (record and lineage kept), seat its replacement, commit the epoch."""
    scope = load_scope(fabric, context.partition_key)
    loser = next((a for a in scope.agents if a.instance_id == scope.epoch.loser_agent_id), None)
    replacement = None
    if loser is not None and scope.epoch.status != "committed":
        ratings = {r.agent_id: r.rating_after for r in fabric.ratings(scope.epoch.epoch_id)}
        survivors = sorted(
            (a for a in scope.agents if a is not loser), key=lambda a: -ratings.get(a.instance_id, -math.inf)
        )
        replacement = choose_replacement(scope, loser, fabric.persona_names_used(scope.book.name), survivors,
                                         fabric.lineage_members(scope.book.name))
    verified = verify_replay(fabric, scope.epoch, {}) if is_replay(scope.epoch) else {}
    outcome = fabric.reap(scope.epoch, loser, replacement)
    if outcome.already_done:
        context.log.info(f"{scope.key} was already committed; nothing to reap")
    elif outcome.retired:
        context.log.info(f"the Reaper retired {outcome.retired}; {outcome.replacement} joins the tournament")
    chapter = fabric.chapter_for_epoch(scope.epoch.epoch_id)
    lineage = (
        f"{replacement.name} ({replacement.lineage.origin}) replaces {outcome.retired}"
        if outcome.replacement and replacement else ""
    )
    context.add_output_metadata(
        {
            "chapter_number": chapter.chapter_number,
            "title": chapter.title,
            "author": chapter.author,
            "words": len(chapter.text.split()),
            "margin": chapter.margin,
            "eliminated": outcome.retired or "",
            "replacement": lineage,
            "chapter": dg.MetadataValue.md(f"## Chapter {chapter.chapter_number}: {chapter.title}\n\n"
                                           f"*by the {chapter.author}*\n\n{chapter.text}"),
            **verified,
        }
    )


@dg.graph_asset(
    partitions_def=epochs_partitions,
    group_name="epoch",
    ins={"elo_rankings": dg.AssetIn("elo_rankings", dagster_type=dg.Nothing)},
    kinds={"postgres"},
)
def chapter(elo_rankings):
    """The epoch's chapter in the canon, and the roster the next epoch starts with."""
    return reaper(commit_chapter(elo_rankings))
