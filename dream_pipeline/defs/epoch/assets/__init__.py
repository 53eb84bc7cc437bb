"""The epoch's asset graph: roster → drafts → peer_votes → elo_rankings → chapter (commit + Reaper).

The roster and the drafts are one step (`opening.py`): nothing stands between the barrier's release and
the first draft request but the claim and the prompt."""

from dream_pipeline.defs.epoch.assets.chapter import chapter
from dream_pipeline.defs.epoch.assets.elo_rankings import elo_rankings
from dream_pipeline.defs.epoch.assets.opening import roster_and_drafts
from dream_pipeline.defs.epoch.assets.peer_votes import peer_votes

epoch_assets = [roster_and_drafts, peer_votes, elo_rankings, chapter]

__all__ = ["chapter", "elo_rankings", "epoch_assets", "peer_votes", "roster_and_drafts"]
