"""The ranking step as the asset composes it (`compose_ranking`): penalties into battles, Elo from the
stored ratings, the winner, grace, the Bradley–Terry window and separation, on the real fabric with
ballots written by hand (no engine), so every figure is known in advance."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from dream_pipeline.defs.epoch.assets.elo_rankings import EloConfig
from dream_pipeline.epoch.rank import _finite, compose_ranking, window_frame
from dream_pipeline.epoch.rating_window import window_statistics
from dream_pipeline.epoch.scope import epoch_seed, load_scope
from dream_pipeline.tournament import elo_update, pairwise_outcomes
from dream_pipeline.tournament.ballots import Vote
from dream_pipeline.tournament.elimination import judge_window
from dream_pipeline.tournament.selection import bottom_is_separated
from resources.fabric import ChapterRow, DraftRow, VoterFlag, VoteRow
from spica import SpicaBook
from tests.fabric_helpers import write_votes

QUALITY = [9, 7, 5, 3, 1]  # what every voter gives the agents of the roster, in roster order


def _open(fabric, number: int):
    key = f"space_time-{number:05d}"
    fabric.open_epoch("space_time", key, number)
    return load_scope(fabric, key)


def _drafts(fabric, scope, penalties: dict[str, float]) -> list[DraftRow]:
    rows = [DraftRow(a.instance_id, a.name, f"draft of {a.name}", 1, 1, "stop", False, 0.1,
                     penalty=penalties.get(a.name, 0.0)) for a in scope.agents]
    fabric.write_drafts(scope.epoch.epoch_id, rows)
    return fabric.drafts(scope.epoch.epoch_id)


def _votes(scope, quality: dict[str, int], biased: str | None = None, wobble: int = 0) -> list[VoteRow]:
    """Every voter scores each target its quality; `biased` gives the draft it reads first 3 points less
    and the second `wobble` points more."""
    shift = {0: -3, 1: wobble}
    return [
        VoteRow(v.name, t.name, v.instance_id, t.instance_id,
                quality[t.name] + (shift.get(i, 0) if v.name == biased else 0),
                f"{v.name} on {t.name}", f"Anonymous_Scribe_{i}", i)
        for v in scope.agents for i, t in enumerate(a for a in scope.agents if a is not v)
    ]


def _commit(fabric, scope, ranking, written) -> None:
    by_name = {a.name: a for a in scope.agents}
    fabric.write_ratings(scope.epoch.epoch_id, ranking.rows, by_name[ranking.winner].instance_id,
                         by_name[ranking.loser].instance_id if ranking.loser else None,
                         bottom_separated=ranking.separated, flags=ranking.flags)
    winner = next(d for d in written if d.agent_name == ranking.winner)
    fabric.commit_chapter(scope.epoch.epoch_id, "space_time",
                          ChapterRow(scope.number, winner.draft_id, winner.agent_id, "T", winner.text, 1.0, 0.0))
    book = SpicaBook.load("space_time")
    loser = by_name[ranking.loser]
    fabric.reap(fabric.epoch(scope.key), loser, book.recruit(book.reserve()[scope.number - 1], replaced=loser))


def _oracle(scope, written, votes, before, k, history):
    """The same figures from the pure rules, called directly with what the asset should pass them."""
    penalty = {d.agent_name: d.penalty for d in written}
    ballots = [Vote(v.voter_agent, v.target_agent, v.masked_label, v.insight_score, v.rationale) for v in votes]
    after = elo_update(before, pairwise_outcomes(ballots, penalty), k=k)
    recent = history + [(scope.number, v, penalty[v.target_agent]) for v in votes]
    return after, window_statistics(recent, epoch_seed(scope.key)).intervals


def test_the_first_epoch_ranked_as_the_rules_say(fabric):
    fabric.ensure_book(SpicaBook.load("space_time"))
    scope = _open(fabric, 1)
    names = [a.name for a in scope.agents]
    quality = dict(zip(names, QUALITY, strict=True))
    # the best writer's draft was cut (-5): 9 - 5 = 4 puts it below the second (7) and third (5)
    written = _drafts(fabric, scope, {names[0]: 5.0, names[3]: 0.25})
    votes = _votes(scope, quality)
    ranking = compose_ranking(scope, written, votes, fabric, EloConfig())

    assert ranking.battles == 30  # 5 ballots of 4 drafts: 6 pairs each
    assert ranking.winner == names[1]
    assert ranking.newcomers == []  # the cast is never in grace
    after, bt = _oracle(scope, written, votes, dict.fromkeys(names, 1000.0), 16.0, [])
    rows = {r.agent_name: r for r in ranking.rows}
    for name in names:
        assert rows[name].rating_before == 1000.0
        assert rows[name].rating_after == pytest.approx(after[name])
        assert rows[name].bt_rating == pytest.approx(bt["rating"][name])
        assert rows[name].bt_lower == pytest.approx(bt["lower"][name])
        assert rows[name].bt_upper == pytest.approx(bt["upper"][name])
        assert rows[name].agent_id == scope.agent(name).instance_id
    assert [rows[n].penalty for n in names] == [5.0, 0.0, 0.0, 0.25, 0.0]
    assert [rows[n].epoch_score for n in names] == [4.0, 7.0, 5.0, 2.75, 1.0]
    # ranked by rating, best first, from 1
    assert [r.rank for r in ranking.rows] == [1, 2, 3, 4, 5]
    assert [r.agent_name for r in ranking.rows] == [names[1], names[2], names[0], names[3], names[4]]
    assert ranking.loser == names[4]  # the lowest rating
    assert sum(after.values()) == pytest.approx(5000.0)
    candidates = list(names)
    expected = bottom_is_separated(names[4], bt["lower"].to_dict(), bt["upper"].to_dict(), candidates)
    assert ranking.separated is expected
    # a K of its own is the one the ratings move by
    doubled = compose_ranking(scope, written, votes, fabric, EloConfig(k=32.0))
    k32, _ = _oracle(scope, written, votes, dict.fromkeys(names, 1000.0), 32.0, [])
    assert {r.agent_name: r.rating_after for r in doubled.rows} == pytest.approx(k32)
    assert doubled.rows[0].rating_after > ranking.rows[0].rating_after + 10.0


def test_the_second_epoch_starts_from_stored_ratings_and_spares_the_newcomer(fabric):
    fabric.ensure_book(SpicaBook.load("space_time"))
    first = _open(fabric, 1)
    names = [a.name for a in first.agents]
    written = _drafts(fabric, first, {})
    votes = _votes(first, dict(zip(names, QUALITY, strict=True)))
    write_votes(fabric, first.epoch.epoch_id, votes, [])
    ranking = compose_ranking(first, written, votes, fabric, EloConfig())
    _commit(fabric, first, ranking, written)
    stored = {r.agent_name: r.rating_after for r in ranking.rows}

    second = _open(fabric, 2)
    newcomer = next(a.name for a in second.agents if a.name not in names)
    # the newcomer writes worst of all, and still is not eliminated in the epoch it joined
    quality = {a.name: q for a, q in zip(second.agents, [8, 6, 4, 2, 5], strict=True)}
    quality[newcomer] = 1
    written2 = _drafts(fabric, second, {})
    votes2 = _votes(second, quality)
    for window in (1, 2, 10):
        ranked = compose_ranking(second, written2, votes2, fabric, EloConfig(window_epochs=window))
        veteran_ratings = [stored[a.name] for a in second.agents if a.name in stored]
        roster_mean = sum(veteran_ratings) / len(veteran_ratings)  # a newcomer's Elo starts there
        before = {a.name: stored.get(a.name, roster_mean) for a in second.agents}
        rows = {r.agent_name: r for r in ranked.rows}
        assert {n: r.rating_before for n, r in rows.items()} == pytest.approx(before)
        assert rows[newcomer].rating_before == pytest.approx(roster_mean) and roster_mean > 1000.0
        history = fabric.recent_votes("space_time", 1, 1) if window > 1 else []
        assert len(history) == (20 if window > 1 else 0)
        after, bt = _oracle(second, written2, votes2, before, 16.0, history)
        assert {n: r.rating_after for n, r in rows.items()} == pytest.approx(after)
        # the window also rates the agent retired after epoch 1; the rows are the living roster's
        assert len(bt) == (6 if window > 1 else 5)
        assert {n: r.bt_rating for n, r in rows.items()} == pytest.approx({n: bt["rating"][n] for n in rows})
        assert {n: r.bt_upper for n, r in rows.items()} == pytest.approx({n: bt["upper"][n] for n in rows})
        assert ranked.newcomers == [newcomer]
        assert after[newcomer] < before[newcomer]  # it lost every battle
        veterans = {n: r.elimination_score for n, r in rows.items() if n != newcomer}
        assert ranked.loser == min(veterans, key=veterans.get) == min(quality, key=lambda n: (n == newcomer, quality[n]))
        candidates = [a.name for a in second.agents if a.name != newcomer]
        assert ranked.separated is bottom_is_separated(ranked.loser, bt["lower"].to_dict(), bt["upper"].to_dict(),
                                                       candidates)

    # a third epoch with a window of 2 reads epoch 2's ballots and not epoch 1's
    write_votes(fabric, second.epoch.epoch_id, votes2, [])
    ranked = compose_ranking(second, written2, votes2, fabric, EloConfig())
    _commit(fabric, second, ranked, written2)
    third = _open(fabric, 3)
    written3 = _drafts(fabric, third, {})
    votes3 = _votes(third, {a.name: q for a, q in zip(third.agents, [2, 4, 6, 8, 10], strict=True)})
    ranked = compose_ranking(third, written3, votes3, fabric, EloConfig(window_epochs=2))
    # grace is one epoch: the agent that joined in epoch 2 is a candidate again, the one seated by
    # epoch 2's Reaper (joined in epoch 3) is spared
    joined_three = next(a.name for a in third.agents if a.name not in {b.name for b in second.agents})
    assert newcomer in [a.name for a in third.agents] and ranked.newcomers == [joined_three]
    history = fabric.recent_votes("space_time", 2, 1)
    assert {e for e, _, _ in history} == {2} and len(history) == 20
    before = {r.agent_name: r.rating_before for r in ranked.rows}
    _, bt = _oracle(third, written3, votes3, before, 16.0, history)
    assert {r.agent_name: r.bt_rating for r in ranked.rows} == pytest.approx(
        {r.agent_name: bt["rating"][r.agent_name] for r in ranked.rows})


def test_nobody_to_eliminate_when_all_are_in_grace(fabric):
    fabric.ensure_book(SpicaBook.load("space_time"))
    scope = _open(fabric, 1)
    with fabric.connection() as conn:  # every seat taken by a newcomer of this epoch
        conn.execute("UPDATE agents SET origin = 'reserve', joined_epoch = 1")
    scope = load_scope(fabric, scope.key)
    names = [a.name for a in scope.agents]
    written = _drafts(fabric, scope, {})
    ranking = compose_ranking(scope, written, _votes(scope, dict(zip(names, QUALITY, strict=True))), fabric,
                              EloConfig(window_epochs=1))
    assert sorted(ranking.newcomers) == sorted(names)
    assert ranking.loser is None and ranking.separated is None


def test_only_finite_figures_are_stored():
    assert _finite(None) is None
    assert _finite(math.nan) is None and _finite(math.inf) is None and _finite(-math.inf) is None
    assert _finite(3) == 3.0 and isinstance(_finite(3), float)


def test_an_agent_that_forfeited_is_rated_with_no_penalty_and_no_score(fabric):
    fabric.ensure_book(SpicaBook.load("space_time"))
    scope = _open(fabric, 1)
    names = [a.name for a in scope.agents]
    absent = names[2]
    rows = [DraftRow(a.instance_id, a.name, f"draft of {a.name}", 1, 1, "stop", False, 0.1, penalty=1.0)
            for a in scope.agents if a.name != absent]
    fabric.write_drafts(scope.epoch.epoch_id, rows)
    written = fabric.drafts(scope.epoch.epoch_id)
    votes = [v for v in _votes(scope, dict(zip(names, QUALITY, strict=True))) if v.target_agent != absent]
    ranking = compose_ranking(scope, written, votes, fabric, EloConfig(window_epochs=1))
    row = next(r for r in ranking.rows if r.agent_name == absent)
    assert row.penalty == 0.0 and row.epoch_score is None and row.rating_after == 1000.0
    assert [r.penalty for r in ranking.rows if r.agent_name != absent] == [1.0] * 4


def test_in_a_domain_with_tests_the_fittest_candidate_wins_not_the_peers_favourite(fabric):
    from dream_pipeline.domains import load_domain
    from dream_pipeline.domains.code_repair.domain import task_for

    fabric.ensure_book(load_domain("code_repair"))
    key = "code_repair-00001"
    fabric.open_epoch("code_repair", key, 1)
    scope = load_scope(fabric, key)
    names = [a.name for a in scope.agents]
    task = task_for("code_repair", 1)
    fixer = names[3]  # the peers rate it fourth of five
    rows = [DraftRow(a.instance_id, a.name, f"```python\n{task.fix if a.name == fixer else task.buggy}\n```\n",
                     1, 1, "stop", False, 0.1) for a in scope.agents]
    fabric.write_drafts(scope.epoch.epoch_id, rows)
    written = fabric.drafts(scope.epoch.epoch_id)
    ranking = compose_ranking(scope, written, _votes(scope, dict(zip(names, QUALITY, strict=True))), fabric,
                              EloConfig(window_epochs=1))
    assert ranking.winner == fixer and ranking.tests is not None and ranking.tests.winner == fixer
    assert ranking.tests.scores[fixer].pass_rate == 1.0
    assert ranking.tests.scores[names[0]].pass_rate < 1.0  # the peers' favourite wrote the bug back
    assert ranking.rows[0].agent_name == names[0]  # Elo still follows the peers


def test_a_clique_flagged_at_an_epoch_still_in_the_window_keeps_its_ballots_silenced(fabric):
    fabric.ensure_book(SpicaBook.load("space_time"))
    first = _open(fabric, 1)
    names = [a.name for a in first.agents]
    written = _drafts(fabric, first, {})
    votes = _votes(first, dict(zip(names, QUALITY, strict=True)))
    write_votes(fabric, first.epoch.epoch_id, votes, [])
    ranking = compose_ranking(first, written, votes, fabric, EloConfig())
    assert ranking.flags == [] and ranking.loser == names[4]  # every voter agrees: nobody is flagged
    # epoch 1 is stored as having flagged a clique of its two best writers
    _commit(fabric, first, replace(ranking, flags=[VoterFlag("clique", names[0], names[1], 0.9)]), written)

    second = _open(fabric, 2)
    written2 = _drafts(fabric, second, {})
    votes2 = _votes(second, {a.name: q for a, q in zip(second.agents, QUALITY, strict=True)})
    with_epoch_one = compose_ranking(second, written2, votes2, fabric, EloConfig(window_epochs=2))
    assert with_epoch_one.flags == []  # this window's ballots show no clique: the stored flag sticks
    weights = {w.voter_agent: (w.weight, w.reason) for w in with_epoch_one.weights}
    assert weights[names[0]] == (0.0, f"clique with {names[1]}")
    assert weights[names[1]] == (0.0, f"clique with {names[0]}")
    assert [weights[a.name] for a in second.agents[2:]] == [(1.0, "")] * 3
    alone = compose_ranking(second, written2, votes2, fabric, EloConfig(window_epochs=1))  # epoch 1 out of it
    assert {w.voter_agent: w.weight for w in alone.weights} == dict.fromkeys([a.name for a in second.agents], 1.0)

    # at epoch 3 a window of 2 holds epochs 2 and 3: epoch 1's flag has left it; a window of 3 still holds it
    write_votes(fabric, second.epoch.epoch_id, votes2, [])
    _commit(fabric, second, with_epoch_one, written2)
    third = _open(fabric, 3)
    written3 = _drafts(fabric, third, {})
    votes3 = _votes(third, {a.name: q for a, q in zip(third.agents, QUALITY, strict=True)})
    assert names[0] in [a.name for a in third.agents] and names[1] in [a.name for a in third.agents]
    later = compose_ranking(third, written3, votes3, fabric, EloConfig(window_epochs=2))
    assert {w.voter_agent for w in later.weights} >= {names[0], names[1]}
    assert {w.weight for w in later.weights} == {1.0}  # every voter of epochs 2 and 3, the retired one too
    wider = compose_ranking(third, written3, votes3, fabric, EloConfig(window_epochs=3))
    assert {w.voter_agent: w.weight for w in wider.weights if w.weight < 1.0} == {names[0]: 0.0, names[1]: 0.0}


def _sized_drafts(fabric, scope, tokens: dict[str, int], cut: str) -> list[DraftRow]:
    """Drafts of the given lengths; `cut`'s hit the cap (truncated, the 5-point penalty)."""
    rows = [DraftRow(a.instance_id, a.name, f"draft of {a.name}", 10, tokens[a.name],
                     "length" if a.name == cut else "stop", a.name == cut, 0.1, penalty=5.0 if a.name == cut else 0.0)
            for a in scope.agents]
    fabric.write_drafts(scope.epoch.epoch_id, rows)
    return fabric.drafts(scope.epoch.epoch_id)


