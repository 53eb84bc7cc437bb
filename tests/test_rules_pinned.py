"""The tournament rules pinned with literal examples: edges, errors and formats that a property
cannot name. A rejected ballot's message is what an abstention records, so it is pinned too."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from dream_pipeline.tournament import (
    BallotError,
    Vote,
    ballot_json_schema,
    elo_update,
    epoch_scores,
    latency_penalty,
    pairwise_outcomes,
    parse_ballot,
    penalties,
    pick_winner,
    plan_presentations,
)
from dream_pipeline.tournament.anonymize import (
    BALLOT_INSTRUCTIONS,
    MASK_ROLES,
    BallotItem,
    Presentation,
    ballot_excerpt,
    mask_roles_for,
    render_ballot_prompt,
)
from dream_pipeline.tournament.ballots import find_ballot_json
from dream_pipeline.tournament.scoring import DraftFacts
from dream_pipeline.tournament.selection import bottom_is_separated, describe_margin

BALLOT = Presentation("Poet", (BallotItem("Anonymous_Scribe_1", "Sage", 0), BallotItem("Anonymous_Oracle_2", "Jurist", 1)))


def entry(label: str = "Anonymous_Scribe_1", score=7, rationale="x") -> dict:
    return {"draft_id": label, "insight_score": score, "rationale": rationale}


@pytest.mark.parametrize(("raw", "message"), [
    ("nope", "not_json: Expecting value: line 1 column 1 (char 0)"),
    ("[]", 'missing_votes: expected an object with a "votes" array'),
    ('{"votes": [3]}', "bad_vote: vote entry without a string draft_id: 3"),
    (json.dumps({"votes": [{"draft_id": "Anonymous_Scribe_1", "rationale": "x"}]}),
     "bad_vote: no insight_score for 'Anonymous_Scribe_1'"),
    (json.dumps({"votes": [entry("Anonymous_Poet_9")]}), "unknown_label: 'Anonymous_Poet_9' is not on this ballot"),
    (json.dumps({"votes": [entry(), entry()]}), "duplicate_label: 'Anonymous_Scribe_1' scored twice"),
    (json.dumps({"votes": [entry(score="7")]}), "score_not_integer: score for 'Anonymous_Scribe_1' is '7'"),
    (json.dumps({"votes": [entry(score=7.5)]}), "score_not_integer: score for 'Anonymous_Scribe_1' is 7.5"),
    (json.dumps({"votes": [entry(rationale=3)]}), "bad_rationale: rationale for 'Anonymous_Scribe_1' is not a string"),
    ('{"votes": []}', "missing_label: not scored: Anonymous_Scribe_1, Anonymous_Oracle_2"),
])
def test_a_rejected_ballot_says_why(raw, message):
    with pytest.raises(BallotError) as info:
        parse_ballot(raw, BALLOT)
    assert str(info.value) == message
    assert info.value.reason == message.split(":", 1)[0]


def test_the_ballot_schema_in_full():
    assert ballot_json_schema(["A", "B"]) == {
        "type": "object",
        "properties": {"votes": {
            "type": "array", "minItems": 2, "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "draft_id": {"type": "string", "enum": ["A", "B"]},
                    "insight_score": {"type": "integer", "minimum": 1, "maximum": 10},
                    "rationale": {"type": "string"},
                },
                "required": ["draft_id", "insight_score", "rationale"],
                "additionalProperties": False,
            },
        }},
        "required": ["votes"],
        "additionalProperties": False,
    }


def test_the_ballot_prompt_in_full():
    prompt = render_ballot_prompt(BALLOT, {"Sage": "sage text", "Jurist": "jurist <draft> text"})
    assert prompt.startswith("You are reviewing anonymous drafts of the next chapter")
    assert prompt == BALLOT_INSTRUCTIONS + (
        '\n\n<draft id="Anonymous_Scribe_1">\nsage text\n</draft>'
        '\n\n<draft id="Anonymous_Oracle_2">\njurist &lt;draft> text\n</draft>\n'
    )


def test_a_draft_exactly_at_the_limit_is_shown_whole():
    assert ballot_excerpt("x" * 10, limit=10) == "x" * 10
    assert ballot_excerpt("x" * 11, limit=10) == "x" * 10 + "\n[… 1 more characters of this draft are not shown on the ballot]"
    assert ballot_excerpt("y" * 51_234) == "y" * 50_000 + (
        "\n[… 1,234 more characters of this draft are not shown on the ballot]")


def test_an_unknown_label_has_no_author():
    assert BALLOT.author_of("Anonymous_Oracle_2") == "Jurist"
    with pytest.raises(KeyError) as info:
        BALLOT.author_of("Anonymous_Poet_9")
    assert info.value.args == ("Anonymous_Poet_9",)


def test_mask_roles_that_contain_or_equal_a_name_are_not_used():
    assert "Herald" not in mask_roles_for(["Hera"])  # a 4-letter name inside a role
    assert "Herald" in mask_roles_for(["Her"])  # 3 letters: only an equal role is excluded
    assert "Her" not in MASK_ROLES
    assert "Scribe" not in mask_roles_for(["Scribes"])  # a role inside a longer name
    assert "Scribe" not in mask_roles_for(["scribe"])  # equal, whatever the case
    assert len(mask_roles_for(["Poet", "Sage"])) == len(MASK_ROLES)
    with pytest.raises(ValueError, match=r"^every mask role collides with a participant name$"):
        mask_roles_for(list(MASK_ROLES))


def test_roles_are_not_repeated_on_a_ballot_while_there_are_enough():
    authors = [f"Author{i:02d}" for i in range(12)]
    for seed in range(20):
        for presentation in plan_presentations(authors, seed).values():
            roles = [label.split("_")[1] for label in presentation.labels()]
            assert len(set(roles)) == len(roles) == 11


def test_elo_errors_and_its_curve_parameters():
    assert elo_update({"A": 1100.0, "B": 900.0}, [("A", "B", 1.0)], scale=200.0) == {
        "A": pytest.approx(1101.454545, abs=1e-5), "B": pytest.approx(898.545455, abs=1e-5)}  # E = 1/1.1
    assert elo_update({"A": 1100.0, "B": 900.0}, [("A", "B", 1.0)], base=100.0) == {
        "A": pytest.approx(1101.454545, abs=1e-5), "B": pytest.approx(898.545455, abs=1e-5)}
    assert elo_update({}, [("A", "B", 1.0)], k=10.0, initial=1500.0) == {"A": 1505.0, "B": 1495.0}
    with pytest.raises(ValueError, match=r"^'A' cannot battle itself$"):
        elo_update({}, [("A", "A", 1.0)])
    for outcome in (1.5, -0.5):
        with pytest.raises(ValueError, match=rf"^outcome {outcome} outside \[0, 1\]$"):
            elo_update({}, [("A", "B", outcome)])
    with pytest.raises(ValueError, match=r"^self-vote by 'A'$"):
        pairwise_outcomes([Vote("A", "A", "L", 5, "")])
    with pytest.raises(ValueError, match=r"^'A' scored 'B' twice$"):
        pairwise_outcomes([Vote("A", "B", "L", 5, ""), Vote("A", "B", "M", 6, "")])


def test_scoring_errors():
    with pytest.raises(ValueError, match=r"^latency is NaN$"):
        latency_penalty(float("nan"), 1.0)
    with pytest.raises(ValueError, match=r"^latency is NaN$"):
        latency_penalty(1.0, float("nan"))
    with pytest.raises(ValueError, match=r"^floor_s must be positive$"):
        latency_penalty(2.0, 1.0, floor_s=0.0)
    assert latency_penalty(2.0, 1.0, floor_s=0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"^one draft per author$"):
        penalties([DraftFacts("A", False, 1.0), DraftFacts("A", False, 2.0)])
    with pytest.raises(ValueError, match=r"^vote for unknown author 'C'$"):
        epoch_scores([Vote("A", "C", "L", 5, "")], {}, ["A", "B"])
    with pytest.raises(ValueError, match=r"^self-vote by 'A'$"):
        epoch_scores([Vote("A", "A", "L", 5, "")], {}, ["A", "B"])


def test_selection_edges():
    with pytest.raises(ValueError, match=r"^no candidates$"):
        pick_winner({}, {})
    assert describe_margin(0.004) == "won on the tie-break (tied on score)"
    assert describe_margin(-0.004) == "won on the tie-break (tied on score)"
    assert describe_margin(0.005) == "won by 0.01"  # shows as a lead, so it is one
    assert describe_margin(1.0) == "won by 1.00"
    # the loser alone: nobody to be separated from
    assert bottom_is_separated("A", {"A": 1.0}, {"A": 2.0}, ["A"]) is False
    # an interval missing among the others is never read as separation, whatever the order
    assert bottom_is_separated("A", {"A": 1.0, "B": 5.0}, {"A": 2.0}, ["A", "B", "C"]) is False
    assert bottom_is_separated("A", {"A": 1.0, "B": 5.0, "C": 6.0}, {"A": 2.0}, ["A", "B", "C"]) is True
    assert bottom_is_separated("A", {"A": 1.0, "B": 5.0, "C": 6.0}, {"A": 5.0}, ["A", "B", "C"]) is False


def test_a_random_ballot_round_trips_in_order():
    rng = random.Random(3)
    scores = [rng.randint(1, 10) for _ in BALLOT.items]
    raw = json.dumps({"votes": [entry(item.label, s, f"r{s}") for item, s in zip(BALLOT.items, scores, strict=True)]})
    votes = parse_ballot(raw, BALLOT)
    assert [(v.target, v.insight_score, v.rationale) for v in votes] == [
        ("Sage", scores[0], f"r{scores[0]}"), ("Jurist", scores[1], f"r{scores[1]}")]


CROWDED = ["".join(MASK_ROLES[:25])] + [f"Author{i:02d}" for i in range(11)]  # 7 usable roles for 11 labels


def test_a_ballot_with_fewer_roles_than_drafts_repeats_roles_never_labels():
    assert mask_roles_for(CROWDED) == ("Pilgrim", "Herald", "Sculptor", "Tinker", "Wayfarer", "Oracle", "Steward")
    numbers = set()
    for seed in range(300):
        for presentation in plan_presentations(CROWDED, seed).values():
            labels = presentation.labels()
            assert len(labels) == len(set(labels)) == 11
            roles = [label.split("_")[1] for label in labels]
            assert set(roles) <= set(mask_roles_for(CROWDED)) and len(set(roles)) <= 7
            numbers |= {int(label.rsplit("_", 1)[1]) for label in labels}
    assert numbers == set(range(1, 100))  # every number of 1..99, nothing else


def test_the_ballots_of_a_seed_never_change():
    """A replay rebuilds each ballot prompt from the epoch's seed and finds its recorded answer by the
    request: the same seed must give the same masks and order forever."""
    plan = plan_presentations(["Poet", "Sage", "Jurist"], 5)
    assert {v: p.labels() for v, p in plan.items()} == {
        "Poet": ["Anonymous_Navigator_15", "Anonymous_Scribe_48"],
        "Sage": ["Anonymous_Oracle_49", "Anonymous_Beekeeper_70"],
        "Jurist": ["Anonymous_Potter_60", "Anonymous_Cartographer_32"],
    }
    assert {v: [i.author for i in p.items] for v, p in plan.items()} == {
        "Poet": ["Sage", "Jurist"], "Sage": ["Jurist", "Poet"], "Jurist": ["Poet", "Sage"]}
    crowded = plan_presentations(CROWDED, 0)
    # this ballot drew the same role and number twice and drew the number again
    assert crowded["Author07"].labels() == [
        "Anonymous_Steward_88", "Anonymous_Herald_10", "Anonymous_Steward_4", "Anonymous_Oracle_16",
        "Anonymous_Herald_82", "Anonymous_Pilgrim_25", "Anonymous_Steward_78", "Anonymous_Wayfarer_74",
        "Anonymous_Oracle_51", "Anonymous_Wayfarer_12", "Anonymous_Wayfarer_48",
    ]
    dump = json.dumps({k: [(i.label, i.author) for i in p.items] for k, p in crowded.items()}, sort_keys=True)
    assert hashlib.sha256(dump.encode()).hexdigest() == (
        "e9f8260247ee8d4766c3410ea02b5aac576eb762e89706ff22ce6d73c226f3e1")


def test_bad_ballots_and_rosters_say_why():
    item = BallotItem("Anonymous_Scribe_1", "Sage", 0)
    with pytest.raises(ValueError, match=r"^duplicate labels on the ballot of 'Poet'$"):
        Presentation("Poet", (item, BallotItem("Anonymous_Scribe_1", "Jurist", 1)))
    with pytest.raises(ValueError, match=r"^an author appears twice on the ballot of 'Poet'$"):
        Presentation("Poet", (item, BallotItem("Anonymous_Oracle_2", "Sage", 1)))
    with pytest.raises(ValueError, match=r"^'Sage' would review its own draft$"):
        Presentation("Sage", (item,))
    with pytest.raises(ValueError, match=r"^positions must be 0..n-1 in presentation order$"):
        Presentation("Poet", (BallotItem("Anonymous_Scribe_1", "Sage", 1),))
    with pytest.raises(ValueError, match=r"^need 2..256 authors, got 1$"):
        plan_presentations(["Poet"], 0)
    with pytest.raises(ValueError, match=r"^need 2..256 authors, got 257$"):
        plan_presentations([f"Author{i:03d}" for i in range(257)], 0)
    with pytest.raises(ValueError, match=r"^duplicate author names$"):
        plan_presentations(["Poet", "Poet"], 0)


def test_exactly_as_many_roles_as_drafts_still_gives_distinct_roles():
    authors = ["".join(MASK_ROLES[:21])] + [f"Author{i:02d}" for i in range(11)]
    assert len(mask_roles_for(authors)) == 11  # one role per draft on a ballot of 11
    for seed in range(20):
        for presentation in plan_presentations(authors, seed).values():
            roles = [label.split("_")[1] for label in presentation.labels()]
            assert sorted(roles) == sorted(mask_roles_for(authors))


def test_where_a_wrapped_ballot_is_found():
    """A fenced ballot wins over one in the prose, even after a fence that does not parse; in prose the
    first object holding "votes" wins; with none, the reply is parsed whole (fence or not)."""
    fenced = 'Before: {"votes": [1]}\n```json\n{bad\n```\n```\n{"other": 0}\n```\n```json\n{"votes": [2]}\n```'
    assert find_ballot_json(fenced) == {"votes": [2]}
    assert find_ballot_json('I think {"note": 1} and {broken {"votes": [3]} ok') == {"votes": [3]}
    assert find_ballot_json("[1, 2]") == [1, 2]
    assert find_ballot_json("```json\n[1]\n```") == [1]
    with pytest.raises(json.JSONDecodeError):
        find_ballot_json('just prose, {"note": 1}')
    starts = "{ " * 200 + '{"votes": [4]}'  # the ballot behind 200 other "{" is not looked for
    with pytest.raises(json.JSONDecodeError):
        find_ballot_json(starts)
    assert find_ballot_json("{ " * 199 + '{"votes": [4]}') == {"votes": [4]}
