"""The calibration benchmark's composition on a few tasks, and the purity of the domain's rule modules."""

from __future__ import annotations

import math
import subprocess
import sys

from bench.calibration import OUTSIDE_THE_LOOP, mean_ci, run_epochs
from dream_pipeline.domains.code_repair.tasks import task_by_id
from resources.sandbox import SandboxRunner


def test_epochs_pick_the_best_tested_fix_and_calibrate_every_voter():
    tasks = tuple(task_by_id(t) for t in ("clamp", "median", "sort_by_age"))
    epochs, info = run_epochs(range(1), tasks, SandboxRunner())
    assert len(epochs) == 3
    assert info["runs"] >= 3
    assert set(info["statuses"]) == {"ok"}
    for epoch in epochs:
        authors = set(epoch.rates)
        assert authors == {"Debugger", "Tester", "Architect", "Hacker", "Intern"}
        assert epoch.rates[epoch.winner] == max(epoch.rates.values())
        assert set(epoch.calibration) == authors
        assert all(1 <= epoch.peer[a] <= 10 for a in authors)
    # the reference fix appears in every epoch (the Debugger's planted skill is 0.9) and passes everything
    assert any(max(e.rates.values()) == 1.0 for e in epochs)
    assert "outside the Dagster loop" in OUTSIDE_THE_LOOP


def test_mean_ci():
    mean, half = mean_ci([1.0, 2.0, 3.0, math.nan])
    assert mean == 2.0
    assert half == 1.96 * 1.0 / math.sqrt(3)
    assert math.isnan(mean_ci([math.nan])[0])


def test_the_rule_modules_import_nothing_that_does_io():
    probe = ("import sys, dream_pipeline.domains.code_repair.rules, dream_pipeline.domains.code_repair.tasks, "
             "dream_pipeline.domains.code_repair.prompts; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'dagster', 'psycopg', 'openai', 'resources', 'pandas', 'streamlit', 'subprocess', 'socket'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
