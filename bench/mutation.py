"""Would the tests notice if a rule were wrong? A mutation score on the modules that hold the rules.

mutmut 3 changes one operator, constant or call at a time in a copy of the code (`mutants/`) and runs
the tests that exercise the changed function; a mutant the tests do not fail on *survived*. The
scope is the rules users rely on: the pure tournament rules (with the bounded review design and the
token estimates), the Bradley–Terry fit and the voter statistics, the loop's plan and the PHASE
window, the canon's facts and diffs, selection and grace where the ranking asset applies them, the
Reaper's transaction, the LLM resource's replay path, the replay verification and the judgment
rules of issue 15 (elimination, reliability, de-identification, diversity, verbosity). Each module runs
apart, in `.mutation/<module>/` (its own `mutants/` copy and a pyproject whose [tool.mutmut] is the
project's with this module's files and tests), so a mutant of a pure rule never waits for a
database test.

Run: python -m bench.mutation [--full] [--module NAME ...] [--max-children N] [--keep] [--recheck]
  default: the pure modules (about 2,300 mutants, 30 min on 2 cores shared with other jobs; less on
  an idle machine); --full adds the modules whose tests need the database and the engine (the
  ranking asset, the Reaper, the replay path of the LLM resource, the replay verification, and the
  judgment rules, whose tests simulate tournaments: from 10 to 40 min each). --recheck re-tests only what the last run left alive.
Surviving mutants that no test can kill (they change nothing observable) are listed with a reason
in bench/mutation_equivalent.txt; the score leaves them out and says how many there were.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.common import print_result, print_table

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
EQUIVALENT_FILE = Path(__file__).with_name("mutation_equivalent.txt")
SEP = "ǁ"  # mutmut's separator between a class and its method in a mutant's name


@dataclass(frozen=True)
class Module:
    """One scoped module: the files mutmut mutates, which of their functions count, which tests run."""

    name: str
    files: tuple[str, ...]
    functions: tuple[str, ...]  # mutant-name globs, as `mutmut run` takes them
    tests: tuple[str, ...]  # test files or node ids: the only tests its mutants are run against
    fast: bool  # in the default run (pure code, quick tests)


def _functions(module: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{module}.{name}__mutmut_*" for name in names)


_RULES = ("anonymize", "ballots", "elo", "scoring", "selection", "review_design", "token_budget")
_JUDGMENT = ("elimination", "reliability", "deidentify", "diversity", "verbosity")
MODULES = (
    # the storable-text policy lives with the rows it protects (records.py, re-exported by sanitize.py)
    Module("tournament_rules", (*(f"dream_pipeline/tournament/{m}.py" for m in _RULES), "dream_pipeline/records.py"),
           (*(f"dream_pipeline.tournament.{m}.*" for m in _RULES),
            *_functions("dream_pipeline.records", "x__join_pair", "x_storable_text", "x_unstorable_count",
                        "x_storable_json")),
           ("tests/test_tournament_properties.py", "tests/test_rules_pinned.py", "tests/test_review_design.py",
            "tests/test_review_pinned.py",
            "tests/test_rankings_window.py::test_separation_needs_the_bottom_interval_below_every_other",
            "tests/test_rankings_window.py::test_missing_intervals_are_not_separated",
            "tests/test_hostile_input.py::test_storable_text_always_encodes_and_has_no_nul",
            "tests/test_hostile_input.py::test_storable_text_leaves_clean_text_unchanged",
            "tests/test_hostile_input.py::test_storable_text_examples",
            "tests/test_hostile_input.py::test_ballot_prompt_cuts_a_runaway_draft_with_a_marker"), fast=True),
    Module("loop_plan", ("dream_pipeline/defs/loop/sensors.py",),
           _functions("dream_pipeline.defs.loop.sensors", "x_staging_depth", "x_backoff", "x_next_book", "x_next_key",
                      "x_staging_keys", "x_plan_loop"),
           ("tests/test_loop_plan.py",), fast=True),
    Module("phase_window", ("dream_pipeline/defs/phase/window.py",), ("dream_pipeline.defs.phase.window.*",),
           ("tests/test_phase_window.py", "tests/test_loop_plan.py"), fast=True),
    # the statistics' property tests bootstrap thousands of fits (half a minute per mutant): their
    # mutants run against the pinned values and the quick examples instead (4 minutes in all)
    Module("tournament_statistics", ("dream_pipeline/tournament/bradley_terry.py",
                                     "dream_pipeline/tournament/voter_stats.py"),
           ("dream_pipeline.tournament.bradley_terry.*", "dream_pipeline.tournament.voter_stats.*"),
           ("tests/test_statistics_pinned.py",
            *(f"tests/test_tournament_statistics.py::{name}" for name in (
                "test_battles_frame_columns", "test_mle_is_order_free_and_finite_for_an_undefeated_agent",
                "test_bootstrap_resamples_whole_ballots", "test_consensus_is_leave_one_out_per_epoch",
                "test_voter_agreement_columns_and_leniency", "test_reciprocity_removes_the_voters_own_bias"))),
           fast=True),
    # the replay verification (issue 12): the canon's facts and diffs are pure; the replay compares
    # them with the stored rows, on an epoch committed by hand on the database (test_canon replays
    # whole epochs through Dagster: a minute and a half per mutant)
    Module("canon", ("dream_pipeline/fingerprint.py", "dream_pipeline/epoch/canon.py"),
           ("dream_pipeline.fingerprint.*", "dream_pipeline.epoch.canon.*"),
           ("tests/test_canon_pinned.py", "tests/test_canon.py::test_differences_name_the_item_and_the_field"),
           fast=True),
    Module("replay", ("dream_pipeline/epoch/replay.py",), ("dream_pipeline.epoch.replay.*",), ("tests/test_replay_rules.py",),
           fast=False),
    # the judgment rules of issue 15 (pure, but their tests simulate tournaments: seconds per mutant)
    Module("judgment_rules", tuple(f"dream_pipeline/tournament/{m}.py" for m in _JUDGMENT),
           tuple(f"dream_pipeline.tournament.{m}.*" for m in _JUDGMENT),
           ("tests/test_judgment_rules.py", "tests/test_judgment_pinned.py", "tests/test_verbosity_rule.py",
            *(f"tests/test_deidentify.py::{name}" for name in (
                "test_identity_terms_cover_names_roles_and_words", "test_scrub_masks_forms_and_records_counts",
                "test_only_an_upper_case_numeral_goes_with_the_name",
                "test_a_plural_possessive_in_es_keeps_no_stray_apostrophe",
                "test_no_review_prompt_contains_an_agent_name_or_role"))),
           fast=False),
    Module("ranking_asset", ("dream_pipeline/epoch/rank.py",),
           _functions("dream_pipeline.epoch.rank", "x_compose_ranking", "x_window_frame", "x__finite"),
           ("tests/test_ranking_rules.py", "tests/test_ranking_pinned.py",
            "tests/test_rules_through_epochs.py::test_a_newcomer_is_in_grace_in_its_first_epoch_where_the_asset_ranks"),
           fast=False),
    Module("reaper", ("resources/fabric/canon.py",), _functions("resources.fabric.canon", f"x{SEP}CanonMixin{SEP}reap"),
           ("tests/test_fabric.py", "tests/test_loop_barrier.py",
            "tests/test_migration_018.py::test_the_reaper_writes_the_timing_row_in_the_commits_transaction"),
           fast=False),
    # the replay path: `session` is left out, as mutmut 3 mutates no decorated function (it is an
    # @asynccontextmanager: its pattern matched no mutant), and it is mostly the engine probe, the vote-mode
    # choice and the clients' lifecycle (test_engine_probe, test_vote_mode_step_down), not replay
    Module("llm_replay", ("resources/llm.py",),
           _functions("resources.llm", f"x{SEP}LLMSession{SEP}_replayed", f"x{SEP}LLMEngine{SEP}recorded_calls",
                      "x__completion"),
           ("tests/test_llm_replay.py",
            "tests/test_loop_dagster.py::test_a_committed_epoch_replays_bit_for_bit_without_the_engine"), fast=False),
)

KILLED = {"killed", "timeout", "segfault", "caught by type check"}  # the tests (or the run) went red
NOT_KILLED = {"survived", "no tests", "suspicious"}


def equivalent_mutants() -> dict[str, str]:
    """`name  reason` per line of bench/mutation_equivalent.txt ('#' starts a comment)."""
    found = {}
    for line in EQUIVALENT_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, reason = line.partition(" ")
            found[name] = reason.strip()
    return found


def _workspace(module: Module, keep: bool) -> Path:
    """`.mutation/<module>/`: the project's folders linked in, and a pyproject whose [tool.mutmut] is
    the project's with only this module's file and tests."""
    text = (ROOT / "pyproject.toml").read_text()
    head, marker, _ = text.partition("\n[tool.mutmut]\n")
    if not marker:
        raise SystemExit("pyproject.toml has no [tool.mutmut] section")
    config = tomllib.loads(text)["tool"]["mutmut"]
    config.update(only_mutate=list(module.files), pytest_add_cli_args_test_selection=list(module.tests))
    place = WORK / module.name
    if place.exists() and not keep:
        shutil.rmtree(place)
    place.mkdir(parents=True, exist_ok=True)
    for entry in [*config["source_paths"], *config["also_copy"], "tests"]:
        link = place / entry.rstrip("/")
        if not link.exists():
            link.symlink_to(ROOT / entry.rstrip("/"))
    lines = [f"{key} = {json.dumps(value)}" for key, value in config.items()]  # JSON scalars/arrays are TOML
    (place / "pyproject.toml").write_text(head + marker + "\n".join(lines) + "\n")
    return place


def _statuses(place: Path, module: Module) -> dict[str, str]:
    """Each of the module's scoped mutants and what became of it, from mutmut's own records."""
    from mutmut.stats import status_by_exit_code

    statuses = {}
    for meta in (place / "mutants").rglob("*.py.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in module.functions):
                statuses[name] = status_by_exit_code[code]
    return statuses


def run_module(module: Module, max_children: int, keep: bool, recheck: bool) -> tuple[dict[str, str], float]:
    """Mutate the module and run its tests against every mutant; with `recheck`, only against the
    mutants its last run did not kill (a killed mutant stays killed while tests are only added)."""
    place = WORK / module.name
    record = place / "statuses.json"  # mutmut forgets verdicts when the test selection changes: keep ours
    previous = {}
    if recheck:
        previous = json.loads(record.read_text()) if record.exists() else \
            _statuses(place, module) if (place / "mutants").exists() else {}
    equivalent = equivalent_mutants()
    names = sorted(n for n, s in previous.items() if s not in KILLED and n not in equivalent) if previous \
        else list(module.functions)
    place = _workspace(module, keep or bool(previous))
    started = time.monotonic()
    if names:
        env = {**os.environ, "DREAM_STATE_DIR": os.environ.get("DREAM_STATE_DIR", str(ROOT / ".dream"))}
        mutmut = Path(sys.executable).with_name("mutmut")
        log = place / "mutmut.log"
        with open(log, "w") as out:
            done = subprocess.run([str(mutmut), "run", "--max-children", str(max_children), *names],
                                  cwd=place, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            tail = log.read_text()[-3000:]
            raise SystemExit(f"mutmut failed on {module.name} (exit {done.returncode}); end of {log}:\n{tail}")
    elapsed = time.monotonic() - started
    fresh = _statuses(place, module)
    statuses = {**previous, **{n: fresh[n] for n in names}} if previous else fresh
    if not statuses:
        raise SystemExit(f"mutmut produced no mutants for {module.name}")
    record.write_text(json.dumps(statuses, indent=1, sort_keys=True))
    return statuses, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="every scoped module (DB tests: about an hour)")
    parser.add_argument("--module", action="append", choices=[m.name for m in MODULES], help="only these")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--keep", action="store_true", help="reuse .mutation/ (mutmut re-tests what changed)")
    parser.add_argument("--recheck", action="store_true",
                        help="re-test only the mutants the last run of each module did not kill"
                             " (and that are not listed as equivalent)")
    args = parser.parse_args()
    chosen = [m for m in MODULES if (m.name in args.module if args.module else args.full or m.fast)]
    equivalent = equivalent_mutants()

    started = time.monotonic()
    per_module, survivors = {}, []
    for module in chosen:
        print(f"mutating {module.name} ({', '.join(module.files)}) against {', '.join(module.tests)} ...", flush=True)
        statuses, elapsed = run_module(module, args.max_children, args.keep, args.recheck)
        counts = Counter(statuses.values())
        kept = [n for n, s in statuses.items() if s in NOT_KILLED and n not in equivalent]
        killed = sum(counts[s] for s in KILLED)
        judged = killed + len(kept)
        per_module[module.name] = {
            "mutants": len(statuses), "killed": killed, "survived": counts["survived"],
            "timeout": counts["timeout"], "no_tests": counts["no tests"],
            "equivalent": sum(1 for n, s in statuses.items() if s in NOT_KILLED and n in equivalent),
            "score": round(killed / judged, 3) if judged else None, "seconds": round(elapsed),
        }
        survivors += sorted(kept)
        print_table(f"{module.name}: {', '.join(module.files)}", [{"status": s, "mutants": c} for s, c in counts.most_common()])

    print_table("per module", [{"module": name, **figures} for name, figures in per_module.items()])
    if survivors:
        print("\nnot killed (and not listed in bench/mutation_equivalent.txt); `mutmut show NAME` in")
        print(".mutation/<module>/ prints one:")
        for name in survivors:
            print(f"  {name}")
    totals = {key: sum(f[key] for f in per_module.values())
              for key in ("mutants", "killed", "survived", "timeout", "no_tests", "equivalent")}
    judged = totals["mutants"] - totals["equivalent"]  # every mutant but the equivalent ones
    print_result({
        **totals,
        "score": round(totals["killed"] / judged, 3) if judged else None,
        "per_module": per_module,
        "scope": "full" if len(chosen) == len(MODULES) else "+".join(m.name for m in chosen),
        "seconds": round(time.monotonic() - started),
    })


if __name__ == "__main__":
    main()
