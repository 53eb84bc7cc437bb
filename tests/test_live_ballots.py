"""Ballots are written as they arrive, one transaction per ballot, so the deck's live matrix fills in
voter by voter instead of jumping from empty to full; writing a ballot again never duplicates it."""

from __future__ import annotations

import threading
import time

import dagster as dg

from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.partitions import epoch_key
from offline_engine import EngineConfig, running_engine
from resources.llm import LLMEngine


def test_the_matrix_fills_in_voter_by_voter(fabric, instance):
    key = epoch_key("space_time", 1)
    instance.add_dynamic_partitions("epochs", [key])
    seen: set[int] = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            with fabric.connection() as conn:
                seen.add(conn.execute(
                    "SELECT count(DISTINCT voter_agent) AS n FROM peer_votes v JOIN simulation_epochs e"
                    " USING (epoch_id) WHERE e.epoch_key = %s", (key,)).fetchone()["n"])
            time.sleep(0.005)

    # a paced engine: each ballot takes as long as its tokens, so they arrive one after another
    with running_engine(EngineConfig(seed=7, ttft_s=0.05, tokens_per_s=400)) as url:
        llm = LLMEngine(base_url=url, max_tokens=300, max_retries=2, timeout_s=30, fabric=fabric)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            result = dg.materialize(epoch_assets, instance=instance, partition_key=key,
                                    resources={"fabric": fabric, "llm": llm},
                                    selection=["roster", "drafts", "peer_votes"])
        finally:
            done.set()
            watcher.join()
    assert result.success
    voters = {v.voter_agent for v in fabric.votes(fabric.epoch(key).epoch_id)}
    assert len(voters) >= 3
    between = sorted(n for n in seen if 0 < n < len(voters))
    assert between, f"the matrix jumped from empty to full: counts seen {sorted(seen)}"


def test_writing_a_ballot_again_replaces_it(run_epoch, fabric):
    assert run_epoch(1, selection=["roster", "drafts", "peer_votes"]).success
    epoch = fabric.epoch(epoch_key("space_time", 1))
    votes = fabric.votes(epoch.epoch_id)
    voter = votes[0].voter_agent
    mine = [v for v in votes if v.voter_agent == voter]
    fabric.write_ballot(epoch.epoch_id, mine, None)
    fabric.write_ballot(epoch.epoch_id, mine, None)
    assert fabric.votes(epoch.epoch_id) == votes
