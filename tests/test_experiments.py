"""experiments.yaml: domains with their settings, the older `book:` form, and clear errors for bad entries."""

from __future__ import annotations

import pytest

from dream_pipeline.config.experiments import Experiment, enabled_books, enabled_experiments


def _file(tmp_path, text: str):
    path = tmp_path / "experiments.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_domains_with_their_settings_and_the_older_book_form_read_alike(tmp_path):
    path = _file(tmp_path, """experiments:
  - domain: book
    name: space_time
    enabled: true
    epochs_per_cycle: 3
  - book: far_shore
  - domain: book
    name: nowhere_yet
    enabled: false
""")
    assert enabled_experiments(path) == (Experiment("book", "space_time", 3), Experiment("book", "far_shore", 1))
    assert enabled_books(path) == ("space_time", "far_shore")


def test_the_shipped_experiments_file_runs_the_book_and_code_repair():
    assert enabled_experiments() == (Experiment("book", "space_time", 1), Experiment("code_repair", "code_repair", 1))


@pytest.mark.parametrize(("per_cycle", "expected"), [
    ({"space_time": 1, "code_repair": 1}, ["space_time", "code_repair", "space_time", "code_repair"]),
    ({"space_time": 2, "code_repair": 1}, ["space_time", "space_time", "code_repair", "space_time"]),
])
def test_the_loop_takes_the_domains_in_turn_by_epochs_per_cycle(per_cycle, expected):
    from dream_pipeline.defs.epoch.partitions import epoch_key
    from dream_pipeline.defs.loop.sensors import next_book

    books, numbers, order, base = ("space_time", "code_repair"), {"space_time": 0, "code_repair": 0}, [], None
    for _ in range(4):
        book = next_book(books, base, per_cycle)
        numbers[book] += 1
        base = epoch_key(book, numbers[book])
        order.append(book)
    assert order == expected


@pytest.mark.parametrize("entry, message", [
    ("  - domain: book\n    name: space_time\n    epochs_per_cycle: 0\n", "epochs_per_cycle must be a whole number >= 1, got 0"),
    ("  - domain: book\n    name: space_time\n    epochs_per_cycle: two\n", "got 'two'"),
    ("  - domain: book\n    name: space_time\n    epochs_per_cycle: true\n", "got True"),
    ("  - domain: code_repair\n    name: space_time\n", "'space_time' is a 'book' domain, not 'code_repair'"),
    ("  - domain: book\n", "needs a 'domain:' and a 'name:'"),
    ("  - book: space_time\n    name: space_time\n", "gives 'book:' and 'domain:'/'name:'"),
    ("  - book: space_time\n  - domain: book\n    name: space_time\n", "'space_time' is listed twice"),
    ("  - domain: book\n    name: space_time\n    enabled: maybe\n", "enabled must be true or false"),
    ("  - domain: book\n    name: space_time\n    cycles: 2\n", "unknown keys ['cycles']"),
])
def test_a_bad_entry_is_one_clear_error_naming_the_file(tmp_path, entry, message):
    path = _file(tmp_path, "experiments:\n" + entry)
    with pytest.raises(ValueError) as error:
        enabled_experiments(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_an_unregistered_name_is_refused_naming_what_is_registered(tmp_path):
    path = _file(tmp_path, "experiments:\n  - domain: book\n    name: nowhere\n")
    with pytest.raises(ValueError, match=r"'nowhere' is not a registered SPICA domain \(registered: .*space_time"):
        enabled_experiments(path)
