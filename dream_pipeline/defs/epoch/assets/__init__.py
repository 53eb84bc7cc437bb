"""The epoch's asset graph: roster → drafts → peer_votes → elo_rankings → chapter (commit + Reaper).

Two steps: the roster, the drafts and the votes are one (`opening.py`: nothing stands between the
barrier's release and the first draft request but the claim and the prompt, nor between the drafts and
the first ballot request but the review's design), the ranking and the chapter the other (`closing.py`:
the summary's engine call goes out as soon as the winner is known)."""

from dream_pipeline.defs.epoch.assets.closing import rankings_and_chapter
from dream_pipeline.defs.epoch.assets.opening import roster_drafts_and_votes

epoch_assets = [roster_drafts_and_votes, rankings_and_chapter]

__all__ = ["epoch_assets", "rankings_and_chapter", "roster_drafts_and_votes"]
