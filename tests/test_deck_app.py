"""The Epistemic Deck through Streamlit's AppTest: every view against a fabric filled by real epochs
(two committed, a third voted but not committed), the empty fabric, and the read-only role."""

from __future__ import annotations

import io
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from deck import queries
from deck.launcher import deck_command
from deck.safe_text import md_escape
from dream_pipeline.defs.epoch.assets import epoch_assets
from dream_pipeline.defs.epoch.partitions import epoch_key
from resources.fabric import StateFabric
from resources.llm import LLMEngine

APP = str(Path(__file__).resolve().parents[1] / "deck" / "app.py")
HOSTILE_TITLE = "**Bold** <script>alert('title')</script> :red[x] $x$"
HOSTILE_TEXT = "# Not a heading\n<script>window.__pwned = 1</script>\n<b>not bold</b> [link](javascript:alert(1))"
# quiet logs, and no PHASE gate: the tests must not depend on the time of day they run at
RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}},
              "ops": {"roster_drafts_and_votes": {"config": {"phase_gate": False}}}}
VIEWS = ["matrix", "chopping-block", "ratings", "book", "lineage", "telemetry", "similar"]


def deck_url(database_url: str) -> str:
    """The test database as the read-only role (DREAM_TEST_DECK_DATABASE_URL for an external server)."""
    return os.environ.get("DREAM_TEST_DECK_DATABASE_URL") or queries.reader_url(database_url)


def open_view(view: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["view"] = view
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def chart_data(at: AppTest, index: int = 0) -> pd.DataFrame:
    """The rows behind the `index`-th Altair chart, as the browser receives them."""
    proto = at.get("vega_lite_chart")[index].proto
    frames = [pa.ipc.open_stream(io.BytesIO(d.data.data)).read_all().to_pandas() for d in proto.datasets]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@pytest.fixture
def deck_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = deck_url(database_url)
    monkeypatch.setenv(queries.URL_VARIABLE, url)
    return url


# ---- the empty fabric first (the filled one below is module-scoped) -----------------------------


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_explains_an_empty_fabric(view, fabric, deck_env):
    at = open_view(view)
    assert at.header, "every view has a title"
    assert any("fabric is empty" in i.value and "dream run" in i.value for i in at.info)
    assert not at.get("vega_lite_chart") and not at.dataframe


def test_external_fabric_without_a_deck_url_says_what_to_set(monkeypatch):
    monkeypatch.delenv(queries.URL_VARIABLE, raising=False)
    monkeypatch.setenv("DREAM_DATABASE_URL", "postgresql://someone@db.example/dream")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert any(queries.URL_VARIABLE in e.value for e in at.error)


def test_reader_url_swaps_the_user_and_drops_the_password():
    assert queries.reader_url("postgresql://postgres@/dream?host=/x/pgdata") == \
        "postgresql://dream_reader@/dream?host=/x/pgdata"
    assert queries.reader_url("postgresql://owner:secret@db:5432/dream") == "postgresql://dream_reader@db:5432/dream"


def test_deck_command_serves_headless_on_localhost_as_a_viewer_without_usage_statistics():
    command = deck_command()
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("deck/app.py")
    flags = dict(zip(command[5::2], command[6::2], strict=True))
    assert flags == {"--server.address": "127.0.0.1", "--server.port": "8501", "--server.headless": "true",
                     "--browser.gatherUsageStats": "false", "--client.toolbarMode": "viewer"}
    assert deck_command("::1", 9000)[5:9] == ["--server.address", "::1", "--server.port", "9000"]


# ---- the read-only role -------------------------------------------------------------------------


WRITES = [
    "INSERT INTO domains (domain_id, instance_id, kind, manifest) VALUES ('x', gen_random_uuid(), 'book', '{}')",
    "UPDATE agents SET alive = FALSE",
    "DELETE FROM chapters",
    "CREATE TABLE deck_was_here (x int)",
    "TRUNCATE peer_votes",
]


@pytest.mark.parametrize("statement", WRITES)
def test_the_reader_role_cannot_write(statement, fabric, database_url):
    url = deck_url(database_url)
    # the role itself: even with the session's read-only default switched off, it has no privilege to write
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        assert conn.execute("SELECT count(*) FROM simulation_epochs").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    # and the deck's own connection refuses writes before privileges are even checked
    with queries.connect(url) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute(statement)
    # read-only by itself, not by the role's default: as the fabric's owner, whose sessions may write,
    # the deck's connection still refuses, and stays read-only after its session default is switched off
    with psycopg.connect(database_url) as owner:
        assert owner.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
    with queries.connect(database_url) as conn:
        assert conn.execute("SHOW transaction_read_only").fetchone()["transaction_read_only"] == "on"
        conn.execute("SET default_transaction_read_only = off")
        conn.commit()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute(statement)


def test_the_reader_migration_is_idempotent(fabric, database_url):
    script = (Path(__file__).resolve().parents[1] / "sql" / "004_deck_reader.sql").read_text()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(script)
        conn.execute(script)
        role = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'dream_reader'"
        ).fetchone()
    assert role == (True, False, False, False)


