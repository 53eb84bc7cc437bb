"""The deck on a fabric holding CodeRepair epochs (tests/code_repair_epochs.py) beside a book: the domain
picker, the task and its fixes as diffs with their test results and peer scores, the voting matrix of a
CodeRepair epoch, the jury's calibration, model-written code shown as text, and the read-only role."""

from __future__ import annotations

import difflib
import re

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from deck import queries
from deck.repair_text import changed_lines, fix_diff, shown_call
from dream_pipeline.domains import load_domain
from resources.fabric import StateFabric
from tests.code_repair_epochs import HOSTILE_LINE, HOSTILE_REPLY, CodeRepairFixture, write_code_repair_epochs
from tests.test_deck_app import APP, chart_data, deck_url, open_view

CODE_REPAIR_SLUGS = ["repair-task", "matrix", "calibration", "chopping-block", "ratings", "lineage", "telemetry",
                     "glossary"]


@pytest.fixture
def deck_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    url = deck_url(database_url)
    monkeypatch.setenv(queries.URL_VARIABLE, url)
    return url


def sidebar_views(at) -> list[str]:
    """The slugs of the views the sidebar offers (it shows their titles)."""
    from deck.views import views_for

    slugs = {v.title: v.slug for kind in ("book", "code_repair") for v in views_for(kind)}
    return [slugs[title] for title in at.radio(key="view").options]


# ---- pure: the diff and the visible tests -------------------------------------------------------


def test_a_fix_reads_as_a_unified_diff_of_the_changed_lines():
    buggy = "def f(x):\n    return x // 2\n"
    diff = fix_diff(buggy, "def f(x):\n    return x / 2")  # trailing newlines do not count as a change
    assert diff.splitlines() == ["--- buggy", "+++ candidate", "@@ -1,2 +1,2 @@", " def f(x):",
                                 "-    return x // 2", "+    return x / 2"]
    assert changed_lines(diff) == 2
    assert fix_diff(buggy, "\ndef f(x):\n    return x // 2\n\n") == ""  # the same function: no diff


lines = st.lists(st.text(alphabet="ab +-@", max_size=6), max_size=12)


def apply_unified(before: list[str], diff: str) -> list[str]:
    """Apply a unified diff (as fix_diff writes it) to `before`: the test's own patcher."""
    out, at = [], 0
    for line in diff.splitlines()[2:]:
        if line.startswith("@@"):
            shown, length = re.match(r"@@ -(\d+)(?:,(\d+))?", line).groups()
            # difflib names an empty old range by the line before it, a non-empty one by its first line
            start = int(shown) if length == "0" else int(shown) - 1
            out.extend(before[at:start])
            at = start
        elif line.startswith("-"):
            at += 1
        elif line.startswith("+"):
            out.append(line[1:])
        else:
            out.append(before[at])
            at += 1
    return out + before[at:]


@given(lines, lines)
def test_applying_the_diff_to_the_buggy_code_gives_the_candidate(before, after):
    """Whatever the two texts, the diff shown is exactly the change: applied to the buggy lines it gives the
    candidate's, and it counts as many changed lines as difflib's own line comparison."""
    before_text, after_text = "\n".join(before), "\n".join(after)
    diff = fix_diff(before_text, after_text, context=0)
    b, a = before_text.strip("\n").splitlines(), after_text.strip("\n").splitlines()
    if diff:
        assert apply_unified(b, diff) == a
    else:
        assert a == b
    changes = sum(1 for d in difflib.ndiff(b, a) if d[:1] in "+-")
    assert changed_lines(diff) == changes


def test_visible_tests_read_as_calls():
    assert shown_call("add_item", ["('x', ['w'])", "['w', 'x']"]) == "add_item('x', ['w']) == ['w', 'x']"
    assert shown_call("safe_divide", {"args": "(1, 0)", "expected": "raises:ZeroDivisionError"}) == \
        "safe_divide(1, 0) raises ZeroDivisionError"
    assert shown_call("f", {"call": 1}) == '{"call": 1}'  # an unknown shape: its JSON, never dropped


def test_code_repair_names_its_views_in_the_one_place():
    from deck.views import CODE_REPAIR_VIEWS, views_for

    assert CODE_REPAIR_VIEWS == ("repair_task", "matrix", "calibration", "chopping_block", "ratings", "lineage",
                                 "telemetry", "glossary")
    assert [v.slug for v in views_for("code_repair")] == CODE_REPAIR_SLUGS


# ---- a CodeRepair domain without epochs (uses the function-scoped fabric: before the module's) ---


def test_the_code_repair_views_say_when_no_epoch_has_run(fabric, deck_env):
    fabric.ensure_book(CodeRepairFixture.shipped())
    at = open_view("repair-task")
    assert sidebar_views(at) == CODE_REPAIR_SLUGS  # the only domain: its kind's views
    assert any("No epoch of 'code_repair' has run yet" in i.value for i in at.info)
    at = open_view("calibration")
    assert at.header[0].value == "How good is the jury?"
    assert any("'code_repair' has no calibration yet" in i.value for i in at.info)


