"""The rules where the assets apply them, through real epochs: what a stored value says is tied to
what produced it (the engine's `finish_reason`, the agent's joining epoch)."""

from __future__ import annotations

import dagster as dg
import pytest

from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.assets.elo_rankings import EloConfig
from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.epoch.rank import compose_ranking
from dream_pipeline.epoch.scope import load_scope
from resources.fabric import VoteRow
from resources.llm import LLMEngine

CAP = 600  # the offline engine's personas write medians of 500-790 words: under this cap some are cut, some not


def _materialize(instance, fabric, llm, number: int) -> dg.ExecuteInProcessResult:
    key = epoch_key("space_time", number)
    instance.add_dynamic_partitions("epochs", [key])
    return dg.materialize(epoch_assets, instance=instance, partition_key=key,
                          resources={"fabric": fabric, "llm": llm})


def _engine_finish_reasons(fabric, key: str) -> dict[str, str]:
    """What the engine itself answered for each draft request, from the ledger of calls."""
    with fabric.connection() as conn:
        rows = conn.execute(
            "SELECT agent_name, response FROM llm_calls WHERE epoch_key = %s AND purpose = 'draft'"
            " AND status = 'ok'", (key,)
        ).fetchall()
    return {r["agent_name"]: r["response"]["choices"][0]["finish_reason"] for r in rows}


def test_a_draft_cut_by_the_cap_is_flagged_and_costs_five_points(instance, fabric, engine_url):
    llm = LLMEngine(base_url=engine_url, max_tokens=CAP, max_retries=2, timeout_s=30, fabric=fabric)
    assert _materialize(instance, fabric, llm, 1).success
    epoch = fabric.epoch(epoch_key("space_time", 1))
    drafts = fabric.drafts(epoch.epoch_id)
    engine_said = _engine_finish_reasons(fabric, epoch.epoch_key)
    assert set(engine_said) == {d.agent_name for d in drafts}
    cut = [d for d in drafts if engine_said[d.agent_name] == "length"]
    whole = [d for d in drafts if engine_said[d.agent_name] == "stop"]
    assert cut and whole, "the cap must cut some drafts and spare others for this test to mean anything"
    assert len(cut) + len(whole) == 5
    for d in cut:  # the engine stopped it at the cap: flagged, and 5 points on top of latency
        assert d.finish_reason == "length" and d.truncated is True
        assert d.completion_tokens == CAP
        assert d.penalty == pytest.approx(d.latency_penalty + d.novelty_penalty + 5.0)
    for d in whole:  # a draft that ended by itself is never flagged nor fined
        assert d.finish_reason == "stop" and d.truncated is False
        assert d.completion_tokens < CAP
        assert d.penalty == pytest.approx(d.latency_penalty + d.novelty_penalty)
    # the ratings were computed on the same penalties
    ratings = {r.agent_name: r for r in fabric.ratings(epoch.epoch_id)}
    for d in drafts:
        assert ratings[d.agent_name].penalty == pytest.approx(d.penalty)


def test_a_newcomer_is_in_grace_in_its_first_epoch_where_the_asset_ranks(run_epoch, fabric):
    assert run_epoch(1).success
    first = fabric.epoch(epoch_key("space_time", 1))
    with fabric.connection() as conn:
        seated = conn.execute(
            "SELECT agent_id, name, joined_epoch FROM agents WHERE replaced_agent_id = %s", (first.loser_agent_id,)
        ).fetchone()
    assert seated["joined_epoch"] == 2

    second = run_epoch(2)
    assert second.success
    metadata = next(e.materialization.metadata for e in second.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey("elo_rankings"))
    standings = metadata["standings"].value
    grace_rows = [line for line in standings.splitlines() if "grace" in line]
    assert len(grace_rows) == 1 and seated["name"] in grace_rows[0]
    assert fabric.epoch(epoch_key("space_time", 2)).loser_agent_id != seated["agent_id"]

    # the same ranking, with every voter scoring the newcomer 1 and everyone else 10: the newcomer has
    # the lowest rating by far, and still is not the one eliminated in the epoch it joined
    scope = load_scope(fabric, epoch_key("space_time", 2))
    agents = {a.name: a for a in scope.agents}
    votes = [
        VoteRow(v.name, t.name, v.instance_id, t.instance_id, 1 if t.name == seated["name"] else 10, "",
                f"Anonymous_Scribe_{i}", i)
        for v in scope.agents for i, t in enumerate(a for a in scope.agents if a is not v)
    ]
    ranking = compose_ranking(scope, fabric.drafts(scope.epoch.epoch_id), votes, fabric, EloConfig())
    after = {r.agent_name: r.rating_after for r in ranking.rows}
    assert min(after, key=after.get) == seated["name"]
    assert ranking.newcomers == [seated["name"]]
    assert ranking.loser is not None and ranking.loser != seated["name"]
    others = {n: r for n, r in after.items() if n != seated["name"]}
    assert ranking.loser == min(others, key=others.get)
    assert set(agents) == set(after)