# ---- a fabric filled by real epochs -------------------------------------------------------------


# (joined_epoch, retired_epoch) of the agents of a 30-epoch book; each is rated in every epoch it is alive
LIFESPANS = {"A": (1, None), "B": (1, 10), "C": (5, 25), "D": (12, 14), "E": (20, 30), "F": (26, None),
             "G": (8, 18)}


@pytest.mark.parametrize(("first", "last", "max_agents", "picked", "in_window"), [
    (1, 30, 5, {"A", "E", "F", "C", "G"}, 7),  # alive at the end (A, E, F), then the longest lived: C 20, G 10
    (1, 30, 3, {"A", "E", "F"}, 7),
    (11, 20, 4, {"A", "C", "E", "G"}, 5),      # G alive at the start: 8 epochs in the window, D only 3
    (11, 20, 5, {"A", "C", "E", "G", "D"}, 5),
    (15, 24, 2, {"A", "C"}, 4),                 # E is alive at the end too, but joined at 20
    (26, 30, 12, {"A", "E", "F"}, 3),
])
def test_ratings_pick_the_agents_with_most_epochs_in_the_window(fabric, database_url, first, last, max_agents,
                                                                 picked, in_window):
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO domains (domain_id, instance_id, kind, manifest)"
                     " VALUES ('space_time', gen_random_uuid(), 'book', '{}')")
        conn.execute("INSERT INTO simulation_epochs (epoch_key, book, epoch_number, active_agent_ids, status)"
                     " SELECT 'space_time-' || n, 'space_time', n, '{}', 'committed' FROM generate_series(1, 30) n")
        for name, (joined, retired) in LIFESPANS.items():
            conn.execute("INSERT INTO agents (agent_id, book, name, persona, manifest, origin, joined_epoch,"
                         " retired_epoch, alive) VALUES (gen_random_uuid(), 'space_time', %s, '', '{}', 'cast', %s,"
                         " %s, %s)",
                         (name, joined, retired, retired is None))
        conn.execute("INSERT INTO elo_ratings (epoch_id, agent_id, agent_name, rating_before, rating_after, rank)"
                     " SELECT e.epoch_id, a.agent_id, a.name, 1000, 1000, 1 FROM simulation_epochs e JOIN agents a"
                     " ON e.epoch_number BETWEEN a.joined_epoch AND coalesce(a.retired_epoch, 30)")
    with queries.connect(deck_url(database_url)) as conn:
        history = queries.rating_history(conn, "space_time", first, last, max_agents=max_agents)
    assert set(history["agent"]) == picked
    assert set(history["agents_in_window"]) == {in_window}


