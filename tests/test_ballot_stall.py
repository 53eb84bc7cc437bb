"""A model that never returns a valid ballot does not stall the loop in silence: the failure names the
cause, shows what the engine returned and says what to change, in the run, `dream status` and the deck."""

from __future__ import annotations

import dagster as dg

from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.epoch.ballot_diagnosis import diagnose
from dream_pipeline.epoch.engine_report import stall_lines
from offline_engine import EngineConfig, running_engine
from resources.llm import LLMEngine


def test_diagnosis_names_the_main_cause_with_a_sample_and_advice():
    prose = [("not_json: Expecting value", "I enjoyed all of these drafts very much."),
             ("not_json: Expecting value", "Draft one is best.")]
    d = diagnose(prose, "prompt_only")
    assert d.cause.startswith("2 of 2 voters: the model does not write JSON")
    assert d.sample == "I enjoyed all of these drafts very much." and "JSON schema" in d.advice
    overflow = [("engine_error: ballot call for Poet failed: BadRequestError (HTTP 400): Requested tokens (2301) "
                 "exceed context window of 2048", None)] * 3 + [("missing_label: not scored: X", "{}")]
    d = diagnose(overflow, "json_object_schema")
    assert d.cause == "3 of 4 voters: the ballot does not fit the engine's context window"
    assert "exceed context window of 2048" in d.sample and "n_ctx" in d.advice
    d = diagnose([("score_not_integer: score for 'A' is '7/10'", '{"votes": [...]}')], "json_schema")
    assert "score_not_integer" in d.cause and "even with json_schema" in d.cause


def test_an_engine_that_never_writes_a_valid_ballot_is_named_after_three_failures(fabric, instance):
    from dream_pipeline.defs.epoch.assets import epoch_assets

    # every JSON answer cut in half: the model "writes" broken JSON whatever it is asked
    config = EngineConfig(seed=4, fault_rate=1.0, fault_kinds=("malformed_json",))
    key = epoch_key("space_time", 1)
    instance.add_dynamic_partitions("epochs", [key])
    with running_engine(config) as url:
        llm = LLMEngine(base_url=url, max_tokens=200, max_retries=0, timeout_s=30, fabric=fabric,
                        vote_format="json_schema")
        for _ in range(3):
            assert stall_lines(fabric) == []  # not yet: a few failures in a row first
            result = dg.materialize(epoch_assets, instance=instance, partition_key=key, raise_on_error=False,
                                    resources={"fabric": fabric, "llm": llm})
            assert not result.success
    [line] = stall_lines(fabric)
    assert line.startswith(f"STALLED: {key} failed 3 times in a row: no valid ballot: ")
    assert "the model does not write JSON even with json_schema" in line
    assert "the engine returned '{\"votes\": [{" in line  # a sample of what came back
    assert "to fix: " in line