# ---- CodeRepair epochs beside a book ------------------------------------------------------------


@pytest.fixture(scope="module")
def code_repair(database_url: str) -> dict:
    fabric = StateFabric(database_url=database_url)
    with fabric.connection() as conn:
        conn.execute("TRUNCATE domains, agents, simulation_epochs, llm_calls, telemetry CASCADE")
    fabric.ensure_book(load_domain("space_time"))  # a book too, so the picker has two domains
    return write_code_repair_epochs(fabric)


def test_the_domain_picker_offers_each_domain_with_its_kind_and_its_views(code_repair, deck_env):
    at = open_view("repair-task")
    picker = at.selectbox(key="domain")
    assert picker.value == "code_repair"  # the most recently active domain first
    assert list(picker.options) == ["code_repair · CodeRepair", "space_time · Book"]
    assert sidebar_views(at) == CODE_REPAIR_SLUGS
    assert any(c.value.startswith("CodeRepair **code\\_repair** · 3 epochs") for c in at.sidebar.caption)
    picker.set_value("space_time").run()
    assert not at.exception
    assert sidebar_views(at)[:4] == ["matrix", "chopping-block", "ratings", "book"]
    assert at.radio(key="view").value == "matrix"  # the book has no task view: its first view instead
    assert at.query_params["domain"] == "space_time"  # the address follows the picker


def test_the_address_names_the_domain(code_repair, deck_env):
    at = open_view("book")
    assert at.selectbox(key="domain").value == "code_repair" and at.radio(key="view").value == "repair-task"
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["view"] = "book"
    at.query_params["domain"] = "space_time"
    at.run()
    assert not at.exception
    assert at.selectbox(key="domain").value == "space_time" and at.radio(key="view").value == "book"


def test_the_task_view_shows_the_task_the_fixes_as_diffs_and_tests_beside_peer_scores(code_repair, deck_env):
    at = open_view("repair-task", repair_epoch=1)
    assert {m.label: m.value for m in at.metric} == {"Epoch": "1", "Status": "committed"}
    assert at.subheader[0].value == "The task: add\\_item"
    assert at.caption[0].value == "Bug kind: mutable default · the function add\\_item"
    assert at.text[0].value.startswith("Append item to the list items")
    codes = [c.value for c in at.code]
    assert codes[0] == "def add_item(item, items=[]):\n    items.append(item)\n    return items"
    assert codes[1] == "add_item('x', ['w']) == ['w', 'x']"  # the visible test, as a call
    table = at.dataframe[0].value
    assert list(table.columns) == ["winner", "agent", "status", "tests", "pass rate", "fitness", "peer score",
                                   "votes"]
    assert list(table["agent"]) == ["Debugger", "Tester", "Hacker", "Architect", "Intern"]  # winner, then fitness
    assert list(table["winner"]) == ["✓", "", "", "", ""]
    assert list(table["tests"]) == ["4/4", "4/4", "4/4", "1/4", "0/4"]
    assert list(table["pass rate"]) == ["100%", "100%", "100%", "25%", "0%"]
    assert list(table["status"]) == ["ok", "ok", "ok", "ok", "no_code"]
    # peer score: the mean of the fix's four ballot scores (2 + 7 × pass rate, the Intern one lower)
    assert list(table["peer score"]) == ["8.75", "8.75", "8.75", "3.75", "2.00"]
    assert list(table["votes"]) == ["4", "4", "4", "4", "4"]
    labels = [e.label for e in at.expander]
    assert labels[0] == "Debugger — the winner: ok\\, 4\\/4 passed"  # Markdown, every punctuation escaped
    # the winning fix as a diff against the buggy function: the changed and the added lines
    winner_diff = codes[2].splitlines()
    assert "-def add_item(item, items=[]):" in winner_diff and "+def add_item(item, items=None):" in winner_diff
    assert "+    if items is None:" in winner_diff and "     items.append(item)" in winner_diff
    assert any(c.value == "4 lines changed against the buggy function:" for c in at.caption)
    assert any(c.value == "The buggy function unchanged:" for c in at.caption)  # the Architect's
    assert any("No code could be taken from this reply" in w.value for w in at.warning)  # the Intern's


def test_a_running_epoch_shows_tests_so_far_and_no_peer_score_yet(code_repair, deck_env):
    at = open_view("repair-task")  # the latest epoch: 3, drafted and partly tested, not voted
    assert {m.label: m.value for m in at.metric}["Status"] == "running"
    assert at.number_input(key="repair_epoch").value == 3
    table = at.dataframe[0].value
    assert list(table["agent"]) == ["Debugger", "Tester", "Architect", "Hacker"]
    assert list(table["status"]) == ["ok", "ok", "ok", "not tested yet"]
    assert (table["peer score"] == "—").all() and (table["winner"] == "").all()
    assert any("shown once the epoch commits" in c.value for c in at.caption)
    assert [e.label for e in at.expander][-1] == "Hacker: not tested yet"


