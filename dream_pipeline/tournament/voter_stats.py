"""How voters vote: agreement with the consensus, leniency, reciprocity, and red flags.

Every statistic compares a vote with the *consensus* on the same draft: the mean
score the same target received in the same epoch from the other voters (leave
the voter out, so a voter never agrees with itself).  From those deviations:

* ``bias`` — a voter's mean deviation (a harsh or lenient hand, not a fault);
* ``disagreement`` — root-mean-square deviation once the voter's bias is
  removed: how differently it *orders* the drafts;
* an outlier voter is one whose disagreement sits far above the crowd's median
  (a relative and an absolute margin), in the spirit of FastChat's
  anomalous-voter test: judge a voter against the crowd, not against a fixed
  threshold alone;
* a clique is a pair who each score the other far above the consensus, after
  removing each one's own bias on its other votes.

Input is a list of :class:`Vote` (one epoch) or a DataFrame with columns
``voter, target, insight_score`` and optionally ``epoch`` (many epochs).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from dream_pipeline.tournament.ballots import Vote

__all__ = [
    "votes_frame",
    "consensus_deviations",
    "voter_agreement",
    "reciprocity",
    "flag_outlier_voters",
    "flag_cliques",
]

VoteTable = Iterable[Vote] | pd.DataFrame


def votes_frame(votes: Iterable[Vote], epoch: int | str = 0) -> pd.DataFrame:
    """Votes as a table: epoch, voter, target, insight_score."""
    rows = [(epoch, v.voter, v.target, v.insight_score) for v in votes]
    return pd.DataFrame(rows, columns=["epoch", "voter", "target", "insight_score"])


def _frame(votes: VoteTable) -> pd.DataFrame:
    if isinstance(votes, pd.DataFrame):
        missing = {"voter", "target", "insight_score"} - set(votes.columns)
        if missing:
            raise ValueError(f"vote table lacks columns {sorted(missing)}")
        df = votes.copy()
        if "epoch" not in df.columns:
            df["epoch"] = 0
        return df[["epoch", "voter", "target", "insight_score"]].reset_index(drop=True)
    return votes_frame(votes)


def consensus_deviations(votes: VoteTable) -> pd.DataFrame:
    """Each vote with ``consensus`` (leave-voter-out mean for the same epoch and target) and
    ``deviation`` = score - consensus; NaN when nobody else scored that draft."""
    df = _frame(votes)
    df["insight_score"] = df["insight_score"].astype(float)
    group = df.groupby(["epoch", "target"])["insight_score"]
    total, count = group.transform("sum"), group.transform("count")
    others = count - 1
    df["consensus"] = ((total - df["insight_score"]) / others).where(others > 0)
    df["deviation"] = df["insight_score"] - df["consensus"]
    return df


def _pearson(x: pd.Series, y: pd.Series) -> float:
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x.to_numpy(float), y.to_numpy(float))[0, 1])


def voter_agreement(votes: VoteTable) -> pd.DataFrame:
    """Per voter: n_votes, spearman, pearson (scores vs consensus), leniency, bias, disagreement.

    ``leniency`` = mean score given - mean of all scores in the table; ``bias`` = mean
    deviation from the consensus; ``disagreement`` = sqrt(mean((deviation - bias)**2)).  Votes on a
    draft nobody else scored are left out.
    """
    df = consensus_deviations(votes)
    overall = df["insight_score"].mean()
    rows = {}
    for voter, own in df.groupby("voter", sort=True):
        leniency = own["insight_score"].mean() - overall
        own = own.dropna(subset=["consensus"])
        bias = own["deviation"].mean() if len(own) else float("nan")
        rows[voter] = {
            "n_votes": len(own),
            "spearman": _pearson(own["insight_score"].rank(), own["consensus"].rank()),
            "pearson": _pearson(own["insight_score"], own["consensus"]),
            "leniency": leniency,
            "bias": bias,
            "disagreement": float(np.sqrt(((own["deviation"] - bias) ** 2).mean()))
            if len(own)
            else float("nan"),
        }
    columns = ["n_votes", "spearman", "pearson", "leniency", "bias", "disagreement"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("voter")


def flag_outlier_voters(
    votes: VoteTable,
    *,
    rel_gap: float = 0.5,
    min_gap: float = 0.5,
    min_votes: int = 5,
    exclude_cliques: bool = True,
    cliques: Iterable[tuple[str, str]] | None = None,
) -> dict[str, float]:
    """Voters whose disagreement is far above the crowd's, mapped to ``d / median(d)``.

    Rule: among voters with at least ``min_votes`` comparable votes (and only when there
    are 3 or more of them), with ``m`` the median disagreement, flag a voter when
    ``d >= (1 + rel_gap) * m`` AND ``d - m >= min_gap`` points.  Defaults: 50 % and half a
    point above the median.  The median, unlike the mean, is not dragged up by the outlier
    itself.  With ``exclude_cliques`` the votes between the pairs :func:`flag_cliques`
    reports are set aside first, so a clique is reported as a clique and not also as two
    outliers (``cliques``: those pairs when already known).  Needs several epochs of votes to be
    reliable.
    """
    df = _frame(votes)
    if exclude_cliques:
        pairs = set(flag_cliques(df) if cliques is None else cliques)
        inside = [(v, t) in pairs or (t, v) in pairs for v, t in zip(df["voter"], df["target"], strict=True)]
        df = df[~np.array(inside, dtype=bool)]
    stats = _disagreement(df)
    stats = stats[stats["n_votes"] >= min_votes].dropna(subset=["disagreement"])
    if len(stats) < 3:
        return {}
    d = stats["disagreement"]
    median = float(d.median())
    if median <= 0:
        flagged = d - median >= min_gap
        return {str(v): float("inf") for v in sorted(stats.index[flagged])}
    flagged = (d >= (1.0 + rel_gap) * median) & (d - median >= min_gap)
    return {str(v): float(d[v] / median) for v in sorted(stats.index[flagged])}


def _disagreement(df: pd.DataFrame) -> pd.DataFrame:
    """``n_votes`` and ``disagreement`` per voter, as :func:`voter_agreement` computes them (vectorised)."""
    dev = consensus_deviations(df).dropna(subset=["consensus"])
    bias = dev.groupby("voter")["deviation"].transform("mean")
    dev = dev.assign(square=(dev["deviation"] - bias) ** 2)
    grouped = dev.groupby("voter", sort=True)
    return pd.DataFrame({"n_votes": grouped.size(), "disagreement": np.sqrt(grouped["square"].mean())})


def reciprocity(votes: VoteTable) -> pd.DataFrame:
    """Per pair that scored each other: mean scores both ways and their excess over consensus.

    ``excess_ab`` = mean over a's votes for b of (deviation) minus a's bias on its *other*
    targets (0 if it has none): how much more a likes b than a likes everyone.
    ``mutual_excess`` = min(excess_ab, excess_ba).  Columns: a, b (a < b), n_ab, n_ba,
    score_ab, score_ba, excess_ab, excess_ba, mutual_excess.
    """
    df = consensus_deviations(votes).dropna(subset=["consensus"])
    directed = df.groupby(["voter", "target"]).agg(
        n=("deviation", "size"),
        score=("insight_score", "mean"),
        dev=("deviation", "mean"),
        dev_sum=("deviation", "sum"),
    )
    # plain dicts: a .loc lookup per pair made this the slowest step of a tournament's statistics
    n, score = directed["n"].to_dict(), directed["score"].to_dict()
    dev, dev_sum = directed["dev"].to_dict(), directed["dev_sum"].to_dict()
    totals = df.groupby("voter")["deviation"].agg(["sum", "size"])
    total_sum, total_n = totals["sum"].to_dict(), totals["size"].to_dict()

    def excess(a: str, b: str) -> float:
        rest_n = total_n[a] - n[(a, b)]
        rest_bias = (total_sum[a] - dev_sum[(a, b)]) / rest_n if rest_n > 0 else 0.0
        return float(dev[(a, b)] - rest_bias)

    rows = []
    for a, b in sorted(n):
        if a < b and (b, a) in n:
            ab, ba = excess(a, b), excess(b, a)
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "n_ab": int(n[(a, b)]),
                    "n_ba": int(n[(b, a)]),
                    "score_ab": float(score[(a, b)]),
                    "score_ba": float(score[(b, a)]),
                    "excess_ab": ab,
                    "excess_ba": ba,
                    "mutual_excess": min(ab, ba),
                }
            )
    columns = ["a", "b", "n_ab", "n_ba", "score_ab", "score_ba", "excess_ab", "excess_ba", "mutual_excess"]
    return pd.DataFrame(rows, columns=columns)


def flag_cliques(
    votes: VoteTable, *, threshold: float = 2.5, min_votes: int = 1
) -> dict[tuple[str, str], float]:
    """Pairs (a, b), a < b, who each score the other at least ``threshold`` points above the
    consensus (bias-corrected, see :func:`reciprocity`), with at least ``min_votes`` votes each
    way; mapped to their mutual excess.  A clique of three shows up as its three pairs.

    Flagging peels: the strongest pair is flagged, its members' ballots are set aside, and the
    rest is judged again.  A clique's extreme ballots distort everyone's consensus; without
    peeling, two honest agents who rightly admire each other can look like a second clique."""
    frame = _frame(votes)
    flagged: dict[tuple[str, str], float] = {}
    while True:
        table = reciprocity(frame)
        hit = table[
            (table["mutual_excess"] >= threshold) & (table["n_ab"] >= min_votes) & (table["n_ba"] >= min_votes)
        ]
        if hit.empty:
            return flagged
        strongest = hit.sort_values("mutual_excess", ascending=False).iloc[0]
        members = {str(strongest["a"]), str(strongest["b"])}
        pairs = {(str(r.a), str(r.b)): float(r.mutual_excess) for r in hit.itertuples(index=False)}
        grown = True
        while grown:  # the whole clique the strongest pair belongs to (a clique of three is three pairs)
            linked = {p for p in pairs if members & set(p)}
            grown = bool(set().union(*linked) - members)
            members |= set().union(*linked)
        flagged.update({p: excess for p, excess in pairs.items() if set(p) <= members})
        frame = frame[~frame["voter"].isin(members)]
