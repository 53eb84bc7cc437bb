"""Where an epoch's time goes: a profile per epoch and per step of the loop under the real daemon.

Read after the loop has stopped, from three records: the fabric (each epoch's barrier release and
commit; every engine call with its start and latency), Dagster's event log (each step's start and
end, the events written) and the fabric stats every process wrote at exit (`BENCH_FABRIC_STATS_DIR`:
each connect and round trip with its time and the process's CPU time then; the run's worker is known
by its `dream/worker` tag).

Per epoch: wall (barrier release to commit), the engine critical path (slowest draft + slowest
draft-embedding batch + slowest ballot + the summary), overhead (wall minus critical path), the
burst's wall over its slowest draft, step transitions (one step's end to the next one's start),
Dagster events, fabric connects and round trips, embeddings, the run process's CPU time. And the dead
time before each epoch in its parts: the previous commit to the barrier's release, then the opening step
(roster, drafts and votes) up to its first engine call (`dead_time_parts`). Per domain: the gaps between the
epoch's engine phases, release → drafts → embedding → ballots → summary → commit (`phase_gaps`), where
the overhead sits in the epoch's own time.

Run: python -m bench.epoch [--epochs N]   (the staged loop of bench.dead_time, with the profile)
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from resources import embedded_postgres

STEP_EVENTS = ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE")
OPENING_STEP = "roster_drafts_and_votes"  # the step that waits at the barrier and sends the drafts


def _engine_calls(fabric, epoch_key: str) -> list[dict]:
    with fabric.connection() as conn:
        return conn.execute(
            "SELECT purpose, started_at, latency_s FROM llm_calls WHERE epoch_key = %s AND started_at IS NOT NULL",
            (epoch_key,),
        ).fetchall()


def engine_busy_s(calls: list[dict], start: datetime, end: datetime) -> float:
    """Seconds of [start, end] during which at least one engine call was in flight."""
    spans = sorted((max(c["started_at"], start), min(c["started_at"] + timedelta(seconds=c["latency_s"]), end))
                   for c in calls)
    busy, reach = 0.0, start
    for lo, hi in spans:
        lo = max(lo, reach)
        if hi > lo:
            busy += (hi - lo).total_seconds()
            reach = hi
    return busy


def engine_figures(calls: list[dict]) -> dict[str, float]:
    """The critical path through the epoch's engine calls, the burst's span and the embeddings' time."""
    by: dict[str, list[dict]] = defaultdict(list)
    for c in calls:
        by[c["purpose"]].append(c)

    def slowest(purpose: str) -> float:
        return max((c["latency_s"] for c in by[purpose]), default=0.0)

    drafts = by["draft"]
    burst = 0.0
    if drafts:
        first = min(c["started_at"] for c in drafts)
        last = max(c["started_at"] + timedelta(seconds=c["latency_s"]) for c in drafts)
        burst = (last - first).total_seconds()
    return {
        "critical_path_s": slowest("draft") + slowest("draft_embedding") + slowest("ballot")
        + sum(c["latency_s"] for c in by["summary"]),
        "slowest_draft_s": slowest("draft"),
        "burst_s": burst,
        "embedding_s": sum(c["latency_s"] for p in by if p.endswith("embedding") for c in by[p]),
        "engine_calls": len(calls),
    }


ENGINE_PHASES = ("draft", "draft_embedding", "ballot", "summary")  # in the order an epoch calls the engine
GAP_ORDER = [("release", "draft"), ("draft", "draft_embedding"), ("draft_embedding", "ballot"),
             ("ballot", "summary"), ("summary", "commit"), ("ballot", "commit")]  # the table's columns


def phase_gaps(calls: list[dict], released: datetime, committed: datetime) -> dict[str, float]:
    """Where the epoch waits on no engine phase: the time from the release to its first draft request,
    between one phase's last answer and the next phase's first request, and from the last answer to the
    commit. A phase is every call of one purpose (the drafts, their embedding batch, the ballots, the
    summary); a domain without a summary (CodeRepair) goes from its ballots to the commit. A gap is
    negative when the next phase starts before the last one ends (the summary of a ranked epoch does not
    wait for the window's statistics, but it does wait for the last ballot)."""
    spans = {}
    for purpose in ENGINE_PHASES:
        mine = [c for c in calls if c["purpose"] == purpose]
        if mine:
            spans[purpose] = (min(c["started_at"] for c in mine),
                              max(c["started_at"] + timedelta(seconds=c["latency_s"]) for c in mine))
    points = [("release", released, released), *((p, *spans[p]) for p in ENGINE_PHASES if p in spans),
              ("commit", committed, committed)]
    return {f"{a}→{b}_s": (b_start - a_end).total_seconds()
            for (a, _, a_end), (b, b_start, _) in zip(points, points[1:], strict=False)}


