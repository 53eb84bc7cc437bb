"""SPICA: the template's lineage and telemetry, and the plugin that fails runs with non-SPICA domains."""

from __future__ import annotations

import pytest

from spica import Spica, SpicaAgent, SpicaBook, registered_domains

pytest_plugins = ["pytester"]


def test_every_agent_and_domain_is_a_spica_derivative():
    book = SpicaBook.load("space_time")
    assert isinstance(book, Spica)
    assert all(isinstance(a, Spica) for a in book.initial_cast())
    assert all(issubclass(cls, Spica) for cls in registered_domains().values())
    assert len(book.reserve()) >= 8
    assert len({p["voice"] for p in book.reserve()}) == len(book.reserve())  # each a distinct voice


@pytest.mark.parametrize("size", [3, 5, 7, 14, 16, 64])
def test_a_cast_of_any_size_is_the_cast_then_the_reserve_then_mutations(size):
    book = SpicaBook.load("space_time")
    assert book.cast_size == 5  # the manifest's cast, no cast_size key
    cast = book.initial_cast(size)
    names = [a.name for a in cast]
    assert len(cast) == size and len(set(names)) == size
    assert all(a.lineage.origin == "cast" for a in cast)  # seated with the book: no newcomer's grace
    personas = [p["name"] for p in book.manifest["cast"]] + [p["name"] for p in book.reserve()]
    assert names[:14] == personas[:size]
    by_id = {a.instance_id: a for a in cast}
    for child in cast[14:]:  # mutations of seated personas, recorded as their children, parents seated first
        parent = by_id[child.lineage.parent_id]
        assert child.name.startswith(parent.name + " ") and cast.index(parent) < cast.index(child)
        assert child.role == parent.role
    if size == 16:
        assert names[14:] == ["Physicist II", "Financier II"]


def test_a_manifest_may_set_its_cast_size():
    manifest = dict(SpicaBook.load("space_time").manifest, cast_size=7)
    book = SpicaBook(manifest)
    assert book.cast_size == 7 and len(book.initial_cast()) == 7
    with pytest.raises(ValueError, match="at least 2"):
        book.initial_cast(1)


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
    assert result.ret != pytest.ExitCode.OK
    assert "SPICA: the domain class RogueDomain (conftest) does not derive from spica.Spica; it cannot be" \
           " registered as domain 'rogue'" in result.stdout.str() + result.stderr.str()


def test_a_test_using_an_unregistered_non_spica_domain_class_fails_naming_it(pytester: pytest.Pytester):
    """Seed 000's SPICA Enforcement Test: an unregistered `class ConversationDomain:` must not pass."""
    pytester.makepyfile(
        """
        def test_uses_a_plain_domain():
            class ConversationDomain:
                def turn(self):
                    return "hello"

            assert ConversationDomain().turn() == "hello"

        def test_uses_a_spica_domain():
            from spica import Spica

            class ProperDomain(Spica):
                kind = "domain"

            assert ProperDomain({"name": "proper"}).name == "proper"
        """
    )
    result = pytester.runpytest_subprocess("-p", "spica.pytest_plugin")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*SPICA: the domain class *ConversationDomain* does not derive from spica.Spica*"])


def test_a_test_module_defining_a_non_spica_agent_class_fails_collection(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        class ConversationAgent:
            pass

        def test_anything():
            assert ConversationAgent()
        """
    )
    result = pytester.runpytest_subprocess("-p", "spica.pytest_plugin")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*SPICA: the agent class ConversationAgent (*) does not derive from spica.Spica*"])


def test_the_runner_takes_domains_only_from_the_registry(tmp_path):
    from dream_pipeline.config.experiments import enabled_books
    from dream_pipeline.domains import load_domain

    book = load_domain("space_time")
    assert (book.name, book.family, type(book).__name__) == ("space_time", "book", "BookDomain")
    with pytest.raises(ValueError, match="'nowhere' is not a registered SPICA domain"):
        load_domain("nowhere")
    experiments = tmp_path / "experiments.yaml"
    experiments.write_text("experiments:\n  - book: nowhere\n")
    with pytest.raises(ValueError, match="not a registered SPICA domain"):
        enabled_books(experiments)


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