def test_lineage_pages_read_from_either_end_are_the_same(fabric, database_url):
    """A page in the older half is read from the oldest end of the arrivals (no walk past the newer half)."""
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO domains (domain_id, instance_id, kind, manifest)"
                     " VALUES ('space_time', gen_random_uuid(), 'book', '{}')")
        for name, (joined, retired) in LIFESPANS.items():
            conn.execute("INSERT INTO agents (agent_id, book, name, persona, manifest, origin, joined_epoch,"
                         " retired_epoch, alive) VALUES (gen_random_uuid(), 'space_time', %s, '', '{}', 'cast', %s,"
                         " %s, %s)", (name, joined, retired, retired is None))
    with queries.connect(deck_url(database_url)) as conn:
        pages = [list(queries.lineage(conn, "space_time", offset, 3, total=7)["agent"]) for offset in range(0, 9, 3)]
        assert pages == [["F", "E", "D"], ["G", "C", "A"], ["B"]]  # the latest arrivals first; ties by name
        for offset in range(9):
            assert (list(queries.lineage(conn, "space_time", offset, 2, total=7)["agent"])
                    == list(queries.lineage(conn, "space_time", offset, 2)["agent"]))


@pytest.fixture(scope="module")
def filled(database_url: str, engine_url: str) -> dict:
    """Epochs 1–2 committed and epoch 3 voted but not committed, through Dagster against the offline
    engine; chapter 1 carries a hostile title and text; two drafts of epoch 1 have a missing and a
    differently sized embedding."""
    fabric = StateFabric(database_url=database_url)
    with fabric.connection() as conn:
        conn.execute("TRUNCATE domains, agents, simulation_epochs, llm_calls, telemetry CASCADE")
    llm = LLMEngine(base_url=engine_url, max_tokens=900, max_retries=2, timeout_s=30, fabric=fabric)
    with dg.instance_for_test() as instance:
        for number in (1, 2, 3):
            key = epoch_key("space_time", number)
            instance.add_dynamic_partitions("epochs", [key])
            selection = ["roster", "drafts", "peer_votes"] if number == 3 else None
            result = dg.materialize(epoch_assets, instance=instance, partition_key=key, selection=selection,
                                    resources={"fabric": fabric, "llm": llm}, run_config=RUN_CONFIG)
            assert result.success
    first = fabric.epoch(epoch_key("space_time", 1))
    drafts = fabric.drafts(first.epoch_id)
    winner = next(d for d in drafts if d.agent_id == first.winner_agent_id)
    losers = [d for d in drafts if d.agent_id != first.winner_agent_id]
    with fabric.connection() as conn:
        conn.execute("UPDATE chapters SET title = %s, text = %s WHERE epoch_id = %s",
                     (HOSTILE_TITLE, HOSTILE_TEXT, first.epoch_id))
        conn.execute("UPDATE drafts SET text = %s WHERE draft_id = %s", (HOSTILE_TEXT, winner.draft_id))
        conn.execute("UPDATE drafts SET embedding = NULL WHERE draft_id = %s", (losers[0].draft_id,))
        conn.execute("UPDATE drafts SET embedding = '[1,2,3]' WHERE draft_id = %s", (losers[1].draft_id,))
    return {"fabric": fabric, "no_embedding": losers[0], "small_embedding": losers[1], "winner": winner}


def test_the_live_matrix_masks_targets_until_the_epoch_commits(filled, deck_env):
    at = open_view("matrix")
    assert [m.value for m in at.metric][:2] == ["3", "running"]
    box = at.number_input(key="matrix_epoch")
    assert box.value == 3 and box.disabled  # the live epoch, not 1
    cells = chart_data(at)
    assert len(cells) == 20 and cells["target"].isna().all()  # 5 voters × 4 drafts, authors not sent
    assert set(cells["column"]) == {"read #1", "read #2", "read #3", "read #4"}
    assert cells["masked_label"].str.startswith("Anonymous_").all()
    assert cells["rationale"].str.len().gt(0).all() and cells["score"].between(1, 10).all()
    masks = at.dataframe[0].value
    assert masks.stack().str.startswith("Anonymous_").all() and "→" not in masks.to_string()


