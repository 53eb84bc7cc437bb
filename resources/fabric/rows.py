"""Rows read back into records, and vectors as psycopg sends them: shared by the fabric's concerns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dream_pipeline.records import ChapterRow, EpochRecord, VoteRow
from spica import Lineage, SpicaAgent


def as_vector(values: Sequence[float] | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float32)


def as_list(value) -> list[float] | None:
    """pgvector hands back numpy arrays or `Vector` objects depending on its version."""
    if value is None:
        return None
    return value.tolist() if hasattr(value, "tolist") else value.to_list()


def vote_from_row(r: dict[str, Any]) -> VoteRow:
    return VoteRow(
        voter_agent=r["voter_agent"], target_agent=r["target_agent"], voter_agent_id=r["voter_agent_id"],
        target_agent_id=r["target_agent_id"], insight_score=r["insight_score"], rationale=r["rationale"],
        masked_label=r["masked_label"], position=r["position"], latency_penalty=r["latency_penalty"],
    )


def chapter_from_row(r: dict[str, Any]) -> ChapterRow:
    return ChapterRow(
        chapter_number=r["chapter_number"], draft_id=r["draft_id"], agent_id=r["agent_id"], title=r["title"],
        text=r["text"], epoch_score=r["epoch_score"], margin=r["margin"], author=r["author"],
        epoch_key=r["epoch_key"],
    )


def agent_from_row(row: dict[str, Any]) -> SpicaAgent:
    return SpicaAgent(
        row["manifest"],
        instance_id=row["agent_id"],
        state=row["state"],
        lineage=Lineage(parent_id=row["parent_agent_id"], generation=row["generation"], origin=row["origin"]),
    )


def epoch_from_row(row: dict[str, Any]) -> EpochRecord:
    return EpochRecord(
        epoch_id=row["epoch_id"],
        epoch_key=row["epoch_key"],
        book=row["book"],
        epoch_number=row["epoch_number"],
        status=row["status"],
        active_agent_ids=tuple(row["active_agent_ids"]),
        winner_agent_id=row["winner_agent_id"],
        loser_agent_id=row["loser_agent_id"],
        world_seed=row.get("world_seed"),
        context_chapters=None if row.get("context_chapters") is None else tuple(row["context_chapters"]),
        context_window=row.get("context_window"),
        engine_modes=row.get("engine_modes"),
    )
