"""The layers hold: pure modules import nothing that does I/O, nothing imports upward, the CLI has no cycle.

Two kinds of check. What a pure module pulls in is checked by importing it in a fresh interpreter and
reading `sys.modules` (so an indirect import through a helper counts too). Which project module imports
which is read from the source with `ast` (every import statement, those inside functions included), so a
lazy import that breaks a layer is caught without running it. Each checker is also run on a small tree that
breaks its rule, so a checker that stopped finding anything would fail here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("dream_pipeline", "resources", "spica", "deck", "offline_engine", "bench")
IO_PACKAGES = ("dagster", "psycopg", "psycopg_pool", "pgserver", "openai", "httpx", "streamlit", "resources")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(root: Path, packages: Iterable[str] = PROJECT) -> dict[str, Path]:
    return {module_name(path, root): path
            for package in packages for path in sorted((root / package).rglob("*.py"))}


def imports_of(path: Path, modules: Iterable[str]) -> set[str]:
    """The project modules `path` imports anywhere in it (`from a import b` counts `a.b` when b is a module,
    else `a`)."""
    known = set(modules)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [m for m in submodules if m in known] or [node.module]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def import_graph(root: Path, packages: Iterable[str] = PROJECT) -> dict[str, set[str]]:
    modules = project_modules(root, packages)
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# (importer's layer, what it must not import, what it may import of that all the same)
RULES = [
    ("dream_pipeline.tournament", ("dream_pipeline", "resources", "spica", "deck"),
     ("dream_pipeline.tournament", "dream_pipeline.records")),
    ("dream_pipeline.records", ("dream_pipeline", "resources", "spica", "deck"), ()),
    ("dream_pipeline.fingerprint", ("dream_pipeline", "resources", "spica", "deck"), ()),
    ("spica", ("dream_pipeline", "resources", "deck", "offline_engine"), ()),
    ("dream_pipeline.epoch", ("dream_pipeline.defs", "dream_pipeline.cli", "deck"), ()),
    ("dream_pipeline.domains", ("dream_pipeline.defs", "dream_pipeline.cli", "dream_pipeline.epoch", "deck"), ()),
    ("dream_pipeline.config", ("dream_pipeline.defs", "dream_pipeline.cli", "dream_pipeline.epoch", "deck"), ()),
    ("dream_pipeline.defs", ("dream_pipeline.cli", "deck"), ()),
    # the adapters sit below the pipeline's use cases; of it they may read only its pure bottom layer
    ("resources", ("dream_pipeline", "deck"),
     ("dream_pipeline.records", "dream_pipeline.fingerprint", "dream_pipeline.tournament")),
]


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    broken = set()
    for importer, imported in graph.items():
        for layer, forbidden, allowed in RULES:
            if under(importer, layer):
                broken |= {(importer, target) for target in imported
                           if under(target, *forbidden) and not under(target, *allowed)}
    return broken


def cycles(graph: dict[str, set[str]], within: str) -> list[list[str]]:
    """Every import cycle among the modules under `within` (one per strongly connected component)."""
    nodes = sorted(n for n in graph if under(n, within))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if not under(target, within):
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def test_nothing_imports_upward():
    assert upward_imports(import_graph(ROOT)) == set()


def test_the_cli_modules_import_each_other_without_a_cycle():
    graph = import_graph(ROOT)
    assert len([n for n in graph if under(n, "dream_pipeline.cli")]) >= 8
    assert cycles(graph, "dream_pipeline.cli") == []


def test_the_epoch_and_dagster_layers_have_no_cycle():
    graph = import_graph(ROOT)
    assert cycles(graph, "dream_pipeline.epoch") == []
    assert cycles(graph, "dream_pipeline.defs") == []
    assert cycles(graph, "dream_pipeline.domains") == []


def pure_modules() -> list[str]:
    names = [n for n in project_modules(ROOT, ["dream_pipeline/tournament", "spica"])
             if n != "spica.pytest_plugin"]  # a pytest plugin: it imports pytest, which is no I/O either
    return [*names, "dream_pipeline.records", "dream_pipeline.fingerprint"]


def io_loaded_by(modules: list[str]) -> dict[str, list[str]]:
    """Per module, the I/O packages loaded by importing it alone in a fresh interpreter."""
    probe = (
        "import importlib, json, sys\n"
        f"io = {IO_PACKAGES!r}\n"
        "out = {}\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    out[name] = sorted({m.split('.')[0] for m in sys.modules} & set(io))\n"
        "print(json.dumps(out))\n"
    )
    result = {}
    for name in modules:  # one interpreter per module: one that is clean must not hide behind another
        run = subprocess.run([sys.executable, "-c", probe.replace(repr(modules), repr([name]))], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        result.update(json.loads(run.stdout))
    return result


def test_pure_modules_load_nothing_that_does_io():
    modules = pure_modules()
    assert "dream_pipeline.tournament.anonymize" in modules and "spica.registry" in modules
    assert {name: loaded for name, loaded in io_loaded_by(modules).items() if loaded} == {}


# ---- the checkers find what they look for ---------------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_the_checkers_find_an_upward_import_and_a_cycle(tmp_path):
    root = _tree(tmp_path, {
        "dream_pipeline/__init__.py": "",
        "dream_pipeline/tournament/__init__.py": "",
        "dream_pipeline/tournament/rules.py": "def f():\n    from dream_pipeline.epoch import burst\n",
        "dream_pipeline/epoch/__init__.py": "",
        "dream_pipeline/epoch/burst.py": "from dream_pipeline.defs.epoch import assets\n",
        "dream_pipeline/defs/__init__.py": "",
        "dream_pipeline/defs/epoch/__init__.py": "",
        "dream_pipeline/defs/epoch/assets.py": "import dream_pipeline.tournament.rules\n",
        "dream_pipeline/cli/__init__.py": "",
        "dream_pipeline/cli/a.py": "from dream_pipeline.cli import b\n",
        "dream_pipeline/cli/b.py": "def g():\n    from dream_pipeline.cli.a import main\n",
        "resources/__init__.py": "",
        "resources/fabric.py": "from dream_pipeline.epoch import burst\nfrom dream_pipeline.records import Row\n",
        "dream_pipeline/records.py": "",
    })
    graph = import_graph(root, ["dream_pipeline", "resources"])
    assert upward_imports(graph) == {
        ("dream_pipeline.tournament.rules", "dream_pipeline.epoch.burst"),
        ("dream_pipeline.epoch.burst", "dream_pipeline.defs.epoch.assets"),
        ("resources.fabric", "dream_pipeline.epoch.burst"),
    }
    assert cycles(graph, "dream_pipeline.cli") == [["dream_pipeline.cli.a", "dream_pipeline.cli.b"]]


def test_the_io_probe_sees_an_indirect_import(tmp_path, monkeypatch):
    _tree(tmp_path, {"leaky_rules/__init__.py": "", "leaky_rules/helper.py": "import dagster\n",
                     "leaky_rules/rules.py": "from leaky_rules import helper\n",
                     "clean_rules.py": "import math\n"})
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert io_loaded_by(["leaky_rules.rules", "clean_rules"]) == {"leaky_rules.rules": ["dagster"], "clean_rules": []}


@pytest.mark.parametrize("module", ["dream_pipeline.cli", "dream_pipeline.defs.phase", "dream_pipeline.epoch.reaper"])
def test_a_newcomer_finds_the_concerns_by_name(module):
    assert module in project_modules(ROOT)


# ---- the fabric split (issue 14F): records below everything, the fabric below the pipeline ----------------

# what does I/O, or drags in what does: none of it may load with a pure module
IO_MODULES = ("dagster", "psycopg", "pgvector", "openai", "httpx", "streamlit", "resources")


def loaded_by(module: str) -> set[str]:
    """Every module a fresh interpreter has loaded after importing `module`."""
    out = subprocess.run(
        [sys.executable, "-c", f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    return set(json.loads(out))


def io_loaded(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in IO_MODULES)


def test_records_import_nothing_that_does_io():
    loaded = loaded_by("dream_pipeline.records")
    assert io_loaded(loaded) == []
    # and nothing else of the pipeline: records sit below every other layer
    assert sorted(m for m in loaded if m.startswith("dream_pipeline")) == ["dream_pipeline", "dream_pipeline.records"]


def test_the_io_probe_sees_an_io_import():
    """The probe is not blind: the fabric itself (psycopg, dagster) is caught by the same check."""
    assert {"dagster", "psycopg", "resources.fabric"} <= set(io_loaded(loaded_by("resources.fabric")))


def test_the_pure_modules_take_their_row_types_from_records():
    """The pure text and statistics modules read rows without loading the fabric (issue 14)."""
    for module in ("dream_pipeline.domains.book.prompts", "dream_pipeline.epoch.rating_window", "dream_pipeline.epoch.vote_matrix",
                   "dream_pipeline.cli.report"):
        assert io_loaded(loaded_by(module)) == [], module


def test_the_fabric_imports_no_pipeline_module_but_the_records():
    """resources/ sits below the pipeline: of dream_pipeline the fabric loads the records and the canon's
    fingerprint (pure: the Reaper stores it in its commit transaction), nothing else."""
    pipeline = {m for m in loaded_by("resources.fabric") if m.startswith("dream_pipeline")}
    assert pipeline == {"dream_pipeline", "dream_pipeline.records", "dream_pipeline.fingerprint"}


def direct_imports(path: Path) -> set[str]:
    """Top-level package names `path` imports anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_the_use_cases_and_the_domains_do_not_use_dagster():
    """epoch/ and domains/ are what an epoch does; Dagster wiring (ops, metadata, failures) is in defs/."""
    modules = project_modules(ROOT, ["dream_pipeline/epoch", "dream_pipeline/domains"])
    assert "dream_pipeline.epoch.reaper" in modules
    assert {name for name, path in modules.items() if "dagster" in direct_imports(path)} == set()
