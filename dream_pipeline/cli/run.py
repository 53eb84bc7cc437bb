"""`dream run`: epochs in this process (no daemon), then the outline, the new chapters and the standings.

Without `--book`/`--domain` it runs the enabled experiments of `experiments.yaml` in turn, as the loop does
(each for its `epochs_per_cycle` epochs, continuing from the latest committed epoch among them); `--epochs`
counts epochs in total, across the experiments."""


from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import UTC, datetime

from dream_pipeline.cli.common import engine_line, log_file, open_fabric, redact, run_failure, run_preflight


def cmd_run(args: argparse.Namespace) -> int:
    probed = run_preflight()  # before importing the definitions, which read settings too
    from dream_pipeline.cli.instance import dagster_instance
    from dream_pipeline.cli.report import render_chapters, render_outline, render_standings
    from dream_pipeline.config.experiments import enabled_experiments
    from dream_pipeline.config.settings import llm_from_env
    from dream_pipeline.definitions import defs
    from dream_pipeline.defs.epoch.partitions import epoch_key
    from dream_pipeline.defs.loop.sensors import next_book
    from dream_pipeline.domains import load_domain

    fabric = open_fabric()
    print(f"state fabric : {redact(fabric.url())}")
    llm = llm_from_env(fabric=fabric, resolve=True)
    print(f"engine       : {llm.resolved_base_url()} (model {llm.model})")
    engine_line(fabric, llm, probed)
    instance = dagster_instance()
    print(f"dagster home : {os.environ['DAGSTER_HOME']}")
    job = defs.resolve_job_def("epoch_job")
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO" if args.verbose else "ERROR"}}}}
    log = None if args.verbose else log_file("dream-run.log")
    if log is not None:
        run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
        print(f"dagster log  : {log.name} (--verbose shows it here)")

    from dream_pipeline.defs.loop.downtime import note_resumption

    note_resumption(fabric, datetime.now(UTC), "dream run")  # the time since the last commit is not dead time
    names = _experiment_names(args)
    per_cycle = {e.name: e.epochs_per_cycle for e in enabled_experiments()}
    base = fabric.latest_committed_key(names)
    written: dict[str, list[int]] = {name: [] for name in names}
    for _ in range(args.epochs):
        name = next_book(names, base, per_cycle)
        number = fabric.next_epoch_number(name)
        key = epoch_key(name, number)
        instance.add_dynamic_partitions("epochs", [key])
        for attempt in range(1, args.attempts + 1):
            started = time.perf_counter()
            print(f"epoch {number:>4} … " if len(names) == 1 else f"{name} epoch {number:>4} … ", end="", flush=True)
            with contextlib.redirect_stderr(log) if log is not None else contextlib.nullcontext():
                result = job.execute_in_process(
                    instance=instance, partition_key=key, run_config=run_config, raise_on_error=False
                )
            elapsed = time.perf_counter() - started
            if result.success:
                break
            print(f"failed after {elapsed:.1f} s (attempt {attempt}/{args.attempts}): {run_failure(result)}")
        else:
            print(f"giving up on {key}; the next `dream run` resumes it", file=sys.stderr)
            return 1
        epoch = fabric.epoch(key)
        chapter = fabric.chapter_for_epoch(epoch.epoch_id)
        what = "chapter" if load_domain(name).canon_memory else "task"
        print(f"{elapsed:5.1f} s  {what} {chapter.chapter_number} by the {chapter.author}: {chapter.title!r}"
              f"{_lineage_note(fabric, epoch)}")
        written[name].append(chapter.chapter_number)
        base = key

    for name in names:
        domain, chapters = load_domain(name), fabric.chapters(name)
        new = [c for c in chapters if c.chapter_number in written[name]]
        print()
        if domain.canon_memory:  # a book
            print(render_outline(chapters))
            if not args.no_text:
                print(render_chapters(new))
        else:  # a canon of another kind (CodeRepair's solved tasks): its entries as the domain renders them
            print(render_outline(chapters, f"{domain.manifest.get('title', name)} ({name})", "task"))
            if not args.no_text:
                print("\n\n".join(domain.canon_markdown(c.chapter_number, c.title, c.author, c.text) for c in new))
        print(render_standings(fabric.standings(name)))
    return 0


def _experiment_names(args: argparse.Namespace) -> tuple[str, ...]:
    """The instances this run takes in turn: `--book`, else the enabled experiments (`--domain` keeps those
    of that domain or that name)."""
    from dream_pipeline.config.experiments import enabled_experiments

    if args.book:
        return (args.book,)
    experiments = enabled_experiments()
    if args.domain:
        chosen = tuple(e.name for e in experiments if args.domain in (e.domain, e.name))
        if not chosen:
            known = ", ".join(f"{e.name} ({e.domain})" for e in experiments)
            raise SystemExit(f"dream run: no enabled experiment of domain {args.domain!r} (enabled: {known})")
        return chosen
    return tuple(e.name for e in experiments)


def _lineage_note(fabric, epoch) -> str:
    if epoch.loser_agent_id is None:
        return ""
    [loser] = fabric.agents([epoch.loser_agent_id])
    joined = [
        s.name for s in fabric.standings(epoch.book)
        if s.joined_epoch == epoch.epoch_number + 1 and s.origin != "cast"
    ]
    return f"; {loser.name} eliminated" + (f", {joined[0]} joins" if joined else "")
