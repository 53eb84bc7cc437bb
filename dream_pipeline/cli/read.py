"""`dream book`, `dream standings`, `dream status`: read what the loop wrote."""


from __future__ import annotations

import argparse

from dream_pipeline.cli.common import open_fabric


def cmd_book(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.report import render_chapters, render_outline

    chapters = open_fabric().chapters(args.book)
    if not chapters:
        print(f"the book {args.book!r} has no chapter yet: run `dream run`")
        return 0
    if args.last:  # only the chapters asked for, not the outline of the whole book before them
        shown = chapters[-args.last:]
        print(f"The last {len(shown)} of {len(chapters)} chapters (`dream book` prints the outline and all of them):\n")
        print(render_chapters(shown))
        return 0
    print(render_outline(chapters))
    print(render_chapters(chapters))
    return 0


def cmd_standings(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.report import render_standings

    print(render_standings(open_fabric().standings(args.book)))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from dream_pipeline.cli.errors import require_databases
    from dream_pipeline.cli.status import render_status

    require_databases(dagster=True)  # before Dagster's storage retries an unreachable server for 15 s
    print(render_status(open_fabric(), limit=args.epochs))
    return 0
