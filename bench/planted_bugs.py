"""Do the six bugs that once passed the suite still fail it? Each is planted again, one at a time.

Issue 18 planted fifteen plausible bugs by hand in the rules users rely on; six passed the tests of
their files (three the whole suite). Each now has a test meant to catch it. This benchmark plants
each bug again in a throw-away copy of the checkout (a detached `git worktree` of HEAD, deleted at
the end: the checkout itself is never edited), runs the test written for it, and says whether the
test went red. The mutation benchmark (`bench.mutation`) asks the same question of every small
change; this one keeps the six named regressions from coming back unnoticed.

Run: python -m bench.planted_bugs   (about half a minute; `--full` runs each bug against the whole
test file instead of the one test, a few minutes)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import print_result, print_table

ROOT = Path(__file__).resolve().parents[1]
GIT = shutil.which("git") or "git"


@dataclass(frozen=True)
class Plant:
    """One bug: the text in `path` it replaces (every occurrence), and the test that should catch it."""

    name: str
    path: str
    old: str
    new: str
    test: str


PLANTS = (
    Plant("truncation inverted", "dream_pipeline/epoch/burst.py",
          'finish_reason == "length"', 'finish_reason != "length"',
          "tests/test_rules_through_epochs.py::test_a_draft_cut_by_the_cap_is_flagged_and_costs_five_points"),
    Plant("newcomer grace dropped in the ranking asset", "dream_pipeline/epoch/rank.py",
          "> scope.number - GRACE_EPOCHS", "> scope.number",
          "tests/test_rules_through_epochs.py::test_a_newcomer_is_in_grace_in_its_first_epoch_where_the_asset_ranks"),
    Plant("backoff never grows", "dream_pipeline/defs/loop/sensors.py", "backoff(failed)", "backoff(1)",
          "tests/test_loop_plan.py::test_the_loop_waits_longer_after_each_failure_of_an_epoch"),
    # the notification leaves the commit's statement and goes out first, on a connection of its own
    Plant("the Reaper's NOTIFY outside its transaction", "resources/fabric/canon.py",
          'conn.execute(\n                "SELECT record_epoch_timings(%s, %s, %s), pg_notify(%s, %s)",',
          '__import__("psycopg").connect(self.url(), autocommit=True).execute(\n'
          '                "SELECT pg_notify(%s, %s)", (EPOCH_CHANNEL, epoch.epoch_key))\n'
          '            conn.execute(\n                "SELECT record_epoch_timings(%s, %s, %s), %s::text, %s::text",',
          "tests/test_fabric.py::test_the_reapers_notification_is_sent_by_its_commit"),
    Plant("a ballot score of 11 accepted", "dream_pipeline/tournament/ballots.py",
          "if not MIN_SCORE <= value <= MAX_SCORE:", "if not MIN_SCORE <= value <= MAX_SCORE + 1:",
          "tests/test_tournament_properties.py::test_the_edges_of_the_score_range"),
    Plant("Elo K changed (16 -> 32)", "dream_pipeline/tournament/elo.py", "DEFAULT_K = 16.0", "DEFAULT_K = 32.0",
          "tests/test_tournament_properties.py::test_elo_single_battle_matches_formula"),
)


def run_plant(copy: Path, plant: Plant, whole_file: bool) -> dict:
    target = copy / plant.path
    original = target.read_text()
    if plant.old not in original:
        raise SystemExit(f"{plant.name}: {plant.path} no longer holds the line this bug replaces "
                         f"({plant.old!r}); update bench/planted_bugs.py to today's code")
    target.write_text(original.replace(plant.old, plant.new))
    test = plant.test.split("::")[0] if whole_file else plant.test
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", test, "-q", "-x", "-p", "no:cacheprovider",
             f"--basetemp={copy}/.pytest-tmp"],
            cwd=copy, capture_output=True, text=True, timeout=1800,
        )
    finally:
        target.write_text(original)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-120:]
    return {"bug": plant.name, "caught": done.returncode == 1, "by": test, "tests": summary,
            "seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="each bug against its whole test file")
    args = parser.parse_args()
    copy = Path(tempfile.mkdtemp(prefix="dream_planted_")) / "tree"
    subprocess.run([GIT, "worktree", "add", "--detach", "--quiet", str(copy), "HEAD"], cwd=ROOT, check=True)
    try:
        rows = []
        for plant in PLANTS:
            print(f"  planting: {plant.name} ...", flush=True)
            rows.append(run_plant(copy, plant, args.full))
    finally:
        subprocess.run([GIT, "worktree", "remove", "--force", str(copy)], cwd=ROOT, check=False)
        shutil.rmtree(copy.parent, ignore_errors=True)
    print_table("Each bug planted alone in a copy of HEAD (caught: its test went red)", rows)
    caught = sum(r["caught"] for r in rows)
    print_result({"planted": len(rows), "caught": caught, "missed": [r["bug"] for r in rows if not r["caught"]],
                  "seconds": round(sum(r["seconds"] for r in rows), 1)})
    sys.exit(0 if caught == len(rows) else 1)


if __name__ == "__main__":
    main()
