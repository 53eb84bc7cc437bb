"""Every request fits the engine's context window: a draft's prompt and `max_tokens`, a ballot's load.

The window is the one `settings.llm_context_tokens()` gives when an epoch first drafts; it is recorded
with the drafts (`simulation_epochs.context_window`), and a rerun, replay or re-roll of the epoch fits
its requests into the recorded one, so they are the same requests. Tokens are estimated
(`tournament/token_budget.py`: the larger of whitespace words and characters / 3).

- A draft: the book's memory is shrunk below `DREAM_CONTEXT_TOKENS` until the longest persona's prompt
  leaves at least `min(cap, window / 2)` tokens to write in; its `max_tokens` is then
  `min(cap, window - prompt - margin)`, one figure for every agent of the epoch (the longest prompt's),
  so no persona gets a longer leash. A draft cut there is a truncation like any other (−5).
- A ballot: `review_plan` (the load and cuts of `tournament/review_design.py`) for the epoch's drafts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dream_pipeline.config.settings import MIN_CONTEXT_TOKENS, llm_context_tokens
from dream_pipeline.records import EpochRecord
from dream_pipeline.tournament.anonymize import (
    BALLOT_CUT_MARKER,
    MASK_ROLES,
    neutralise_draft_tags,
)
from dream_pipeline.tournament.review_design import ContextTooSmall, ReviewPlan, plan_review
from dream_pipeline.tournament.token_budget import (
    CONTEXT_MARGIN_TOKENS,
    completion_room,
    estimate_tokens,
    messages_tokens,
)
from spica import SpicaAgent, SpicaDomain

# the longest repair message a ballot retry adds: the template and a rejection reason (at most about
# 300 characters: the reasons quote at most 200 characters of the reply, or the ballot's labels)
REPAIR_RESERVE_TOKENS = 200
# one draft's frame on a ballot: '<draft id="Anonymous_<Role>_NN">', '</draft>', blank lines, a cut marker
DRAFT_FRAME_TOKENS = (
    estimate_tokens(f'<draft id="Anonymous_{max(MASK_ROLES, key=len)}_99">\n\n</draft>\n\n')
    + estimate_tokens(BALLOT_CUT_MARKER.format(hidden="9,999,999"))
)
SHRINK_ROUNDS = 12


def epoch_window(epoch: EpochRecord, served: Callable[[], int | None] | None = None) -> int | None:
    """The window an epoch's requests are fitted into: the recorded one; for an epoch drafted before
    windows were recorded, None (unbounded, as it ran); else DREAM_LLM_CONTEXT_TOKENS if set, else the
    window the server itself states (`served`: the engine probe's, asked only here), else the default."""
    if epoch.context_window is not None:
        return epoch.context_window
    if epoch.status == "committed" or epoch.context_chapters is not None:
        return None
    stated = served() if served is not None and not os.environ.get("DREAM_LLM_CONTEXT_TOKENS") else None
    return max(MIN_CONTEXT_TOKENS, stated) if stated else llm_context_tokens()


def fit_draft_prompt(
    build: Callable[[int], Any], agents: Sequence[SpicaAgent], budget: int, cap: int, window: int | None,
    domain: SpicaDomain,
) -> tuple[Any, int]:
    """The draft prompt (built by `build(memory_budget)`) and `max_tokens` for a window.

    The memory budget starts at `budget` (whitespace tokens) and shrinks until every agent's prompt
    leaves `min(cap, window // 2)` tokens; raises `ContextTooSmall` when even the bare task does not."""
    context = build(budget)
    if window is None:
        return context, cap
    allowance = window - CONTEXT_MARGIN_TOKENS - min(cap, window // 2)
    for _ in range(SHRINK_ROUNDS):
        longest = max(messages_tokens(domain.burst_messages(a, context)) for a in agents)
        if longest <= allowance:
            return context, min(cap, completion_room(window, longest))
        shrunk = min(budget - 1, int(budget * allowance / longest))
        try:
            context, budget = build(shrunk), shrunk
        except ValueError:  # the task alone is over the budget
            break
    raise ContextTooSmall(
        f"a context window of {window} tokens cannot hold a draft prompt and {min(cap, window // 2)} tokens "
        "of draft; raise DREAM_LLM_CONTEXT_TOKENS (and the server's context)"
    )


def review_plan(
    voters: Sequence[SpicaAgent], drafts: Mapping[str, str], window: int | None, seed: int, domain: SpicaDomain
) -> ReviewPlan:
    """The epoch's review load and cuts in the design drawn from `seed`: drafts as a ballot shows them
    (tags neutralised), the fixed part of the longest persona's ballot (instructions and a repair
    message included)."""
    fixed = max(messages_tokens(domain.review_messages(v, domain.review_criteria() + "\n\n")) for v in voters) \
        + REPAIR_RESERVE_TOKENS
    return plan_review(
        {author: estimate_tokens(neutralise_draft_tags(text)) for author, text in drafts.items()},
        seed=seed, context_tokens=window, fixed_tokens=fixed, per_draft_tokens=DRAFT_FRAME_TOKENS,
    )


def ballot_overflow(messages: Sequence[Mapping[str, str]], max_tokens: int, window: int | None) -> int:
    """By how many tokens a ballot request (its largest repair included) would pass the window; 0 if none."""
    if window is None:
        return 0
    need = messages_tokens(messages) + REPAIR_RESERVE_TOKENS + max_tokens + CONTEXT_MARGIN_TOKENS
    return max(0, need - window)
