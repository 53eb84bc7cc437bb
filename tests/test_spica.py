"""SPICA: the template's lineage and telemetry, and the plugin that fails runs with non-SPICA domains."""

from __future__ import annotations

import pytest

from spica import Spica, SpicaAgent, SpicaBook, registered_domains

pytest_plugins = ["pytester"]


def test_every_agent_and_domain_is_a_spica_derivative():
    book = SpicaBook.load()
    assert isinstance(book, Spica)
    assert all(isinstance(a, Spica) for a in book.initial_cast())
    assert all(issubclass(cls, Spica) for cls in registered_domains().values())
    assert len(book.reserve()) >= 8
    assert len({p["voice"] for p in book.reserve()}) == len(book.reserve())  # each a distinct voice


def test_spawn_instance_records_lineage_and_keeps_the_manifest_immutable():
    parent = SpicaAgent({"name": "Physicist", "role": "physicist", "voice": "precise"})
    child = parent.spawn_instance(manifest_changes={"voice": "bolder"}, origin="mutation")
    assert child.lineage.parent_id == parent.instance_id
    assert child.lineage.generation == 1 and child.lineage.origin == "mutation"
    assert child.instance_id != parent.instance_id
    assert child.manifest["voice"] == "bolder" and parent.manifest["voice"] == "precise"
    with pytest.raises(TypeError):
        parent.manifest["voice"] = "changed"  # type: ignore[index]
    mutant = parent.mutate(1)
    assert mutant.name == "Physicist II" and mutant.lineage.parent_id == parent.instance_id


def test_telemetry_is_buffered_until_drained():
    agent = SpicaAgent({"name": "Poet"})
    agent.record_telemetry("draft", epoch_key="space_time-00001", tokens=12)
    events = agent.drain_telemetry()
    assert [(e.event, e.payload["tokens"], e.instance_id) for e in events] == [("draft", 12, agent.instance_id)]
    assert agent.drain_telemetry() == []


def test_a_manifest_needs_a_name():
    with pytest.raises(ValueError, match="needs a 'name'"):
        SpicaAgent({"role": "nobody"})


def test_the_plugin_fails_a_run_that_registers_a_non_spica_domain(pytester: pytest.Pytester):
    pytester.makeconftest(
        """
        from spica.registry import register_domain

        @register_domain("rogue")
        class RogueDomain:  # does not derive from Spica
            pass
        """
    )
    pytester.makepyfile("def test_anything():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "spica.pytest_plugin")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*registered domains must derive from spica.Spica: rogue*"])


def test_the_plugin_lets_a_spica_domain_pass(pytester: pytest.Pytester):
    pytester.makeconftest(
        """
        from spica import Spica
        from spica.registry import register_domain

        @register_domain("good")
        class GoodDomain(Spica):
            kind = "domain"
        """
    )
    pytester.makepyfile("def test_anything():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "spica.pytest_plugin")
    result.assert_outcomes(passed=1)
