"""Who is eliminated: the lowest empirical-Bayes shrunk mean score over a window, newcomers in grace.

Chosen from measurements (docs/tournament_rules.md, sections 12 and 15): sequential Elo freezes and
forgets, win/lose/tie throws away the size of a lead, and an agent seen for one epoch is as uncertain
as it is extreme. So an agent is judged on the raw adjusted scores it received (insight score minus its
draft's penalties; each ballot weighted, position effects removed: ``reliability.py``) over the last
``WINDOW_EPOCHS`` epochs:

* ``y[i, t]`` = weighted mean adjusted score of agent ``i``'s draft in epoch ``t``;
* ``m[i]`` = mean of ``y[i, t]`` over its ``n[i]`` epochs in the window;
* ``sigma2`` = pooled within-agent variance of ``y`` (``SIGMA2_PRIOR`` while there is none),
  ``mu`` = mean of ``m``, ``tau2`` = between-agent variance of ``m`` less the noise ``sigma2/n``
  (at least ``TAU2_FLOOR``);
* shrunk score = ``mu + tau2 / (tau2 + sigma2 / n[i]) * (m[i] - mu)``.

Given the drafts' lengths, a truncation is not counted where it fell but as an expected cost: each
agent's chance of running into the cap, read from how long its drafts run (``verbosity.py``), times
the 5-point penalty plus what a cut draft loses in insight beside a whole one (:func:`cut_gap`); the
insight part is then shrunk on whole-draft terms. A dozen epochs are a dozen coin tosses of
truncation; the lengths of every draft say more.

The lowest shrunk score outside grace is eliminated; ties -> lower latest epoch score -> name.
Everything is a pure function of its inputs; the deck calls :func:`pick_eliminated` on the stored
scores, so the chopping block and the pipeline cannot disagree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from dream_pipeline.tournament.reliability import VoterWeight, ballot_weights, position_effects
from dream_pipeline.tournament.scoring import TRUNCATION_PENALTY
from dream_pipeline.tournament.verbosity import truncation_chances

__all__ = [
    "GRACE_EPOCHS",
    "PENALTY_PRIOR_DRAFTS",
    "SIGMA2_PRIOR",
    "TAU2_FLOOR",
    "WINDOW_EPOCHS",
    "AgentEstimate",
    "Judgment",
    "draft_scores",
    "judge_window",
    "pick_eliminated",
    "shrunk_penalties",
    "shrunk_scores",
]

WINDOW_EPOCHS = 10
GRACE_EPOCHS = 1  # a newcomer cannot be eliminated in its first GRACE_EPOCHS epochs
SIGMA2_PRIOR = 2.0  # points^2: the spread of one draft's epoch score before the window can say
TAU2_FLOOR = 1e-3  # keeps the order of the raw means when the window cannot tell agents apart
MIN_LUCK_DOF = 3  # epoch-to-epoch luck is estimated once the window holds this many repeat epochs
# A penalty (mostly: ran into the cap or not) is one coin toss per draft; its between-agent spread cannot
# be estimated from a few epochs, so an agent's penalty rate is pulled toward the window's by this many
# virtual drafts (a Beta prior's strength; 12 matches verbosities spread over 0.03-0.30 around 0.1).
PENALTY_PRIOR_DRAFTS = 12.0


@dataclass(frozen=True)
class AgentEstimate:
    agent: str
    mean: float  # raw mean epoch score over the window
    epochs: int
    shrunk: float
    latest: float  # its latest epoch score in the window (the first tie-break)


def draft_scores(votes: pd.DataFrame) -> dict[tuple[int, str], tuple[float, float]]:
    """``(epoch, target) -> (weighted mean score, its sampling variance)`` from columns ``epoch, target,
    score, weight``. The variance is the weighted spread of the draft's votes over their effective
    number (nan for a single vote). A draft whose every vote weighs 0 gets no score (it is not seen)."""
    acc: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for epoch, target, score, weight in votes[["epoch", "target", "score", "weight"]].itertuples(index=False):
        a = acc[(int(epoch), str(target))]
        w, x = float(weight), float(score)
        a[0] += w
        a[1] += w * x
        a[2] += w * x * x
        a[3] += w * w
    out: dict[tuple[int, str], tuple[float, float]] = {}
    for key, (w, wx, wxx, ww) in acc.items():
        if w <= 0:
            continue
        mean = wx / w
        effective = w * w / ww
        spread = max(wxx / w - mean * mean, 0.0) * effective / (effective - 1) if effective > 1.0001 else math.nan
        out[key] = (mean, spread / effective if not math.isnan(spread) else math.nan)
    return out


def shrunk_scores(scores: Mapping[tuple[int, str], float | tuple[float, float]]) -> dict[str, AgentEstimate]:
    """Empirical-Bayes shrinkage of each agent's mean epoch score toward the mean of all agents.

    A score may carry its sampling variance (``draft_scores``); the noise of an agent's mean is then
    that variance plus any epoch-to-epoch luck beyond it (pooled within-agent variance, once the window
    holds ``MIN_LUCK_DOF`` degrees of freedom). Without sampling variances and before that, every
    difference between drafts counts as noise (the spread of all scores), so one epoch cannot decide."""
    by_agent: dict[str, list[tuple[int, float]]] = defaultdict(list)
    noise: dict[tuple[int, str], float] = {}
    for (epoch, agent), value in scores.items():
        y, var = value if isinstance(value, tuple) else (value, math.nan)
        if math.isnan(y):
            raise ValueError(f"nan score for {agent!r} in epoch {epoch}")
        by_agent[agent].append((epoch, y))
        if not math.isnan(var):
            noise[(epoch, agent)] = var
    if not by_agent:
        return {}
    means = {a: math.fsum(y for _, y in ys) / len(ys) for a, ys in by_agent.items()}
    counts = {a: len(ys) for a, ys in by_agent.items()}
    dof = sum(n - 1 for n in counts.values())
    sampling = math.fsum(noise.values()) / len(noise) if noise else 0.0
    everything = [y for ys in by_agent.values() for _, y in ys]
    if dof >= MIN_LUCK_DOF:
        between = math.fsum((y - means[a]) ** 2 for a, ys in by_agent.items() for _, y in ys) / dof
        luck = max(between - sampling, 0.0)
    elif noise:
        luck = 0.0
    else:
        total = math.fsum(everything) / len(everything)
        luck = math.fsum((y - total) ** 2 for y in everything) / max(len(everything) - 1, 1) or SIGMA2_PRIOR
    sigma2 = {
        a: (math.fsum(noise.get((e, a), sampling) for e, _ in by_agent[a]) / counts[a] + luck) / counts[a]
        for a in by_agent
    }
    mu = math.fsum(means.values()) / len(means)
    if len(means) > 1:
        spread = math.fsum((m - mu) ** 2 for m in means.values()) / (len(means) - 1)
        tau2 = max(spread - math.fsum(sigma2.values()) / len(sigma2), TAU2_FLOOR)
    else:
        tau2 = TAU2_FLOOR
    return {
        a: AgentEstimate(
            agent=a, mean=means[a], epochs=counts[a],
            shrunk=mu + tau2 / (tau2 + sigma2[a]) * (means[a] - mu) if sigma2[a] > 0 else means[a],
            latest=max(by_agent[a])[1],
        )
        for a in sorted(by_agent)
    }


def shrunk_penalties(penalties: Mapping[tuple[int, str], float],
                     prior_drafts: float = PENALTY_PRIOR_DRAFTS) -> dict[str, AgentEstimate]:
    """Each agent's mean penalty per draft, pulled toward the window's mean penalty by ``prior_drafts``
    virtual drafts: ``(sum + prior_drafts * mean_all) / (n + prior_drafts)``."""
    by_agent: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for (epoch, agent), p in penalties.items():
        by_agent[agent].append((epoch, p))
    if not by_agent:
        return {}
    everything = [p for ps in by_agent.values() for _, p in ps]
    overall = math.fsum(everything) / len(everything)
    return {
        a: AgentEstimate(
            agent=a, mean=math.fsum(p for _, p in ps) / len(ps), epochs=len(ps),
            shrunk=(math.fsum(p for _, p in ps) + prior_drafts * overall) / (len(ps) + prior_drafts),
            latest=max(ps)[1],
        )
        for a, ps in sorted(by_agent.items())
    }


def pick_eliminated(
    shrunk: Mapping[str, float],
    candidates: Collection[str],
    newcomers: Collection[str] = (),
    latest: Mapping[str, float] | None = None,
) -> str | None:
    """The candidate (not in grace) with the lowest shrunk score; a candidate without one counts as
    lowest. Ties -> lower ``latest`` epoch score (missing = lowest) -> alphabetically first name.
    None when every candidate is in grace."""
    grace = set(newcomers)
    pool = [a for a in candidates if a not in grace]
    if not pool:
        return None
    latest = latest or {}

    def key(a: str) -> tuple[float, float, str]:
        s, last = shrunk.get(a), latest.get(a)
        s = -math.inf if s is None or math.isnan(s) else s
        last = -math.inf if last is None or math.isnan(last) else last
        return (s, last, a)

    return min(pool, key=key)


@dataclass(frozen=True)
class Judgment:
    """One epoch's elimination decision and everything it was made from."""

    estimates: dict[str, AgentEstimate]
    weights: dict[str, VoterWeight]
    loser: str | None
    truncation: dict[str, float] = field(default_factory=dict)  # estimated chance of the cap, per agent
    cut_gap: float = 0.0  # insight points a cut draft loses beside a whole one (the window's estimate)


