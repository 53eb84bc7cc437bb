"""Where a replay and the record of a committed epoch disagree, in words.

Pure, no I/O. The facts and digests themselves are `dream_pipeline/fingerprint.py` (the fabric stores
them in the Reaper's commit); `differences` turns two sets of facts into a readable diff, so a failed
replay reads as a diff, not as two hashes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dream_pipeline.fingerprint import ITEM_KEYS, SECTIONS


def _show(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "…"


def _item_differences(section: str, label: str, recorded: Mapping[str, Any], replayed: Mapping[str, Any]) -> list[str]:
    return [
        f"{section}[{label}].{field}: recorded {_show(recorded.get(field))}, replayed {_show(replayed.get(field))}"
        for field in sorted(set(recorded) | set(replayed))
        if recorded.get(field) != replayed.get(field)
    ]


def differences(section: str, recorded: Any, replayed: Any) -> list[str]:
    """Every difference between the recorded and the replayed facts of one section, one line each."""
    if section not in ITEM_KEYS:  # a single item (outcome, chapter) or None
        if recorded == replayed:
            return []
        if recorded is None or replayed is None:
            return [f"{section}: recorded {_show(recorded)}, replayed {_show(replayed)}"]
        return _item_differences(section, "", recorded, replayed)
    key = ITEM_KEYS[section]
    old = {tuple(item[k] for k in key): item for item in recorded}
    new = {tuple(item[k] for k in key): item for item in replayed}
    lines: list[str] = []
    for ident in sorted(set(old) | set(new), key=str):
        label = "→".join(map(str, ident))
        if ident not in new:
            lines.append(f"{section}[{label}]: recorded, missing from the replay")
        elif ident not in old:
            lines.append(f"{section}[{label}]: in the replay, not in the record")
        else:
            lines.extend(_item_differences(section, label, old[ident], new[ident]))
    return lines


def all_differences(recorded: Mapping[str, Any], replayed: Mapping[str, Any],
                    sections: Sequence[str] = SECTIONS) -> list[str]:
    return [line for name in sections if name in replayed for line in differences(name, recorded[name], replayed[name])]
