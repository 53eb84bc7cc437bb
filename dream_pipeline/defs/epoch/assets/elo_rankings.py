"""Rank: votes become pairwise battles, Elo ratings persisted across epochs, a winner and a loser.

The loser is chosen by `tournament.elimination.judge_window` over the recent window (shrunk mean
adjusted score, ballots weighted by voter reliability, position effects removed); Elo is kept for
display and continuity. The `elo_rankings` asset is materialized by the closing step (`closing.py`),
with the chapter."""

import math
from collections.abc import Sequence

import dagster as dg

from dream_pipeline import fingerprint
from dream_pipeline.defs.epoch.assets.peer_votes import PEER_VOTES
from dream_pipeline.defs.metadata import markdown_table, verify_replay
from dream_pipeline.epoch.rank import Ranking
from dream_pipeline.epoch.rating_window import WINDOW_EPOCHS
from dream_pipeline.epoch.replay import is_replay
from dream_pipeline.epoch.scope import EpochScope
from dream_pipeline.tournament import DEFAULT_K
from resources.fabric import DraftRow, StateFabric


class EloConfig(dg.Config):
    k: float = DEFAULT_K
    window_epochs: int = WINDOW_EPOCHS


ELO_RANKINGS = dg.AssetKey("elo_rankings")
ELO_RANKINGS_SPEC = dg.AssetSpec(
    ELO_RANKINGS, deps=[PEER_VOTES], group_name="epoch", kinds={"pandas", "postgres"},
    description="Ratings after this epoch (online Elo, and Bradley–Terry with bootstrap intervals over recent "
                "epochs), its winner (best epoch score), the agent to eliminate (lowest shrunk window score "
                "outside grace), voter flags and the ballot weights they led to.",
)


def rank_epoch(context: dg.AssetExecutionContext, config: EloConfig, fabric: StateFabric, scope: EpochScope,
               written: Sequence[DraftRow], ranking: Ranking) -> dg.MaterializeResult:
    """Store the epoch's ranking (`compose_ranking`'s) and report it: standings, voter flags, ballot weights
    and, in a domain with tests, each candidate's run. A replay compares it with the record, writing nothing."""
    rows, winner, loser, newcomers = ranking.rows, ranking.winner, ranking.loser, ranking.newcomers
    separated = ranking.separated
    by_name = {a.name: a.instance_id for a in scope.agents}
    if is_replay(scope.epoch):  # a committed epoch: compare with the record, write nothing
        replayed = {"ratings": fingerprint.rating_facts(rows),
                    "outcome": fingerprint.outcome_facts(by_name[winner], by_name[loser] if loser else None)}
        return dg.MaterializeResult(asset_key=ELO_RANKINGS,
                                    metadata={**verify_replay(fabric, scope.epoch, replayed), "winner": winner})
    fabric.write_ratings(
        scope.epoch.epoch_id, rows, by_name[winner], by_name[loser] if loser else None,
        bottom_separated=separated, flags=ranking.flags, weights=ranking.weights,
    )
    tests = ranking.tests
    if tests is not None:  # a domain with tests: each candidate's run and each voter's calibration
        drafts_by_author = {d.agent_name: d.draft_id for d in written}
        fabric.write_candidate_tests(scope.epoch.epoch_id, drafts_by_author, tests.scores, tests.calibration)
    # seven narrow columns, so the table fits the Dagster UI's metadata panel without scrolling
    table = [
        {"#": r.rank, "agent": r.agent_name, "net score (penalty)": _score(r.epoch_score, r.penalty),
         "elimination": _round(r.elimination_score), "Elo": _elo(r.rating_before, r.rating_after),
         "BT (95 %)": _bt(r.bt_rating, r.bt_lower, r.bt_upper),
         "": "winner" if r.agent_name == winner else "eliminated" if r.agent_name == loser
         else "grace" if r.agent_name in newcomers else ""}
        for r in rows
    ]
    flags = [{"flag": f.kind, "voter": f.voter_agent, "partner": f.partner, "strength": f.strength}
             for f in ranking.flags]
    weights = [{"voter": w.voter_agent, "weight": w.weight, "reason": w.reason or "",
                "position_correction": ", ".join(f"{p}: {c:+.2f}" for p, c in sorted(w.position_correction.items()))}
               for w in ranking.weights]
    return dg.MaterializeResult(
        asset_key=ELO_RANKINGS,
        metadata={
            "winner": winner,
            "eliminated": loser or "(nobody: all in grace)",
            "bottom_separated": "n/a" if separated is None else str(separated).lower(),
            "battles": ranking.battles,
            "window_epochs": config.window_epochs,
            "standings": dg.MetadataValue.md(markdown_table(table)),
            "voter_flags": dg.MetadataValue.md(markdown_table(flags, floatfmt=".2f")),
            "ballot_weights": dg.MetadataValue.md(markdown_table(weights, floatfmt=".2f")),
            **({} if tests is None else _test_metadata(tests)),
        }
    )


def _test_metadata(tests) -> dict:
    """A domain with tests: each candidate's run beside its fitness, and each voter's calibration."""
    runs = [{"agent": a, "status": s.status, "passed": f"{s.passed}/{s.total}", "pass_rate": s.pass_rate,
             "fitness": s.fitness, "": "winner" if a == tests.winner else ""} for a, s in sorted(tests.scores.items())]
    calibration = [{"voter": v, "spearman": "—" if rho is None else f"{rho:.2f}", "scores": n}
                   for v, (rho, n) in sorted(tests.calibration.items())]
    return {
        "winner_pass_rate": tests.scores[tests.winner].pass_rate,
        "best_pass_rate": max(s.pass_rate for s in tests.scores.values()),
        "candidate_tests": dg.MetadataValue.md(markdown_table(runs, floatfmt=".3f")),
        "voter_calibration": dg.MetadataValue.md(markdown_table(calibration)),
    }


def _score(score: float | None, penalty: float | None) -> str:
    if score is None or not math.isfinite(score):
        return "—"
    return f"{score:.2f}" + (f" (−{penalty:.1f})" if penalty else "")


def _elo(before: float | None, after: float | None) -> str:
    if after is None:
        return "—"
    return f"{after:.0f}" if before is None else f"{before:.0f} → {after:.0f}"


def _bt(rating: float | None, lower: float | None, upper: float | None) -> str:
    """A newcomer has no Bradley–Terry rating yet: "—", never "None"."""
    if rating is None or not math.isfinite(rating):
        return "—"
    return f"{rating:.0f}" + ("" if lower is None or upper is None else f" ({lower:.0f}–{upper:.0f})")


def _round(value: float | None) -> str:
    """An agent in grace has no elimination score: "—", never "None"."""
    return "—" if value is None or not math.isfinite(value) else f"{value:.2f}"
