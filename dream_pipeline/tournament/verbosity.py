"""How likely each writer is to run into the token cap, judged by how long its drafts run.

The truth about a writer includes ``-TRUNCATION_PENALTY`` times its chance of being cut at the cap,
and a dozen epochs give a writer a dozen coin tosses of that: one truncation in four drafts is about
as likely from a 10 % writer as from a 30 % one. But every draft says how long its writer runs, cut
or not: 880 tokens under a cap of 900 came close, 300 did not. So the chance is estimated from the
drafts' lengths (``completion_tokens``), the way a survival model treats a cut draft: as censored.

Model: the log length of agent ``i``'s draft ``~ N(mu[i], sigma2)``, ``mu[i] ~ N(m, s2)`` across the
window's agents; a truncated draft (``finish_reason == "length"``) is censored at the log of its
token count (the cap it hit). ``sigma2``, ``m``, ``s2`` and each ``mu[i]`` (its posterior under that
empirical-Bayes prior) are fitted by expectation-maximisation; the chance at ``cap`` is the posterior
predictive ``Q((log cap - mu[i]) / sqrt(sigma2 + var[i]))`` (``Q`` the normal upper tail). A writer
seen once is pulled toward the window's typical length; a long record speaks for itself.

Pure: no I/O, no randomness.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

__all__ = ["LengthFit", "fit_lengths", "truncation_chances"]

EM_ITERATIONS = 200
EM_TOLERANCE = 1e-10
SIGMA2_FLOOR = 1e-4  # (log tokens)^2: keeps the fit finite when every draft has one length
S2_FLOOR = 1e-4  # the spread of writers' typical lengths is never taken as exactly zero
# Weak priors for the two spreads, so that an epoch or two (five drafts, two of them cut) cannot make a
# writer look certain to ramble: one writer's log length varies by about 0.3 (drafts of 250-700 tokens),
# writers' typical lengths by about 0.15 (a verbosity of 0.03-0.3 at the cap); each weighs as much as
# SIGMA2_PRIOR_DRAFTS drafts / S2_PRIOR_AGENTS writers, and a window of 10 epochs outweighs them.
SIGMA2_PRIOR = 0.3**2
SIGMA2_PRIOR_DRAFTS = 10.0
S2_PRIOR = 0.15**2
S2_PRIOR_AGENTS = 4.0


def _upper_tail(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def _mills(a: float) -> float:
    """phi(a) / Q(a): the mean excess of a standard normal beyond ``a``, stable in the far tail."""
    q = _upper_tail(a)
    if q < 1e-300:
        return a + 1.0 / a
    return math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi) / q


class LengthFit:
    """The fitted length model: per agent ``mu`` and its posterior variance; ``sigma2``, ``m``, ``s2``."""

    def __init__(self, mu: dict[str, float], var: dict[str, float], sigma2: float, m: float, s2: float) -> None:
        self.mu, self.var, self.sigma2, self.m, self.s2 = mu, var, sigma2, m, s2

    def chance(self, agent: str, cap: int) -> float:
        """Posterior predictive chance that ``agent``'s next draft runs past ``cap`` tokens."""
        return _upper_tail((math.log(cap) - self.mu[agent]) / math.sqrt(self.sigma2 + self.var[agent]))