def dagster_url(fabric_url: str) -> str:
    """The Dagster storage database beside the fabric's on the same server."""
    params = conninfo_to_dict(fabric_url)
    params["dbname"] = embedded_postgres.DAGSTER_DATABASE
    return make_conninfo(**params)


def dagster_steps(storage_url: str, run_ids: list[str]) -> tuple[dict[str, list[dict]], dict[str, int], dict[str, int]]:
    """Per run: its steps in order with start and end (UTC), the events it wrote, its worker's pid."""
    with psycopg.connect(storage_url, row_factory=dict_row) as conn:
        events = conn.execute(
            "SELECT run_id, dagster_event_type AS kind, step_key, timestamp FROM event_logs"
            " WHERE run_id = ANY(%s) ORDER BY id", (run_ids,)
        ).fetchall()
        tags = conn.execute(
            "SELECT run_id, value FROM run_tags WHERE run_id = ANY(%s) AND key = 'dream/worker'", (run_ids,)
        ).fetchall()
    steps: dict[str, dict[str, dict]] = defaultdict(dict)
    counts: dict[str, int] = defaultdict(int)
    for e in events:
        counts[e["run_id"]] += 1
        if e["kind"] in STEP_EVENTS and e["step_key"]:
            at = e["timestamp"].replace(tzinfo=UTC)
            step = steps[e["run_id"]].setdefault(e["step_key"], {"step": e["step_key"], "start": at, "end": at,
                                                                  "events": 0})
            if e["kind"] == "STEP_START":
                step["start"] = at
            else:
                step["end"] = at
        if e["step_key"] and e["step_key"] in steps[e["run_id"]]:
            steps[e["run_id"]][e["step_key"]]["events"] += 1
    pids = {t["run_id"]: int(t["value"].split(":")[1]) for t in tags}
    ordered = {run: sorted(s.values(), key=lambda x: x["start"]) for run, s in steps.items()}
    return ordered, dict(counts), pids


def read_stats(folder: Path) -> dict[int, dict]:
    """The fabric stats each process wrote at exit, by pid."""
    stats = {}
    for path in folder.glob("fabric-*.json"):
        record = json.loads(path.read_text())
        stats[record["pid"]] = record
    return stats


def _in(trace: list, start: datetime, end: datetime) -> dict[str, float]:
    lo, hi = start.timestamp(), end.timestamp()
    inside = [t for t in trace if lo <= t[0] <= hi]
    before = [t for t in trace if t[0] < lo]
    cpu = (inside[-1][3] - (before[-1][3] if before else inside[0][3])) if inside else 0.0
    return {
        "connects": sum(1 for t in inside if t[2] == "connect"),
        "connect_s": sum(t[1] for t in inside if t[2] == "connect"),
        "queries": sum(1 for t in inside if t[2] == "query"),
        "query_s": sum(t[1] for t in inside if t[2] == "query"),
        "cpu_s": cpu,
    }


def dead_time_parts(previous_end: datetime, row: dict, run_steps: list[dict], trace: list) -> dict | None:
    """Epoch `row`'s dead time (the previous commit to its first engine call) in its parts: to its barrier
    release (the NOTIFY, the LISTEN wake-up, the claim), then the opening step (roster, drafts and votes, one
    step) up to its first engine call (the claim, the agents, the context, the session); with the fabric
    round trips and the run's CPU between the release and the first call."""
    steps = {s["step"]: s for s in run_steps}
    first_call = row.get("first_call_at")
    if OPENING_STEP not in steps or not first_call or not row["released_at"]:
        return None
    fabric = _in(trace, row["released_at"], first_call)
    return {
        "epoch": row["epoch_key"],
        "dead_s": (first_call - previous_end).total_seconds(),
        "to_release_s": (row["released_at"] - previous_end).total_seconds(),
        "release_to_first_call_s": (first_call - row["released_at"]).total_seconds(),
        "round_trips": fabric["queries"],
        "round_trip_s": fabric["query_s"],
        "cpu_s": fabric["cpu_s"],
    }