def test_the_lengths_of_the_windows_drafts_reach_the_elimination_rule(fabric):
    """With a draft cut in the window, the rule weighs truncation as each writer's chance of the cap, read
    from every draft's (completion tokens, truncated) of the window: the earlier epochs' as stored, this
    epoch's as written."""
    fabric.ensure_book(SpicaBook.load("space_time"))
    first = _open(fabric, 1)
    names = [a.name for a in first.agents]
    tokens1 = dict(zip(names, [300, 420, 512, 150, 260], strict=True))  # names[2] hit the cap of 512
    written = _sized_drafts(fabric, first, tokens1, cut=names[2])
    votes = _votes(first, dict(zip(names, QUALITY, strict=True)))
    write_votes(fabric, first.epoch.epoch_id, votes, [])
    _commit(fabric, first, compose_ranking(first, written, votes, fabric, EloConfig()), written)

    second = _open(fabric, 2)
    roster = [a.name for a in second.agents]
    tokens2 = dict(zip(roster, [310, 512, 480, 170, 230], strict=True))  # roster[1] hit it this time
    written2 = _sized_drafts(fabric, second, tokens2, cut=roster[1])
    votes2 = _votes(second, dict(zip(roster, [8, 6, 4, 2, 5], strict=True)))
    ranked = compose_ranking(second, written2, votes2, fabric, EloConfig(window_epochs=2))
    assert ranked.flags == []

    recent = fabric.recent_votes("space_time", 1, 1) + [(2, v, 5.0 if v.target_agent == roster[1] else 0.0)
                                                         for v in votes2]
    lengths = {(1, n): (tokens1[n], n == names[2]) for n in names} | {(2, n): (tokens2[n], n == roster[1])
                                                                     for n in roster}
    judged = judge_window(window_frame(recent), roster, ranked.newcomers, [], lengths=lengths)
    rows = {r.agent_name: r for r in ranked.rows}
    assert {n: rows[n].elimination_score for n in roster} == pytest.approx(
        {n: judged.estimates[n].shrunk for n in roster})
    assert {n: rows[n].window_mean for n in roster} == pytest.approx({n: judged.estimates[n].mean for n in roster})
    # the four who wrote in both epochs have two epochs in the window, the newcomer one
    assert {n: rows[n].window_epochs for n in roster} == {n: 1 if n in ranked.newcomers else 2 for n in roster}
    assert len(ranked.newcomers) == 1
    assert ranked.loser == judged.loser
    # the lengths matter: without them (or with this epoch's alone) the rule says something else
    for other in (None, {k: v for k, v in lengths.items() if k[0] == 2}):
        apart = judge_window(window_frame(recent), roster, ranked.newcomers, [], lengths=other)
        assert {n: judged.estimates[n].shrunk for n in roster} != pytest.approx(
            {n: apart.estimates[n].shrunk for n in roster})

    # at epoch 3 a window of 2 holds epochs 2 and 3: epoch 1's lengths (its cut draft) have left it
    write_votes(fabric, second.epoch.epoch_id, votes2, [])
    _commit(fabric, second, ranked, written2)
    third = _open(fabric, 3)
    cast3 = [a.name for a in third.agents]
    tokens3 = dict(zip(cast3, [280, 390, 505, 160, 240], strict=True))  # nobody cut
    written3 = _sized_drafts(fabric, third, tokens3, cut="")
    votes3 = _votes(third, dict(zip(cast3, [3, 9, 5, 7, 1], strict=True)))
    later = compose_ranking(third, written3, votes3, fabric, EloConfig(window_epochs=2))
    recent3 = fabric.recent_votes("space_time", 2, 1) + [(3, v, 0.0) for v in votes3]
    lengths3 = {(2, n): tokens for (e, n), tokens in lengths.items() if e == 2} | {(3, n): (tokens3[n], False)
                                                                                for n in cast3}
    judged3 = judge_window(window_frame(recent3), cast3, later.newcomers, [], lengths=lengths3)
    with_epoch_one = judge_window(window_frame(recent3), cast3, later.newcomers, [], lengths=lengths3 | {
        (1, n): (tokens1[n], n == names[2]) for n in names})
    assert {n: judged3.estimates[n].shrunk for n in cast3} != pytest.approx(
        {n: with_epoch_one.estimates[n].shrunk for n in cast3})
    assert {r.agent_name: r.elimination_score for r in later.rows} == pytest.approx(
        {n: judged3.estimates[n].shrunk for n in cast3})