def test_the_matrix_of_a_committed_epoch_names_the_authors(filled, deck_env):
    at = open_view("matrix", matrix_follow=False, matrix_epoch=2)
    assert [m.value for m in at.metric][:3] == ["2", "committed", "20 / 20"]
    cells = chart_data(at)
    assert set(cells["column"]) == set(cells["voter"]) and (cells["column"] != cells["voter"]).all()
    assert any("Chapter won by" in m.value for m in at.markdown)
    assert "→" in at.dataframe[0].value.to_string()


def test_the_chopping_block_shows_intervals_the_bottom_and_grace(filled, deck_env):
    at = open_view("chopping-block")
    table = at.dataframe[0].value
    assert len(table) == 5
    assert (table["status"] == "at the bottom").sum() == 1
    newcomer = table[table["joined_epoch"] == 3]
    assert list(newcomer["status"]) == ["grace"]  # joined for epoch 3, which is being played
    assert list(newcomer["elo"]) == ["not rated yet"]  # not "None"
    numbers = table[["bt_lower", "bt_rating", "bt_upper"]].apply(pd.to_numeric, errors="coerce").dropna()
    assert len(numbers) == 4
    assert ((numbers["bt_lower"] <= numbers["bt_rating"]) & (numbers["bt_rating"] <= numbers["bt_upper"])).all()
    assert {m.label: m.value for m in at.metric}["Epoch being played"] == "3"
    assert len(at.dataframe[1].value) == 2  # the eliminations of epochs 1–2
    # the bottom is the pipeline's own rule on the stored elimination scores, grace excluded
    as_numbers = {c: pd.to_numeric(table[c], errors="coerce") for c in ("elimination_score", "epoch_score")}
    scored = table.assign(**as_numbers).dropna(subset=["elimination_score"])
    eligible = scored[scored["status"] != "grace"]
    bottom = table.loc[table["status"] == "at the bottom", "agent"].iloc[0]
    assert bottom == eligible.sort_values(["elimination_score", "epoch_score", "agent"]).iloc[0]["agent"]
    assert (table["lineage"].notna()).all()


def test_the_matrix_shows_ballot_weights(filled, deck_env):
    at = open_view("matrix", matrix_follow=False, matrix_epoch=2)
    weights = at.dataframe[1].value
    assert len(weights) == 6 and weights["weight"].between(0, 1).all()  # every voter of epochs 1–2


def test_ratings_over_time_plot_elo_and_bradley_terry_with_events(filled, deck_env):
    at = open_view("ratings")
    elo, bt = chart_data(at, 0), chart_data(at, 1)
    assert set(elo["epoch"].dropna()) == {1, 2}
    assert {"bt_lower", "bt_upper"} <= set(bt.columns)
    events = at.dataframe[0].value
    assert (events["event"] == "elimination").sum() == 2 and (events["event"] == "arrival").sum() == 2
    assert {"arrival", "elimination"} <= set(elo["event"].dropna())


def test_the_book_reads_chapters_and_opens_the_multiverse(filled, deck_env):
    at = open_view("book")
    titles = [s.value for s in at.subheader]
    assert len(titles) == 2 and titles[0].startswith("Chapter 1:")
    assert len(at.text) == 2
    at.toggle(key="multiverse_2").set_value(True).run()
    assert not at.exception
    assert len(at.text) == 2 + 5  # the five drafts of epoch 2 beside the chapters
    assert sum("the canon" in m.value for m in at.markdown) == 1


def test_hostile_text_in_the_book_is_shown_as_text(filled, deck_env):
    at = open_view("book")
    assert HOSTILE_TEXT in [t.value for t in at.text]  # verbatim, through st.text
    assert at.subheader[0].value == f"Chapter 1: {md_escape(HOSTILE_TITLE)}"
    assert not at.get("html")
    for m in [*at.markdown, *at.subheader, *at.caption]:
        assert "<script" not in m.value.replace("\\<script", "")
    at.toggle(key="multiverse_1").set_value(True).run()
    assert [t.value for t in at.text].count(HOSTILE_TEXT) == 2  # the chapter and its draft