def dead_time_profile(fabric, committed: list[dict], stats_dir: Path) -> list[dict]:
    """`dead_time_parts` of each committed epoch after the first, and a last row of their medians."""
    run_ids = [r["run_id"] for r in committed[1:] if r["run_id"]]
    steps, _, pids = dagster_steps(dagster_url(fabric.url()), run_ids)
    stats = read_stats(stats_dir)
    rows = []
    for previous, row in zip(committed, committed[1:], strict=False):
        trace = stats.get(pids.get(row["run_id"], -1), {}).get("trace", [])
        parts = dead_time_parts(previous["end_time"], row, steps.get(row["run_id"], []), trace)
        if parts is not None:
            rows.append(parts)
    if rows:
        rows.append({"epoch": "median", **{k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "epoch"}})
    return rows


def profile(fabric, committed: list[dict], stats_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Rows per epoch, per step (the median over epochs) and per domain (the median of each `phase_gaps`
    gap over its epochs) for the committed epochs after the first."""
    epochs = committed[1:]
    run_ids = [r["run_id"] for r in epochs if r["run_id"]]
    steps, event_counts, pids = dagster_steps(dagster_url(fabric.url()), run_ids)
    stats = read_stats(stats_dir)
    per_epoch, per_step = [], defaultdict(lambda: defaultdict(list))
    gaps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in epochs:
        run = row["run_id"]
        wall = (row["end_time"] - row["released_at"]).total_seconds()
        calls = _engine_calls(fabric, row["epoch_key"])
        engine = engine_figures(calls)
        for gap, seconds in phase_gaps(calls, row["released_at"], row["end_time"]).items():
            gaps[row["epoch_key"].rsplit("-", 1)[0]][gap].append(seconds)
        run_steps = steps.get(run, [])
        transitions = sum(max(0.0, (b["start"] - a["end"]).total_seconds())
                          for a, b in zip(run_steps, run_steps[1:], strict=False))
        trace = stats.get(pids.get(run, -1), {}).get("trace", [])
        fab = _in(trace, row["released_at"], row["end_time"])
        per_epoch.append({
            "epoch": row["epoch_key"],
            "wall_s": wall,
            "critical_path_s": engine["critical_path_s"],
            "overhead_s": wall - engine["critical_path_s"],
            "burst_over_slowest": engine["burst_s"] / engine["slowest_draft_s"] if engine["slowest_draft_s"] else None,
            "embedding_s": engine["embedding_s"],
            "steps": len(run_steps),
            "transitions_s": transitions,
            "dagster_events": event_counts.get(run, 0),
            "connects": fab["connects"],
            "connect_s": fab["connect_s"],
            "round_trips": fab["queries"],
            "round_trip_s": fab["query_s"],
            "cpu_s": fab["cpu_s"],
            "commit_to_end_s": (run_steps[-1]["end"] - row["end_time"]).total_seconds() if run_steps else None,
            "run_cpu_s": stats.get(pids.get(run, -1), {}).get("cpu_s"),
        })
        for i, step in enumerate(run_steps):
            # the roster's own time counts from the barrier's release (its wait is not the epoch's)
            start = max(step["start"], row["released_at"]) if i == 0 else step["start"]
            figures = _in(trace, start, step["end"])
            bucket = per_step[step["step"]]
            wall_s = (step["end"] - start).total_seconds()
            busy = engine_busy_s(calls, start, step["end"])
            bucket["wall_s"].append(wall_s)
            bucket["engine_s"].append(busy)
            bucket["not_engine_s"].append(wall_s - busy)
            bucket["transition_before_s"].append(
                max(0.0, (step["start"] - run_steps[i - 1]["end"]).total_seconds()) if i else 0.0)
            bucket["events"].append(step["events"])
            for k in ("connects", "queries", "query_s", "cpu_s"):
                bucket[k].append(figures[k])
    step_rows = []
    for name, bucket in per_step.items():
        step_rows.append({"step (median over epochs)": name,
                          **{k: statistics.median(v) for k, v in bucket.items()}})
    columns = [f"{a}→{b}_s" for a, b in GAP_ORDER]
    gap_rows = [{"domain (median over epochs)": domain, "epochs": len(g[columns[0]]),
                 **{k: statistics.median(g[k]) if g.get(k) else None for k in columns}}
                for domain, g in sorted(gaps.items())]
    return per_epoch, step_rows, gap_rows


def summary(per_epoch: list[dict]) -> dict[str, float]:
    bursts = [r["burst_over_slowest"] for r in per_epoch if r["burst_over_slowest"]]
    return {
        "epoch_overhead_s": statistics.median(r["overhead_s"] for r in per_epoch),
        "burst_over_slowest_draft": statistics.median(bursts) if bursts else float("nan"),
    }


def main() -> None:
    from bench.dead_time import main as dead_time_main

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    dead_time_main(["--only", "staged", "--epochs", str(args.epochs)])


if __name__ == "__main__":
    main()
