"""The ranking step's pure pieces with literals worked out by hand: the frame of the window's votes that
the elimination rule reads (`window_frame`), column by column and row by row."""

from __future__ import annotations

import uuid

from dream_pipeline.epoch.rank import window_frame
from resources.fabric import VoteRow


def _vote(voter: str, target: str, score: int, position: int) -> VoteRow:
    return VoteRow(voter, target, uuid.uuid4(), uuid.uuid4(), score, f"{voter} on {target}", "Anonymous_Scribe_0",
                   position)


def test_the_window_frame_has_one_row_per_vote_in_the_rules_columns():
    recent = [
        (3, _vote("Poet", "Physicist", 7, 0), 0.0),
        (3, _vote("Physicist", "Poet", 4, 2), 5.25),
        (4, _vote("Historian", "Poet", 9, 1), 0.5),
    ]
    frame = window_frame(recent)
    assert list(frame.columns) == ["epoch", "voter", "target", "insight_score", "position", "penalty"]
    assert frame.to_dict("records") == [
        {"epoch": 3, "voter": "Poet", "target": "Physicist", "insight_score": 7, "position": 0, "penalty": 0.0},
        {"epoch": 3, "voter": "Physicist", "target": "Poet", "insight_score": 4, "position": 2, "penalty": 5.25},
        {"epoch": 4, "voter": "Historian", "target": "Poet", "insight_score": 9, "position": 1, "penalty": 0.5},
    ]


def test_an_empty_window_still_has_the_columns():
    frame = window_frame([])
    assert frame.empty
    assert list(frame.columns) == ["epoch", "voter", "target", "insight_score", "position", "penalty"]
