"""The domain seam: the loop takes its domain from the SPICA registry, and the book answers the Domain protocol."""

from __future__ import annotations

import pytest

from dream_pipeline.config.experiments import Experiment, enabled_experiments
from dream_pipeline.domains import load_domain, shipped_domains
from dream_pipeline.domains.book.memory import BookContext
from dream_pipeline.tournament import plan_presentations
from spica import SpicaAgent, SpicaDomain, registered_domains
from spica.registry import register_domain, unregister_domain


def test_every_shipped_book_is_a_registered_book_domain():
    assert "book" in shipped_domains()
    for name in ("space_time", "far_shore"):
        domain = load_domain(name)
        assert (domain.name, domain.family, type(domain).__name__) == (name, "book", "BookDomain")
        assert isinstance(domain, SpicaDomain)
    assert {"space_time", "far_shore"} <= set(registered_domains())


def test_the_book_answers_the_protocol_with_its_own_rules():
    book = load_domain("space_time")
    agent = book.initial_cast()[0]
    context = BookContext(text="THE MEMORY AND THE TASK", budget=100, tokens=5, section_tokens={}, trimmed=(),
                          related=(), summary_through=None)
    assert book.burst_messages(agent, context) == [
        {"role": "system", "content": agent.system_prompt()}, {"role": "user", "content": "THE MEMORY AND THE TASK"}]
    assert book.canon_entry("Chapter 3: The Furnace\n\nIt burned.", 3) == (
        "The Furnace", "Chapter 3: The Furnace\n\nIt burned.")
    assert book.canon_entry("", 4)[0] == "Chapter 4"
    assert book.canon_markdown(3, "The Furnace", "Physicist", "It burned.") == (
        "## Chapter 3: The Furnace\n\n*by the Physicist*\n\nIt burned.")
    assert book.canon_markdown(3, "The Furnace", "Physicist", "It burned.", world=2).startswith(
        "## Chapter 3: The Furnace (world 2)\n\n")
    assert book.deck_views() == (
        "matrix", "chopping_block", "ratings", "book", "lineage", "telemetry", "similar", "glossary")


def test_the_book_review_shows_every_candidate_under_its_criteria_and_masks_the_cast():
    book = load_domain("space_time")
    names = ["Physicist", "Financier", "Politician"]
    presentation = plan_presentations(names, 3)["Physicist"]
    prompt = book.review_prompt(presentation, {n: f"the draft of the {n}" for n in names})
    assert prompt.startswith(book.review_criteria())
    assert "insight_score" in book.review_criteria()
    assert prompt.count("<draft id=") == 2 and "the draft of the Physicist" not in prompt
    voter = book.initial_cast()[0]
    messages = book.review_messages(voter, prompt, repair="not JSON")
    assert messages[1]["content"] == prompt and "not JSON" in messages[-1]["content"]
    terms = book.identity_terms([{"name": "Cartographer II", "base_name": "Cartographer"}], ["Oracle"])
    assert {"physicist", "cartographer", "oracle"} <= set(terms)


class EchoDomain(SpicaDomain):
    """A second domain in a few lines: its own family, cast and canon entry."""

    family = "echo"

    @classmethod
    def load(cls, name: str) -> EchoDomain:
        return cls({"name": name, "cast": [{"name": "Echo", "role": "echo"}, {"name": "Narcissus", "role": "echo"}]})

    def initial_cast(self, size=None):
        return [SpicaAgent(dict(p)) for p in self.manifest["cast"]]

    def canon_entry(self, winner_text, number):
        return f"Echo {number}", winner_text.upper()


@pytest.fixture
def echo():
    register_domain("echo_test")(EchoDomain)
    yield
    unregister_domain("echo_test")


def test_a_registered_domain_of_another_family_is_an_experiment_like_a_book(echo, tmp_path):
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments:\n  - domain: echo\n    name: echo_test\n    epochs_per_cycle: 2\n"
                    "  - book: space_time\n", encoding="utf-8")
    assert enabled_experiments(path) == (Experiment("echo", "echo_test", 2), Experiment("book", "space_time", 1))
    echo_domain = load_domain("echo_test")
    assert echo_domain.canon_entry("hello", 1) == ("Echo 1", "HELLO")
    assert [a.name for a in echo_domain.initial_cast()] == ["Echo", "Narcissus"]
    with pytest.raises(NotImplementedError, match="EchoDomain does not implement burst_messages"):
        echo_domain.burst_messages(echo_domain.initial_cast()[0], None)