def judge_window(
    votes: pd.DataFrame,
    candidates: Collection[str],
    newcomers: Collection[str] = (),
    flags: Sequence[tuple[str, str, str, float]] = (),
    *,
    correct_positions: bool = True,
    lengths: Mapping[tuple[int, str], tuple[int, bool]] | None = None,
    chances: Mapping[str, float] | None = None,
) -> Judgment:
    """The elimination decision from a window of votes.

    ``votes`` has columns ``epoch, voter, target, insight_score, penalty`` (the target draft's
    penalty in that epoch) and, for position correction, ``position``. ``flags`` are the window's
    voter flags ``(kind, voter, partner, strength)``. Scores are adjusted (``insight_score -
    penalty``), position effects of voters with a significant one removed, ballots weighted.

    ``lengths``: ``(epoch, agent) -> (completion tokens, truncated)`` of the window's drafts. With
    them, a truncation enters as an expected cost, ``chance * (TRUNCATION_PENALTY + cut_gap)``, the
    chance read from the lengths (``verbosity.truncation_chances``) unless ``chances`` gives it (a
    benchmark's bound: the true verbosity); without them (or when no draft of the window was cut), as
    the agent's mean penalty per draft pulled toward the window's (``shrunk_penalties``).

    A candidate whose drafts only silenced voters reviewed has no say against it: it is left out of
    the choice (no one is eliminated if that leaves no candidate out of grace).
    """
    voters = sorted(set(votes["voter"]))
    weights = ballot_weights(voters, flags)
    # a ballot that weighs nothing has no say at all, not even in the consensus behind position effects
    silenced = {v for v, w in weights.items() if w.weight <= 0}
    frame = votes[~votes["voter"].isin(silenced)].copy()
    # a writer whom only silenced voters reviewed in the whole window is unheard, not bad: it is not a
    # candidate this time (in a cast of three, a clique of two would otherwise eliminate the third)
    unheard = set(votes["target"]) - set(frame["target"])
    candidates = [a for a in candidates if a not in unheard]
    effects = position_effects(frame) if correct_positions and "position" in frame.columns and len(frame) else {}
    if effects:
        weights = {
            v: VoterWeight(w.voter, w.weight, w.reason, dict(effects.get(v, {}))) for v, w in weights.items()
        }
    frame["score"] = frame["insight_score"].astype(float)
    if effects:
        correction = [
            effects.get(v, {}).get(int(p), 0.0) for v, p in zip(frame["voter"], frame["position"], strict=True)
        ]
        frame["score"] = frame["score"] - pd.Series(correction, index=frame.index)
    frame["weight"] = frame["voter"].map(lambda v: weights[v].weight)
    if chances is None:  # given only to measure a bound: each agent's true chance of the cap
        chances = truncation_chances(lengths) if lengths else None
    if chances is None:
        insight = shrunk_scores(draft_scores(frame))
        drafts = draft_scores(frame.assign(score=frame["penalty"].astype(float)))
        penalty = shrunk_penalties({key: mean for key, (mean, _) in drafts.items()})
        estimates = {
            a: AgentEstimate(a, e.mean - penalty[a].mean, e.epochs, e.shrunk - penalty[a].shrunk,
                             e.latest - penalty[a].latest)
            for a, e in insight.items()
        }
        return Judgment(estimates, weights, _loser(estimates, candidates, newcomers))
    scores = draft_scores(frame)
    cut = {key for key, (_, truncated) in (lengths or {}).items() if truncated}
    gap = cut_gap(scores, cut)
    insight = shrunk_scores({key: (y + gap, var) if key in cut else (y, var) for key, (y, var) in scores.items()})
    # what is left of a draft's penalty once its truncation is taken out: latency, novelty
    was_cut = [(int(e), str(t)) in cut for e, t in zip(frame["epoch"], frame["target"], strict=True)]
    frame["other"] = frame["penalty"].astype(float) - TRUNCATION_PENALTY * pd.Series(was_cut, index=frame.index,
                                                                                    dtype=float)
    other = shrunk_penalties({key: mean for key, (mean, _) in draft_scores(frame.assign(score=frame["other"])).items()})
    penalty_of = {(int(e), str(t)): float(p) for e, t, p in frame[["epoch", "target", "penalty"]].itertuples(index=False)}
    adjusted: dict[str, list[float]] = defaultdict(list)  # the raw mean adjusted score, for display
    for key, (y, _) in scores.items():
        adjusted[key[1]].append(y - penalty_of[key])
    raw_mean = {a: math.fsum(ys) / len(ys) for a, ys in adjusted.items()}
    estimates = {
        a: AgentEstimate(a, raw_mean[a], e.epochs,
                         e.shrunk - chances.get(a, 0.0) * (gap + TRUNCATION_PENALTY) - other[a].shrunk,
                         e.latest - other[a].latest - (TRUNCATION_PENALTY + gap) * chances.get(a, 0.0))
        for a, e in insight.items()
    }
    return Judgment(estimates, weights, _loser(estimates, candidates, newcomers), dict(chances), gap)


