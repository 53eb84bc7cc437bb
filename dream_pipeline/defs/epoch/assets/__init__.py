"""The epoch's asset graph: roster → drafts → peer_votes → elo_rankings → chapter (commit + Reaper).

Three steps: the roster and the drafts are one (`opening.py`: nothing stands between the barrier's
release and the first draft request but the claim and the prompt), the votes another, the ranking and
the chapter the third (`closing.py`: the summary's engine call goes out as soon as the winner is known)."""

from dream_pipeline.defs.epoch.assets.closing import rankings_and_chapter
from dream_pipeline.defs.epoch.assets.opening import roster_and_drafts
from dream_pipeline.defs.epoch.assets.peer_votes import peer_votes

epoch_assets = [roster_and_drafts, peer_votes, rankings_and_chapter]

__all__ = ["epoch_assets", "peer_votes", "rankings_and_chapter", "roster_and_drafts"]
