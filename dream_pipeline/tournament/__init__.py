"""Pure tournament rules: de-identification, masking, ballots, penalties, Elo, selection, elimination, voter
reliability, diversity; no I/O, no clock, no global RNG."""

from dream_pipeline.tournament.anonymize import (
    MASK_ROLES,
    BallotItem,
    Presentation,
    plan_presentations,
    render_ballot_prompt,
)
from dream_pipeline.tournament.ballots import BallotError, Vote, ballot_json_schema, parse_ballot
from dream_pipeline.tournament.elo import DEFAULT_K, INITIAL_RATING, elo_update, pairwise_outcomes
from dream_pipeline.tournament.scoring import (
    TRUNCATION_PENALTY,
    DraftFacts,
    adjusted_score,
    epoch_scores,
    latency_penalty,
    penalties,
)
from dream_pipeline.tournament.selection import pick_winner

__all__ = [
    "MASK_ROLES",
    "BallotItem",
    "Presentation",
    "plan_presentations",
    "render_ballot_prompt",
    "BallotError",
    "Vote",
    "ballot_json_schema",
    "parse_ballot",
    "DEFAULT_K",
    "INITIAL_RATING",
    "elo_update",
    "pairwise_outcomes",
    "TRUNCATION_PENALTY",
    "DraftFacts",
    "adjusted_score",
    "epoch_scores",
    "latency_penalty",
    "penalties",
    "pick_winner",
]