def test_lineage_shows_who_replaced_whom(filled, deck_env):
    at = open_view("lineage")
    table = at.dataframe[0].value
    assert len(table) == 7  # the cast of five and two replacements
    newcomers = table[table["origin"] != "cast"]
    assert newcomers["replaced"].notna().all()
    dot = at.get("graphviz_chart")[0].proto.spec
    for r in newcomers.itertuples():
        assert f'"{r.replaced}" -> "{r.agent}"' in dot
    # the living cast's largest lineage, by the Reaper's own measure: five agents of five roots
    assert {m.label: m.value for m in at.metric}["Largest lineage in the living cast"] == "20%"
    assert sum("Living cast by lineage" in c.value and c.value.count("20%") == 5 for c in at.caption) == 1
    at.selectbox(key="lineage_agent").set_value(newcomers["agent"].iloc[0]).run()
    assert len(at.get("graphviz_chart")) == 2


def test_telemetry_per_epoch_and_per_agent(filled, deck_env):
    at = open_view("telemetry")
    per_epoch, per_agent = at.dataframe[0].value, at.dataframe[1].value
    assert list(per_epoch["epoch"]) == [1, 2, 3]
    assert (per_epoch["drafts"] == 5).all() and (per_epoch["calls"] > 0).all()
    assert (per_epoch.loc[per_epoch["epoch"] > 1, "dead_time_s"] != "—").all()
    assert list(per_epoch.loc[per_epoch["epoch"] == 1, ["dead_time_s", "downtime_s"]].iloc[0]) == ["—", "—"]
    assert per_epoch["duration_s"].iloc[:2].gt(0).all() and pd.isna(per_epoch["duration_s"].iloc[2])
    assert per_agent["drafts"].sum() == 15 and per_agent["completion_tokens"].gt(0).all()
    assert {m.label: m.value for m in at.metric}["Epochs finished"] == "2"
    assert (per_epoch["vote_mode"] == "json_schema").all() and (per_epoch["memory_mode"] == "vectors").all()
    engines = at.dataframe[-1].value  # the engine the epochs ran on, as probed (no step-down: last table)
    assert list(engines["vote_mode"]) == ["json_schema"] and engines["embeddings"].all()
    assert engines["context_tokens"].iloc[0] >= 2048


def test_similar_drafts_by_cosine_similarity(filled, deck_env):
    """Shown as `dream search` shows it: cosine similarity (1 − pgvector's distance), under that name."""
    at = open_view("similar", similar_epoch=1)
    at.selectbox(key="similar_draft_1").set_value(filled["winner"].draft_id).run()
    nearest = at.dataframe[0].value
    similarity = nearest["cosine similarity"]
    assert len(nearest) == 10 and similarity.is_monotonic_decreasing and similarity.le(1 + 1e-6).all()
    shown = set(zip(nearest["epoch"], nearest["agent"], strict=True))
    assert (1, filled["no_embedding"].agent_name) not in shown  # no embedding: left out
    assert (1, filled["small_embedding"].agent_name) not in shown  # another size: left out, no error
    assert len(at.dataframe[1].value) >= 1  # nearest chapters


def test_a_draft_without_an_embedding_says_so(filled, deck_env):
    at = open_view("similar", similar_epoch=1)
    at.selectbox(key="similar_draft_1").set_value(filled["no_embedding"].draft_id).run()
    assert any("no embedding" in w.value for w in at.warning)
    at.selectbox(key="similar_draft_1").set_value(filled["small_embedding"].draft_id).run()
    assert not at.exception  # a 3-dimensional vector among 256-dimensional ones: no size-mismatch error
    assert any("No other draft" in c.value for c in at.caption)


def test_the_views_read_only_through_the_query_module():
    deck = Path(__file__).resolve().parents[1] / "deck"
    paths = sorted(deck.rglob("*.py"))
    assert {"app.py", "queries.py", "page.py", "matrix.py", "book.py"} <= {p.name for p in paths}
    for path in paths:
        source = path.read_text()
        assert "unsafe_allow_html=" not in source and "st.html(" not in source, path.name
        if path.name != "queries.py":
            assert "psycopg.connect" not in source and ".execute(" not in source, path.name


