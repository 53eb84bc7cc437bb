"""Order-free ratings with uncertainty: Bradley–Terry MLE and ballot bootstrap.

Online Elo depends on the order of battles; the Bradley–Terry maximum-likelihood
fit does not.  As in FastChat's ``compute_mle_elo`` a battle table (model_a,
model_b, winner) is fitted to ``P(a beats b) = 1 / (1 + base**((R_b - R_a)/scale))``,
a tie counting as half a win for each side.  The fit is a damped Newton ascent
of the log-likelihood in numpy (no sklearn), with a small prior (``prior`` virtual tie games against a reference
of rating ``init``) so an undefeated or winless agent keeps a finite rating.

Uncertainty comes from resampling whole ballots (a voter's battles together,
since they share the voter's taste) with replacement and refitting (the resamples
are fitted together, one batch of Newton steps, each stopping on its own); as in
FastChat's leaderboard, the reported rating is the bootstrap median and the
interval its 2.5 / 97.5 percentiles, so the interval always contains it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dream_pipeline.tournament.ballots import Vote
from dream_pipeline.tournament.elo import BASE, INITIAL_RATING, SCALE, pairwise_outcomes

__all__ = ["battles_frame", "bootstrap_ballots", "bootstrap_intervals", "compute_mle_elo"]

_WINNER = {1.0: "model_a", 0.0: "model_b", 0.5: "tie"}
_CREDIT_A = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}
BATCH_CELLS = 2_000_000  # Hessian cells of the resamples fitted at once (16 MB a float array)


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


@dataclass(frozen=True)
class _Battles:
    """Every battle of every ballot as index arrays, so a resample's tables are one weighted count."""

    n: int  # agents
    a: np.ndarray  # index of model_a per battle
    b: np.ndarray
    credit: np.ndarray  # what model_a scored: 1, 0.5 or 0
    ballot: np.ndarray  # which ballot the battle is on

    @classmethod
    def of(cls, ballots: Sequence[Sequence[tuple[str, str, float]]], agents: Sequence[str]) -> _Battles:
        index = {a: i for i, a in enumerate(agents)}
        rows = []
        for k, ballot in enumerate(ballots):
            for a, b, s in ballot:
                if s not in _WINNER:
                    raise ValueError(f"outcome {s!r} is not 0, 0.5 or 1")
                if a == b:
                    raise ValueError("an agent cannot battle itself")
                rows.append((index[a], index[b], float(s), k))
        a, b, credit, ballot = (np.array(c) for c in zip(*rows, strict=True))
        return cls(len(agents), a.astype(int), b.astype(int), credit, ballot.astype(int))

    def tables(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(games[r, i, j], wins[r, i]) of each resample r, which holds ballot k `times[r, k]` times. The
        counts are multiples of 0.5, so they are exact whatever the order of summing."""
        rounds, n = len(times), self.n
        weight = times[:, self.ballot]  # (rounds, battles)
        base = (np.arange(rounds) * n)[:, None]
        cells = base * n
        games = np.bincount((cells + self.a * n + self.b).ravel(), weight.ravel(), rounds * n * n) \
            + np.bincount((cells + self.b * n + self.a).ravel(), weight.ravel(), rounds * n * n)
        wins = np.bincount((base + self.a).ravel(), (weight * self.credit).ravel(), rounds * n) \
            + np.bincount((base + self.b).ravel(), (weight * (1.0 - self.credit)).ravel(), rounds * n)
        return games.reshape(rounds, n, n), wins.reshape(rounds, n)


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


def _log_likelihood_batch(theta: np.ndarray, games: np.ndarray, wins: np.ndarray, prior: float) -> np.ndarray:
    """`_log_likelihood` of each row of `theta` (rounds × agents) at once."""
    pair = np.logaddexp(theta[:, :, None], theta[:, None, :])
    return ((wins * theta).sum(axis=1) - 0.5 * (games * pair).sum(axis=(1, 2))
            - prior * np.logaddexp(theta, 0.0).sum(axis=1) + prior / 2 * theta.sum(axis=1))


def _fit_batch(games: np.ndarray, wins: np.ndarray, prior: float, tol: float, max_iter: int) -> np.ndarray:
    """`_fit_strengths` of many resamples at once (games: rounds × n × n), each stopping on its own.

    With ``prior > 0`` an agent absent from a resample (no games) is left in: its gradient is 0 and its
    Hessian row only the prior's, so its theta stays 0 and the others' steps are those of a fit without
    it (the caller drops it). The Hessian is negative definite, so each step is a linear solve."""
    rounds, n = wins.shape
    theta = np.zeros((rounds, n))
    target = wins + prior / 2.0
    current = _log_likelihood_batch(theta, games, wins, prior)
    active = np.arange(rounds)
    diagonal = np.arange(n)
    for _ in range(max_iter):
        if not len(active):
            break
        th, g, w = theta[active], games[active], wins[active]
        sig = 1.0 / (1.0 + np.exp(th[:, None, :] - th[:, :, None]))  # P(i beats j)
        sig_ref = 1.0 / (1.0 + np.exp(-th))
        grad = target[active] - (g * sig).sum(axis=2) - prior * sig_ref
        hess = g * sig * np.swapaxes(sig, 1, 2)
        hess[:, diagonal, diagonal] -= hess.sum(axis=2) + prior * sig_ref * (1.0 - sig_ref)
        step = np.linalg.solve(hess, -grad[:, :, None])[:, :, 0]
        t = np.ones(len(active))
        trial = _log_likelihood_batch(th + step, g, w, prior)
        while True:  # each resample halves its own step until its likelihood does not fall
            back = (t > 1e-8) & (trial < current[active] - 1e-12)
            if not back.any():
                break
            t[back] /= 2.0
            trial[back] = _log_likelihood_batch(th[back] + t[back, None] * step[back], g[back], w[back], prior)
        moved = t[:, None] * step
        theta[active], current[active] = th + moved, trial
        active = active[np.max(np.abs(moved), axis=1) >= tol]
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
    battles = _Battles.of(ballots, agents)
    games, wins = battles.tables(np.ones((1, len(ballots))))
    full = _ratings(_fit_strengths(games[0], wins[0], prior, 1e-9, 100), agents, scale, base, init)
    rng = np.random.default_rng(seed)
    picks = np.stack([rng.integers(0, len(ballots), size=len(ballots)) for _ in range(rounds)])
    samples = np.full((rounds, len(agents)), np.nan)
    chunk = max(1, BATCH_CELLS // len(agents) ** 2)  # rounds fitted at once, in bounded memory
    for lo in range(0, rounds, chunk):
        drawn = picks[lo:lo + chunk]
        times = np.stack([np.bincount(p, minlength=len(ballots)) for p in drawn]).astype(float)
        games, wins = battles.tables(times)
        present = games.sum(axis=2) > 0  # an agent only its own ballot rated is absent from the round
        if prior > 0:
            theta = _fit_batch(games, wins, prior, 1e-9, 100)
        else:  # no prior: an absent agent would make the system singular, so each round is fitted alone
            theta = np.zeros(present.shape)
            for r, here in enumerate(present):
                theta[r, here] = _fit_strengths(games[r][np.ix_(here, here)], wins[r][here], prior, 1e-9, 100)
        for r, here in enumerate(present):
            samples[lo + r, here] = _centred(theta[r, here], scale, base, init)
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