def test_a_voters_position_effect_is_removed_and_kept_with_its_weight(fabric):
    """A voter who scores the draft it reads first 3 points low, three epochs running (and wobbles by a point
    on the second, so its spread is not nil): with the three in the window the effect is significant, taken
    out of its scores and kept with its ballots' weight."""
    fabric.ensure_book(SpicaBook.load("space_time"))
    biased = None
    history = []
    for number, wobble in ((1, 1), (2, -1), (3, 0)):
        scope = _open(fabric, number)
        biased = biased or scope.agents[2].name
        written = _drafts(fabric, scope, {})
        votes = _votes(scope, {a.name: q for a, q in zip(scope.agents, QUALITY, strict=True)}, biased=biased,
                       wobble=wobble)
        ranking = compose_ranking(scope, written, votes, fabric, EloConfig(window_epochs=3))
        history += [(number, v, 0.0) for v in votes]
        if number < 3:
            write_votes(fabric, scope.epoch.epoch_id, votes, [])
            _commit(fabric, scope, ranking, written)
    corrections = {w.voter_agent: dict(w.position_correction) for w in ranking.weights}
    assert set(corrections[biased]) == {0} and corrections[biased][0] < -2.0
    assert [c for v, c in corrections.items() if v != biased] == [{}] * (len(corrections) - 1)
    flags = [(f.kind, f.voter_agent, f.partner, f.strength) for f in ranking.flags]  # no clique: none sticks
    judged = judge_window(window_frame(history), [a.name for a in scope.agents], ranking.newcomers, flags)
    assert corrections[biased] == pytest.approx(judged.weights[biased].position_correction)


def test_a_winner_decided_first_gives_the_same_ranking(fabric):
    """The closing step decides the winner first (so the summary can go out) and hands that verdict to the
    ranking: the result is the ranking decided in one go, winner, loser, rows and flags alike."""
    from dream_pipeline.epoch.rank import decide_winner

    fabric.ensure_book(SpicaBook.load("space_time"))
    scope = _open(fabric, 1)
    names = [a.name for a in scope.agents]
    written = _drafts(fabric, scope, {names[0]: 5.0, names[3]: 0.4})
    votes = _votes(scope, dict(zip(names, QUALITY, strict=True)), biased=names[1], wobble=2)
    config = EloConfig(window_epochs=3)
    verdict = decide_winner(scope, written, votes, fabric, config)
    handed = compose_ranking(scope, written, votes, fabric, config, verdict)
    alone = compose_ranking(scope, written, votes, fabric, config)
    assert verdict.winner == alone.winner == names[1]  # the best quality lost 5 points to its truncation
    assert handed == alone
