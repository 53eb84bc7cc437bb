"""`dream reroll`, `dream worlds`, `dream promote`: alternate worlds from the command line (docs/worlds.md)."""

from __future__ import annotations

import argparse
import sys

from dream_pipeline.domains.book import DEFAULT_BOOK


def _epoch_key(fabric, book: str, epoch: str | None) -> str:
    """An epoch given as its key (`space_time-00003`) or number (`3`); none means the latest committed one."""
    from dream_pipeline.defs.epoch.partitions import epoch_key

    if epoch is None:
        latest = fabric.latest_committed_epoch(book)
        if latest is None:
            raise LookupError(f"book {book!r} has no committed epoch yet: `dream run` writes one")
        return latest.epoch_key
    return epoch_key(book, int(epoch)) if epoch.isdigit() else epoch


def _job_run(job_name: str, key: str, run_config: dict | None = None):
    """The job for one epoch, in this process; its failure is printed by the caller, in one line."""
    from dream_pipeline.cli.instance import dagster_instance
    from dream_pipeline.definitions import defs

    instance = dagster_instance()
    instance.add_dynamic_partitions("epochs", [key])
    config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}, **(run_config or {})}
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, partition_key=key, run_config=config, raise_on_error=False
    )


def cmd_reroll(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.common import open_fabric, run_failure, run_preflight

    if args.times < 1:
        print("dream: --times must be at least 1", file=sys.stderr)
        return 2
    run_preflight()
    fabric = open_fabric()
    key = _epoch_key(fabric, args.book, args.epoch)
    for _ in range(args.times):
        result = _job_run("reroll_job", key)
        if not result.success:
            print(f"dream: re-roll of {key} failed: {run_failure(result)}", file=sys.stderr)
            return 1
        world = max(fabric.worlds(key), key=lambda w: w.world_number)  # the one just rolled
        chapter = world.document["chapter"]
        print(f"{world.world_key}: {chapter['title']!r} by the {chapter['author']};"
              f" eliminated: {world.document['eliminated'] or 'nobody'}")
    print(f"the canon of {key} is unchanged; `dream worlds {key}` compares them,"
          f" `dream promote {key} N` makes world N the canon (latest epoch only)")
    return 0


def cmd_worlds(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.common import open_fabric

    fabric = open_fabric()
    rolled = fabric.latest_rolled_epoch(args.book) if args.epoch is None else None
    key = rolled or _epoch_key(fabric, args.book, args.epoch)
    if args.epoch is None:  # say which epoch, since the loop may have moved on since the re-roll
        why = "the epoch re-rolled last" if rolled else "the latest committed epoch; none re-rolled yet"
        print(f"{key} ({why}; `dream worlds N` shows epoch N):\n")
    epoch = fabric.epoch(key)
    chapter = fabric.chapter_for_epoch(epoch.epoch_id)
    names = {a.instance_id: a.name for a in fabric.agents(epoch.active_agent_ids)}
    rows = [("canon", epoch.status, chapter.author if chapter else "", names.get(epoch.loser_agent_id, ""),
             chapter.title if chapter else "")]
    for w in fabric.worlds(key):
        c = w.document.get("chapter") or {}
        rows.append((str(w.world_number), w.status, c.get("author", ""), w.document.get("eliminated") or "",
                     c.get("title", w.reason or "")))
    widths = [max(len(r[i]) for r in [("world", "status", "author", "eliminated", "title"), *rows]) for i in range(4)]
    for row in [("world", "status", "author", "eliminated", "title"), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.common import open_fabric, run_failure, run_preflight

    run_preflight()
    fabric = open_fabric()
    key = _epoch_key(fabric, args.book, args.epoch)
    result = _job_run("promote_job", key, {"ops": {"promote_world": {"config": {"world": args.world}}}})
    if not result.success:
        print(f"dream: {run_failure(result)}", file=sys.stderr)
        return 1
    epoch = fabric.epoch(key)
    chapter = fabric.chapter_for_epoch(epoch.epoch_id)
    [loser] = fabric.agents([epoch.loser_agent_id]) if epoch.loser_agent_id else [None]
    print(f"world {args.world} is now the canon of {key}: chapter {chapter.chapter_number} {chapter.title!r}"
          f" by the {chapter.author}" + (f"; {loser.name} eliminated" if loser else ""))
    return 0


def add_world_commands(sub: argparse._SubParsersAction) -> None:
    reroll = sub.add_parser(
        "reroll", help="roll a committed epoch again as an alternate world (fresh engine calls; the canon stays)"
    )
    reroll.add_argument("epoch", nargs="?", help="epoch key or number (default: the latest committed)")
    reroll.add_argument("--book", default=DEFAULT_BOOK)
    reroll.add_argument("--times", type=int, default=1, help="how many worlds to roll (default: 1)")
    reroll.set_defaults(func=cmd_reroll)

    worlds = sub.add_parser("worlds", help="an epoch's canon and its alternate worlds, side by side")
    worlds.add_argument("epoch", nargs="?",
                        help="epoch key or number (default: the epoch re-rolled last, else the latest committed)")
    worlds.add_argument("--book", default=DEFAULT_BOOK)
    worlds.set_defaults(func=cmd_worlds)

    promote = sub.add_parser(
        "promote", help="make an alternate world of the latest epoch the canon (stop the loop first)"
    )
    promote.add_argument("epoch", help="epoch key or number (it must be the book's latest)")
    promote.add_argument("world", type=int, help="the world number `dream worlds` lists")
    promote.add_argument("--book", default=DEFAULT_BOOK)
    promote.set_defaults(func=cmd_promote)
