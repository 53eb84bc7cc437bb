"""De-identification: no review prompt names an agent of the book, whatever the drafts say."""

from __future__ import annotations

import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dream_pipeline.defs.epoch.partitions import epoch_key
from dream_pipeline.tournament import plan_presentations, render_ballot_prompt
from dream_pipeline.tournament.deidentify import identity_terms, leaked_terms, scrub
from offline_engine.prose import write_prose
from spica import SpicaAgent, SpicaBook

BOOK = SpicaBook.load("space_time")
PERSONAS = [*BOOK.manifest["cast"], *BOOK.manifest["reserve"]]
BOOK_TERMS = identity_terms(PERSONAS)

names = st.from_regex(r"[A-Z][a-z]{3,11}", fullmatch=True)


def _self_naming(name: str, role: str, rng: random.Random) -> str:
    leads = [f"As {name} has often observed,", f"{name} would put it plainly:", f"In the view of {name},",
             f"I, the {name}, say", f"As a {role}, I", f"the {role.upper()}'s notebook", f"{role}s and {name}s",
             f"— {name} II", f"[{name}]:", f"{name.lower()}'s"]
    return " ".join(rng.choice(leads) + " the station hums." for _ in range(6))


def test_identity_terms_cover_names_roles_and_words():
    terms = identity_terms([{"name": "Physician XXXI", "base_name": "Physician", "role": "physician"},
                            "Dame Quill", {"name": "Al"}])
    assert "physician" in terms and "dame quill" in terms and "quill" in terms and "dame" in terms
    assert "al" not in terms and "xxxi" not in terms


def test_scrub_masks_forms_and_records_counts():
    text = "As the Physicist has often observed, physicists' doubts and the PHYSICIST's notes. Physician XXXI agreed."
    out = scrub(text, identity_terms(PERSONAS + [{"name": "Physician XXXI", "base_name": "Physician"}]))
    assert leaked_terms(out.text, BOOK_TERMS) == []
    assert "XXXI" not in out.text
    assert dict(out.masked) == {"physicist": 3, "physician": 1}
    assert out.text.startswith("As someone has often observed, someone's doubts")
    assert scrub(text, ()).text == text  # nothing to mask: verbatim


def test_only_an_upper_case_numeral_goes_with_the_name():
    # the words after a name made only of i, v, x, l, c, d, m are prose, not a mutation's generation
    out = scrub("The Physician did it. A physician mild of manner. Physician vivid, Physician XIV.", ["physician"])
    assert out.text == "Someone did it. Someone mild of manner. Someone vivid, Someone."
    assert out.masked == (("physician", 4),)


def test_a_plural_possessive_in_es_keeps_no_stray_apostrophe():
    out = scrub("the witches' brew and a witch's broom", ["witch"])
    assert out.text == "someone's brew and someone's broom"
    assert out.masked == (("witch", 2),)


@settings(max_examples=60, deadline=None)
@given(extra=st.lists(names, min_size=0, max_size=4, unique=True), seed=st.integers(0, 10_000))
def test_no_review_prompt_contains_an_agent_name_or_role(extra, seed):
    assume(not any(n.casefold() in {"someone", "anonymous", "draft"} for n in extra))
    rng = random.Random(seed)
    personas = PERSONAS + [{"name": n, "role": n.lower()} for n in extra]
    terms = identity_terms(personas)
    authors = [p["name"] for p in rng.sample(personas, 5)]
    role = {p["name"]: p["role"] for p in personas}
    drafts = {a: scrub(_self_naming(a, role[a], rng), terms).text for a in authors}
    for presentation in plan_presentations(authors, seed, reserved=terms).values():
        prompt = render_ballot_prompt(presentation, drafts)
        assert leaked_terms(prompt.replace("_", " "), terms) == []


def test_offline_engine_drafts_name_their_author_and_are_scrubbed():
    """The offline engine writes in persona and names itself: exactly what de-identification is for."""
    rng = random.Random(5)
    named = 0
    for persona in PERSONAS:
        agent = SpicaAgent(persona)
        text = write_prose(rng, agent.system_prompt(), "Write chapter 3.", 900, 0.0).text
        named += bool(leaked_terms(text, BOOK_TERMS))
        assert leaked_terms(scrub(text, BOOK_TERMS).text, BOOK_TERMS) == []
    assert named >= len(PERSONAS) // 2  # most raw drafts give their author away


def test_an_epoch_through_dagster_shows_voters_scrubbed_drafts_and_keeps_the_chapter(run_epoch, fabric):
    assert run_epoch(1).success
    epoch = fabric.epoch(epoch_key("space_time", 1))
    drafts = fabric.drafts(epoch.epoch_id)
    with fabric.connection() as conn:
        requests = [r["request"] for r in conn.execute(
            "SELECT request FROM llm_calls WHERE epoch_key = %s AND purpose = 'ballot'", (epoch.epoch_key,))]
        masked = {r["agent_name"]: r["masked_terms"] for r in conn.execute(
            "SELECT agent_name, masked_terms FROM drafts WHERE epoch_id = %s", (epoch.epoch_id,))}
    assert len(requests) == 5
    for request in requests:
        user = next(m["content"] for m in request["messages"] if m["role"] == "user")
        assert leaked_terms(user.replace("_", " "), BOOK_TERMS) == []
    raw_leaks = {d.agent_name: leaked_terms(d.text, BOOK_TERMS) for d in drafts}
    assert any(raw_leaks.values())  # the stored drafts keep their self-naming words
    for d in drafts:  # what was masked is recorded per draft, and only what the text held
        assert set(masked[d.agent_name]) == set(raw_leaks[d.agent_name])
    chapter = fabric.chapter_for_epoch(epoch.epoch_id)
    assert chapter.text == next(d.text for d in drafts if d.agent_id == epoch.winner_agent_id)
