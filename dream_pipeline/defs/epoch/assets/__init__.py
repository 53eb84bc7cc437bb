"""The epoch's asset graph: roster → drafts → peer_votes → elo_rankings → chapter (commit + Reaper)."""

from dream_pipeline.defs.epoch.assets.chapter import chapter
from dream_pipeline.defs.epoch.assets.drafts import drafts
from dream_pipeline.defs.epoch.assets.elo_rankings import elo_rankings
from dream_pipeline.defs.epoch.assets.peer_votes import peer_votes
from dream_pipeline.defs.epoch.assets.roster import roster

epoch_assets = [roster, drafts, peer_votes, elo_rankings, chapter]

__all__ = ["chapter", "drafts", "elo_rankings", "epoch_assets", "peer_votes", "roster"]