def _loser(estimates: Mapping[str, AgentEstimate], candidates: Collection[str], newcomers: Collection[str]) -> str | None:
    return pick_eliminated({a: e.shrunk for a, e in estimates.items()}, candidates, newcomers,
                           {a: e.latest for a, e in estimates.items()})


def draft_lengths(votes: pd.DataFrame) -> dict[tuple[int, str], tuple[int, bool]]:
    """``(epoch, target) -> (tokens, truncated)`` from a votes frame that carries its drafts' lengths
    (columns ``tokens`` and ``truncated``); empty without them."""
    if "tokens" not in votes.columns or "truncated" not in votes.columns or not len(votes):
        return {}
    first = votes.drop_duplicates(["epoch", "target"])
    return {(int(e), str(t)): (int(n), bool(c)) for e, t, n, c in
            first[["epoch", "target", "tokens", "truncated"]].itertuples(index=False)}


def cut_gap(scores: Mapping[tuple[int, str], tuple[float, float]], cut: Collection[tuple[int, str]]) -> float:
    """Insight points a draft cut at the cap loses beside its writer's whole drafts, over the window:
    the mean, over cut drafts whose writer also has whole ones, of (its writer's whole mean - its score).
    0 when no writer has both."""
    whole: dict[str, list[float]] = defaultdict(list)
    for (epoch, agent), (y, _) in scores.items():
        if (epoch, agent) not in cut:
            whole[agent].append(y)
    diffs = [math.fsum(whole[a]) / len(whole[a]) - y for (e, a), (y, _) in scores.items()
             if (e, a) in cut and whole.get(a)]
    return math.fsum(diffs) / len(diffs) if diffs else 0.0