def test_a_stalled_epoch_is_named_with_its_cause(filled, deck_env):
    fabric = filled["fabric"]
    key = epoch_key("space_time", 3)
    failure = "no valid ballot: 5 of 5 voters: the model does not write JSON; the engine returned '**hi**'"
    with fabric.connection() as conn:
        conn.execute("UPDATE simulation_epochs SET timings = timings || jsonb_build_object('rolls', 4, 'failure', "
                     "%s::text) WHERE epoch_key = %s", (failure, key))
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params["view"] = "telemetry"
        at.run()
        assert not at.exception
        [box] = at.error
        assert box.value.startswith(f"{md_escape(key)} failed 3 times in a row: ")
        assert md_escape("no valid ballot: 5 of 5 voters") in box.value
        assert "\\*\\*hi\\*\\*" in box.value  # the engine's text is shown, never rendered
    finally:
        with fabric.connection() as conn:
            conn.execute("UPDATE simulation_epochs SET timings = timings - 'rolls' - 'failure' WHERE epoch_key = %s",
                         (key,))


def test_the_glossary_view_is_the_readmes_glossary(fabric, deck_env):
    """The deck's help texts link to `?view=glossary`; it shows README.md's Glossary, every term of it."""
    from deck.glossary import glossary

    terms = glossary()
    for term in ("epoch", "burst", "collapse", "canon", "world", "grace", "separated", "dead time", "downtime"):
        assert term in terms
    at = open_view("glossary")
    shown = [m.value for m in at.markdown]
    assert len(shown) == len(terms) >= 20
    assert any(text.startswith("**collapse**:") and "collapsed" in text for text in shown)


def test_every_help_link_names_a_glossary_term():
    import re

    from deck.glossary import has_term

    views = Path(__file__).resolve().parents[1] / "deck" / "views"
    source = "".join(path.read_text() for path in sorted(views.glob("*.py")))
    linked = set(re.findall(r'glossary_link\("([^"]+)"\)', source))
    assert len(linked) >= 8
    assert [t for t in linked if not has_term(t)] == []


def test_each_domain_kind_names_its_views_in_one_place():
    from deck.views import DOMAIN_VIEWS, views_for

    assert [v.slug for v in views_for("book")] == [*VIEWS, "glossary"]
    assert [v.slug for v in views_for("no such kind")] == [v.slug for v in views_for("book")]  # the book's
    assert [v.slug for v in views_for(None)] == [v.slug for v in views_for("book")]
    # every view module is some domain's view: none is left unreachable
    folder = Path(__file__).resolve().parents[1] / "deck" / "views"
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "page"}
    assert modules == {name for names in DOMAIN_VIEWS.values() for name in names}


def standings_frame(rows: list[tuple]) -> pd.DataFrame:
    columns = ["agent", "origin", "joined_epoch", "elimination_score", "epoch_score", "bt_lower", "bt_upper"]
    return pd.DataFrame(rows, columns=columns)


def test_the_chopping_block_grades_grace_bottom_and_separation_by_the_pipelines_rules():
    from deck.views.chopping_block import classify_standings, separation_now

    frame = standings_frame([
        ("Ada", "cast", 1, 4.0, 5.0, 10.0, 20.0),
        ("Bo", "cast", 1, 2.0, 3.0, 1.0, 8.0),  # the lowest outside grace
        ("Cy", "reserve", 4, 1.0, 1.0, 0.0, 3.0),  # lower still, but joined for epoch 4: in grace
        ("Di", "cast", 1, None, None, None, None),
    ])
    graded = classify_standings(frame, 4)
    assert list(graded["status"]) == ["safe", "at the bottom", "grace", "not rated yet"]
    assert separation_now(graded) == "yes"  # 8 < 10: Bo's interval lies below Ada's
    assert list(classify_standings(frame, 5)["status"])[2] == "at the bottom"  # grace is over
    overlapping = classify_standings(frame.assign(bt_upper=[20.0, 12.0, 3.0, None]), 4)
    assert separation_now(overlapping) == "no"
    assert separation_now(classify_standings(frame.iloc[1:], 4)) == "—"  # no safe agent to compare with
