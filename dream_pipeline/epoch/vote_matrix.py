"""The voting matrix (voter × target) as a table: for Dagster metadata, the CLI and the deck."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from dream_pipeline.records import VoteRow


def vote_matrix(votes: Sequence[VoteRow]) -> pd.DataFrame:
    """Rows are voters, columns targets, cells insight scores; NaN where no vote (the diagonal)."""
    if not votes:
        return pd.DataFrame()
    frame = pd.DataFrame([{"voter": v.voter_agent, "target": v.target_agent, "score": v.insight_score} for v in votes])
    matrix = frame.pivot(index="voter", columns="target", values="score")
    names = sorted(set(matrix.index) | set(matrix.columns))
    return matrix.reindex(index=names, columns=names)


def vote_matrix_markdown(votes: Sequence[VoteRow]) -> str:
    matrix = vote_matrix(votes)
    if matrix.empty:
        return "_(no votes)_"
    shown = matrix.map(lambda s: "—" if pd.isna(s) else str(int(s)))
    shown.loc["mean received"] = [f"{m:.2f}" if pd.notna(m) else "—" for m in matrix.mean(axis=0)]
    return shown.rename_axis("voter \\ target").to_markdown()
