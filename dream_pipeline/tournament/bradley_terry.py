"""Order-free ratings with uncertainty: Bradley–Terry MLE and ballot bootstrap.

Online Elo depends on the order of battles; the Bradley–Terry maximum-likelihood
fit does not.  As in FastChat's ``compute_mle_elo`` a battle table (model_a,
model_b, winner) is fitted to ``P(a beats b) = 1 / (1 + base**((R_b - R_a)/scale))``,
a tie counting as half a win for each side.  The fit is a damped Newton ascent
of the log-likelihood in numpy (no sklearn), with a small prior (``prior`` virtual tie games against a reference
of rating ``init``) so an undefeated or winless agent keeps a finite rating.

Uncertainty comes from resampling whole ballots (a voter's battles together,
since they share the voter's taste) with replacement and refitting; as in
FastChat's leaderboard, the reported rating is the bootstrap median and the
interval its 2.5 / 97.5 percentiles, so the interval always contains it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from dream_pipeline.tournament.ballots import Vote
from dream_pipeline.tournament.elo import BASE, INITIAL_RATING, SCALE, pairwise_outcomes

__all__ = ["battles_frame", "bootstrap_ballots", "bootstrap_intervals", "compute_mle_elo"]

_WINNER = {1.0: "model_a", 0.0: "model_b", 0.5: "tie"}
_CREDIT_A = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}


def battles_frame(outcomes: Sequence[tuple[str, str, float]]) -> pd.DataFrame:
    """FastChat's battle table: one row per battle, winner in {"model_a", "model_b", "tie"}."""
    rows = []
    for a, b, s in outcomes:
        if s not in _WINNER:
            raise ValueError(f"outcome {s!r} is not 0, 0.5 or 1")
        rows.append((a, b, _WINNER[s]))
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