def test_model_written_code_and_replies_are_shown_as_text(code_repair, deck_env):
    at = open_view("repair-task", repair_epoch=1)
    codes = [c.value for c in at.code]
    hostile = [c for c in codes if HOSTILE_LINE in c]
    assert len(hostile) == 1 and "+" + HOSTILE_LINE in hostile[0].splitlines()  # in the Hacker's diff, verbatim
    assert HOSTILE_REPLY in [t.value for t in at.text]  # the Intern's reply without code, through st.text
    assert not at.get("html")
    for m in [*at.markdown, *at.subheader, *at.caption, *at.warning, *at.info]:
        assert "<script" not in m.value.replace("\\<script", ""), m.value
    assert all("<script" not in e.label for e in at.expander)


def test_the_voting_matrix_of_a_code_repair_epoch(code_repair, deck_env):
    at = open_view("matrix", matrix_follow=False, matrix_epoch=2)
    assert [m.value for m in at.metric][:3] == ["2", "committed", "20 / 20"]
    cells = chart_data(at)
    assert len(cells) == 20 and set(cells["column"]) == {"Debugger", "Tester", "Architect", "Hacker", "Intern"}
    assert any(m.value.startswith("The winning fix is by **Tester**") for m in at.markdown)
    at = open_view("matrix")  # following the live epoch: 3, no ballot yet
    assert [m.value for m in at.metric][:2] == ["3", "running"]
    assert any("No ballot has arrived" in i.value for i in at.info)


def test_the_calibration_view_shows_each_voter_latest_and_over_the_window(code_repair, deck_env):
    at = open_view("calibration")
    assert at.caption[0].value.startswith("Spearman's ρ ranks a voter's scores against the hidden tests' pass")
    means = at.dataframe[0].value
    assert list(means["voter"]) == ["Debugger", "Tester", "Architect", "Hacker", "Intern"]
    assert list(means["mean ρ"]) == ["+0.80", "+0.70", "+0.40", "+0.10", "-0.50"]
    assert list(means["n (epochs with ρ)"]) == [2, 2, 1, 2, 1]
    assert list(means["epochs undefined"]) == [0, 0, 1, 0, 1]
    assert list(means["± (95 %)"]) == ["0.20", "0.20", "—", "0.20", "—"]  # 1.96 × 0.1414 / √2
    bars = chart_data(at)
    assert set(bars["voter"]) == {"Debugger", "Tester", "Architect", "Hacker", "Intern"}
    debugger = bars[bars["voter"] == "Debugger"].iloc[0]
    assert (round(debugger["lower"], 3), round(debugger["upper"], 3)) == (0.604, 0.996)
    latest = at.dataframe[1].value
    assert [s.value for s in at.subheader][-1] == "The latest epoch calibrated (2)"
    assert list(latest["voter"]) == ["Tester", "Debugger", "Hacker", "Architect", "Intern"]
    assert list(latest["ρ"]) == ["+0.80", "+0.70", "+0.00", "—", "—"]
    at.number_input(key="calibration_window").set_value(1).run()
    means = at.dataframe[0].value
    assert list(means["mean ρ"])[:2] == ["+0.80", "+0.70"] and list(means["n (epochs with ρ)"]) == [1, 1, 1, 0, 0]


@pytest.mark.parametrize("table", ["repair_tasks", "candidate_tests", "voter_calibration"])
def test_the_reader_role_reads_the_code_repair_tables_and_cannot_write_them(table, code_repair, database_url):
    with psycopg.connect(deck_url(database_url), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0  # noqa: S608 — a fixed name
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608


def test_every_shipped_domain_gets_the_views_it_names():
    """The deck's list for a family is the one its domain class gives (`deck_views()`), and the deck finds
    each shipped instance's family by its name, whatever `domains.kind` holds."""
    import spica
    from deck.domains import domain_family
    from deck.views import DOMAIN_VIEWS
    from dream_pipeline.domains import register_shipped

    register_shipped()
    shipped = sorted(name for name, cls in spica.registered_domains().items()
                     if cls.__module__.startswith("dream_pipeline.domains."))
    assert {"space_time", "far_shore"} <= set(shipped)
    for name in shipped:
        domain = load_domain(name)
        assert DOMAIN_VIEWS[domain.family] == tuple(domain.deck_views()), name
        assert domain_family(name, "domain") == domain.family
    assert domain_family("not_registered", "code_repair") == "code_repair"  # another writer's row: its kind
