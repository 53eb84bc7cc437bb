"""The rolling summary started ahead: from the opening step, as soon as the epoch's last ballot is in.

The summary needs only the chapter, the chapter only the winner, and the winner only the epoch's drafts
and ballots (`decide_winner`). Deciding it where the ballots end and sending the summary's engine call
from there lets the votes' bookkeeping and events, the step boundary and the closing step's ranking
(Bradley–Terry bootstrap, voter flags, elimination rule) run while the call is out, instead of before it.

The closing step takes the call (`take_summary`) only for the draft its own ranking crowns. A summary
of another draft (the closing step ranked under other settings than the defaults used here and crowned
another winner) is dropped, and the summary goes out again: its engine call stays in the ledger, as
every call does. Nothing is stored here: the closing step writes the summary after the chapter, as
before. One process keeps the latest epoch's summary only; a closing step in another run (a retry)
finds none and sends its own.
"""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from dream_pipeline.epoch.collapse import Summary, chapter_draft, summarize
from dream_pipeline.epoch.rank import RankDefaults, decide_winner
from dream_pipeline.epoch.replay import is_replay
from dream_pipeline.epoch.scope import EpochScope
from resources.fabric import StateFabric
from resources.llm import LLMEngine

log = logging.getLogger(__name__)

_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="summary-ahead")
_started: dict[str, tuple[uuid.UUID, Future[Summary]]] = {}  # epoch key -> (the draft summarized, the call)
_lock = threading.Lock()


def start_summary(fabric: StateFabric, llm: LLMEngine, scope: EpochScope) -> None:
    """Decide the winner from the epoch's stored drafts and ballots (default rank settings) and send the
    rolling summary of its draft. A book without canon memory (CodeRepair) or a replay sends nothing; a
    failure here is a warning only: the closing step then sends the summary itself."""
    if not scope.book.canon_memory or is_replay(scope.epoch):
        return
    try:
        written, votes = fabric.drafts(scope.epoch.epoch_id), fabric.votes(scope.epoch.epoch_id)
        verdict = decide_winner(scope, written, votes, fabric, RankDefaults())
        winner = next(d for d in written if d.agent_name == verdict.winner)
    except Exception:  # noqa: BLE001 - a head start only: the closing step decides and summarizes anyway
        log.warning("%s: the summary was not started ahead", scope.key, exc_info=True)
        return
    future = _POOL.submit(summarize, fabric, llm, scope, chapter_draft(scope, winner))
    with _lock:
        _started.clear()
        _started[scope.key] = (winner.draft_id, future)


def take_summary(epoch_key: str, draft_id: uuid.UUID) -> Future[Summary] | None:
    """The summary's call started ahead for this epoch's chapter `draft_id`, or None (none started, or
    one of another draft: dropped)."""
    with _lock:
        started = _started.pop(epoch_key, None)
    if started is None or started[0] != draft_id:
        return None
    return started[1]