def _tables(battles: pd.DataFrame, agents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(games[i, j] played between i and j, wins[i] credited to i) over ``agents``."""
    unknown = set(battles["winner"]) - set(_CREDIT_A)
    if unknown:
        raise ValueError(f"unknown winner values {sorted(unknown)}")
    index = {a: i for i, a in enumerate(agents)}
    n = len(agents)
    games, wins = np.zeros((n, n)), np.zeros(n)
    ia = battles["model_a"].map(index).to_numpy(dtype=int)
    ib = battles["model_b"].map(index).to_numpy(dtype=int)
    credit = battles["winner"].map(_CREDIT_A).to_numpy(dtype=float)
    if np.any(ia == ib):
        raise ValueError("an agent cannot battle itself")
    np.add.at(games, (ia, ib), 1.0)
    np.add.at(games, (ib, ia), 1.0)
    np.add.at(wins, ia, credit)
    np.add.at(wins, ib, 1.0 - credit)
    return games, wins


def _outcome_tables(outcomes: Sequence[tuple[str, str, float]], agents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`_tables` of battles given as (a, b, score of a) tuples, without a frame (the bootstrap builds one
    per ballot, and a frame's column lookups cost more than the fits)."""
    index = {a: i for i, a in enumerate(agents)}
    n = len(agents)
    games, wins = np.zeros((n, n)), np.zeros(n)
    for a, b, s in outcomes:
        if s not in _WINNER:
            raise ValueError(f"outcome {s!r} is not 0, 0.5 or 1")
        i, j = index[a], index[b]
        if i == j:
            raise ValueError("an agent cannot battle itself")
        games[i, j] += 1.0
        games[j, i] += 1.0
        wins[i] += s
        wins[j] += 1.0 - s
    return games, wins


def _log_likelihood(theta: np.ndarray, games: np.ndarray, wins: np.ndarray, prior: float) -> float:
    pair = np.logaddexp(theta[:, None], theta[None, :])
    return float(
        wins @ theta
        - 0.5 * (games * pair).sum()
        - prior * np.logaddexp(theta, 0.0).sum()
        + prior / 2 * theta.sum()
    )


def _fit_strengths(
    games: np.ndarray, wins: np.ndarray, prior: float, tol: float, max_iter: int
) -> np.ndarray:
    """Maximise the BT log-likelihood in theta = log-strength by damped Newton steps.

    The prior adds, per agent, ``prior`` games against a reference with theta = 0, each
    half won: the objective becomes strictly concave and its maximum finite.
    """
    n = len(wins)
    theta = np.zeros(n)
    target = wins + prior / 2.0
    current = _log_likelihood(theta, games, wins, prior)
    for _ in range(max_iter):
        sig = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # P(i beats j)
        sig_ref = 1.0 / (1.0 + np.exp(-theta))
        grad = target - (games * sig).sum(axis=1) - prior * sig_ref
        weight = games * sig * sig.T
        hess = weight - np.diag(weight.sum(axis=1) + prior * sig_ref * (1.0 - sig_ref))
        step = np.linalg.lstsq(hess, -grad, rcond=None)[0]
        t = 1.0
        while True:  # halve the step until the likelihood does not fall (the last trial's is the next current)
            trial = _log_likelihood(theta + t * step, games, wins, prior)
            if not (t > 1e-8 and trial < current - 1e-12):
                break
            t /= 2.0
        theta, current = theta + t * step, trial
        if np.max(np.abs(t * step)) < tol:
            break
    return theta


def _centred(theta: np.ndarray, scale: float, base: float, init: float) -> np.ndarray:
    return scale * (theta - theta.mean()) / np.log(base) + init


def _ratings(theta: np.ndarray, agents: Sequence[str], scale: float, base: float, init: float) -> pd.Series:
    ratings = _centred(theta, scale, base, init)
    return pd.Series(ratings, index=list(agents), name="rating").sort_values(ascending=False)


def compute_mle_elo(
    battles: pd.DataFrame,
    scale: float = SCALE,
    base: float = BASE,
    init: float = INITIAL_RATING,
    *,
    prior: float = 1.0,
    tol: float = 1e-9,
    max_iter: int = 100,
) -> pd.Series:
    """Bradley–Terry ratings, centred on ``init``, sorted descending; empty Series for no battles.

    ``R_i = init + scale * (theta_i - mean(theta)) / ln(base)``, so that
    ``P(i beats j) = 1 / (1 + base ** ((R_j - R_i) / scale))``.
    """
    if battles.empty:
        return pd.Series(dtype=float, name="rating")
    agents = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    games, wins = _tables(battles, agents)
    return _ratings(_fit_strengths(games, wins, prior, tol, max_iter), agents, scale, base, init)


def bootstrap_intervals(
    votes: Sequence[Vote],
    rounds: int = 200,
    seed: int = 0,
    *,
    penalties: Mapping[str, float] | None = None,
    scale: float = SCALE,
    base: float = BASE,
    init: float = INITIAL_RATING,
    prior: float = 1.0,
) -> pd.DataFrame:
    """Per agent: ``rating`` (bootstrap median), ``lower`` / ``upper`` (2.5 / 97.5 %), ``mle`` (full data).

    Each round draws as many ballots as there are voters, with replacement, and refits.  An
    agent absent from a resample (only its own ballot was drawn) is skipped in that round.
    ``votes`` must hold one ballot per voter (one epoch); several epochs would make a voter
    score a target twice, which ``pairwise_outcomes`` rejects.
    Sorted by rating, descending.
    """
    by_voter: dict[str, list[Vote]] = defaultdict(list)
    for vote in votes:
        by_voter[vote.voter].append(vote)
    ballots = [pairwise_outcomes(by_voter[v], penalties) for v in sorted(by_voter)]
    return bootstrap_ballots(ballots, rounds, seed, scale=scale, base=base, init=init, prior=prior)


def bootstrap_ballots(
    ballots: Sequence[Sequence[tuple[str, str, float]]],
    rounds: int = 200,
    seed: int = 0,
    *,
    scale: float = SCALE,
    base: float = BASE,
    init: float = INITIAL_RATING,
    prior: float = 1.0,
) -> pd.DataFrame:
    """:func:`bootstrap_intervals` over ballots already broken into battles.

    A ballot is the unit of resampling, so ballots from many epochs can be pooled: break each
    epoch's ballots with that epoch's penalties, then pass them all here.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    ballots = [list(b) for b in ballots if b]
    if not ballots:
        return pd.DataFrame(columns=["rating", "lower", "upper", "mle"], dtype=float)
    agents = sorted({x for b in ballots for a, c, _ in b for x in (a, c)})
    # each ballot's tables, stacked: a round's tables are the sums over its picks (the counts are
    # multiples of 0.5, so any order of summing gives the same numbers)
    stacked = [_outcome_tables(b, agents) for b in ballots]
    games_by_ballot = np.stack([g for g, _ in stacked])
    wins_by_ballot = np.stack([w for _, w in stacked])
    full = _ratings(_fit_strengths(games_by_ballot.sum(axis=0), wins_by_ballot.sum(axis=0), prior, 1e-9, 100),
                    agents, scale, base, init)
    rng = np.random.default_rng(seed)
    samples = np.full((rounds, len(agents)), np.nan)
    for r in range(rounds):
        picks = rng.integers(0, len(ballots), size=len(ballots))
        games = games_by_ballot[picks].sum(axis=0)
        wins = wins_by_ballot[picks].sum(axis=0)
        present = games.sum(axis=1) > 0
        theta = _fit_strengths(games[np.ix_(present, present)], wins[present], prior, 1e-9, 100)
        samples[r, present] = _centred(theta, scale, base, init)
    table = pd.DataFrame(samples, columns=agents)
    result = pd.DataFrame(
        {
            "rating": table.median(),
            "lower": table.quantile(0.025),
            "upper": table.quantile(0.975),
            "mle": full,
        }
    )
    return result.sort_values("rating", ascending=False)
