"""Names and words a reader sees: mutation numerals, chapter titles printed once, plurals, standings columns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dream_pipeline.cli.report import plural, render_outline, render_standings
from dream_pipeline.domains.book.prompts import chapter_body, chapter_title
from resources.fabric import ChapterRow, Standing
from spica import SpicaAgent
from spica.agents import roman

VALUES = {"M": 1000, "D": 500, "C": 100, "L": 50, "X": 10, "V": 5, "I": 1}


def _read_roman(numeral: str) -> int:
    total = 0
    for letter, following in zip(numeral, [*numeral[1:], ""], strict=True):
        value = VALUES[letter]
        total += -value if following and VALUES[following] > value else value
    return total


@pytest.mark.parametrize(("number", "numeral"), [(1, "I"), (2, "II"), (4, "IV"), (9, "IX"), (14, "XIV"),
                                                  (40, "XL"), (49, "XLIX"), (83, "LXXXIII"), (99, "XCIX"),
                                                  (1994, "MCMXCIV")])
def test_roman_numerals(number: int, numeral: str):
    assert roman(number) == numeral


@given(st.integers(1, 3999))
def test_roman_numerals_read_back_and_never_repeat_a_letter_four_times(number: int):
    numeral = roman(number)
    assert _read_roman(numeral) == number
    assert not any(letter * 4 in numeral for letter in "MCXI")
    assert not any(letter * 2 in numeral for letter in "DLV")


def test_a_mutation_is_named_with_a_correct_numeral():
    parent = SpicaAgent({"name": "Physician", "role": "physician"})
    assert parent.mutate(82).name == "Physician LXXXIII"
    assert parent.mutate(82).mutate(83).name == "Physician LXXXIV"  # the base name, not "… LXXXIII LXXXIV"
    with pytest.raises(ValueError, match="1 to 3999"):
        roman(0)


def _chapter(n: int, title: str, text: str) -> ChapterRow:
    return ChapterRow(n, None, None, title, text, None, None, None, author="Physicist", epoch_key=f"b-{n:05d}")


@pytest.mark.parametrize("first_line", ["Chapter 4: The Furnace", "## The Furnace", "**The Furnace**",
                                        "chapter 4 — the furnace"])
def test_a_chapter_title_is_printed_once(first_line: str):
    text = f"{first_line}\n\nThe furnace drives the engine.\n\nIt burned all night."
    title = chapter_title(text, 4)
    assert title.casefold() == "the furnace"
    assert chapter_body(text, title) == "The furnace drives the engine.\n\nIt burned all night."


def test_a_first_line_that_is_not_the_title_stays():
    text = "It was the furnace that drove the engine.\nMore."
    assert chapter_body(text, "Chapter 4") == text
    assert chapter_body(text, "Another Title") == text
    assert chapter_body("", "Chapter 1") == ""


def test_one_chapter_is_not_chapters():
    assert plural(1, "chapter") == "1 chapter" and plural(2, "chapter") == "2 chapters"
    assert render_outline([_chapter(1, "The Furnace", "x")]).startswith("The book so far (1 chapter):")


def test_a_long_name_keeps_the_standings_columns():
    standings = [Standing("Physician MMMDCCCLXXXVIII", "physician", True, 1000.0, 3, 1, "mutation", 40),
                 Standing("Poet", "poet", True, 990.0, 3, 0, "cast", 1)]
    header, long, short = render_standings(standings).splitlines()[1:]
    ends = [header.index("Elo") + 3, long.index("1000.0") + 6, short.index("990.0") + 5]
    assert ends[0] == ends[1] == ends[2]
    assert "Physician MMMDCCCLXXXVIII " in long  # whole, followed by a space before the rating