def fit_lengths(drafts: Mapping[tuple[int, str], tuple[int, bool]]) -> LengthFit | None:
    """Fit the censored log-normal length model to ``(epoch, agent) -> (tokens, truncated)``.

    Drafts of 0 tokens (a failed call: no length was written) are left out. None when nothing is left,
    or when every draft was truncated (then no length was ever seen in full)."""
    by_agent: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for (_, agent), (tokens, truncated) in sorted(drafts.items()):
        if tokens is None or tokens <= 0:
            continue
        by_agent[agent].append((math.log(tokens), bool(truncated)))
    observed = [y for ys in by_agent.values() for y, cut in ys if not cut]
    if not observed:
        return None
    total = sum(len(ys) for ys in by_agent.values())
    mu = {a: math.fsum(y for y, _ in ys) / len(ys) for a, ys in by_agent.items()}
    within = math.fsum((y - mu[a]) ** 2 for a, ys in by_agent.items() for y, _ in ys)
    dof = total - len(by_agent)
    sigma2 = max((within + SIGMA2_PRIOR_DRAFTS * SIGMA2_PRIOR) / (max(dof, 0) + SIGMA2_PRIOR_DRAFTS), SIGMA2_FLOOR)
    m = math.fsum(mu.values()) / len(mu)
    s2 = max((_spread(list(mu.values())) * len(mu) + S2_PRIOR_AGENTS * S2_PRIOR) / (len(mu) + S2_PRIOR_AGENTS),
             S2_FLOOR)
    var = dict.fromkeys(mu, 0.0)
    for _ in range(EM_ITERATIONS):
        sigma = math.sqrt(sigma2)
        moments: dict[str, list[tuple[float, float]]] = {}
        for a, ys in by_agent.items():
            rows = []
            for y, cut in ys:
                if cut:  # E[y | y > c] and E[y^2 | y > c] under the current fit
                    alpha = (y - mu[a]) / sigma
                    lam = _mills(alpha)
                    ey = mu[a] + sigma * lam
                    rows.append((ey, sigma2 * max(1.0 + alpha * lam - lam * lam, 0.0) + ey * ey))
                else:
                    rows.append((y, y * y))
            moments[a] = rows
        new_mu, new_var = {}, {}
        for a, rows in moments.items():
            precision = len(rows) / sigma2 + 1.0 / s2
            new_mu[a] = (math.fsum(ey for ey, _ in rows) / sigma2 + m / s2) / precision
            new_var[a] = 1.0 / precision
        new_sigma2 = max((math.fsum(
            ey2 - 2.0 * ey * new_mu[a] + new_mu[a] ** 2 + new_var[a]
            for a, rows in moments.items() for ey, ey2 in rows
        ) + SIGMA2_PRIOR_DRAFTS * SIGMA2_PRIOR) / (total + SIGMA2_PRIOR_DRAFTS), SIGMA2_FLOOR)
        new_m = math.fsum(new_mu.values()) / len(new_mu)
        new_s2 = max((math.fsum((x - new_m) ** 2 + new_var[a] for a, x in new_mu.items())
                      + S2_PRIOR_AGENTS * S2_PRIOR) / (len(new_mu) + S2_PRIOR_AGENTS), S2_FLOOR)
        change = max(abs(new_sigma2 - sigma2), abs(new_m - m), abs(new_s2 - s2),
                     max(abs(new_mu[a] - mu[a]) for a in mu))
        mu, var, sigma2, m, s2 = new_mu, new_var, new_sigma2, new_m, new_s2
        if change < EM_TOLERANCE:
            break
    return LengthFit(mu, var, sigma2, m, s2)


def truncation_chances(drafts: Mapping[tuple[int, str], tuple[int, bool]], cap: int | None = None
                       ) -> dict[str, float] | None:
    """Each agent's chance of running into ``cap`` tokens on its next draft, from its drafts' lengths.

    ``cap`` defaults to the longest truncated draft of the window (the cap those drafts hit). None when
    the lengths cannot say: no draft seen in full, or no cap given and none hit."""
    if cap is None:
        hit = [tokens for tokens, truncated in drafts.values() if truncated and tokens and tokens > 0]
        if not hit:
            return None
        cap = max(hit)
    if cap <= 0:
        raise ValueError(f"cap must be a positive token count, not {cap}")
    fit = fit_lengths(drafts)
    if fit is None:
        return None
    return {a: fit.chance(a, cap) for a in sorted(fit.mu)}


def _spread(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = math.fsum(values) / len(values)
    return math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
