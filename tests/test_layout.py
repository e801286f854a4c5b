"""The package layout: imports point down between top-level packages, never in a cycle.

    core  <-  model | service  <-  benchmarks  <-  cli | container

The rule is import-linter's contract in pyproject.toml, run here as `make lint` runs it;
the graph (lazy imports included) comes from grimp. README's picture of the layout must
be the one generated from the tree as it is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import import_graph  # noqa: E402  (a script, not a package)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph.module_graph()


def test_the_import_contracts_hold() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout


def test_the_layer_rule_catches_an_upward_import() -> None:
    """The contract's layers, on a graph with one import pointing up and one sideways."""
    fake = grimp.ImportGraph()
    for module in ("core", "core.errors", "model", "model.x", "service", "service.y"):
        fake.add_module(module)
    fake.add_import(importer="core.errors", imported="model.x")
    fake.add_import(importer="model.x", imported="service.y")
    illegal = fake.find_illegal_dependencies_for_layers(layers=({"model", "service"}, "core"))
    assert {(d.importer, d.imported) for d in illegal} == {("core", "model"), ("model", "service")}


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Direct imports a -> b where b also leads back to a."""
    found = []
    for importer, imported in sorted((a, b) for a, targets in graph.items() for b in targets):
        seen, frontier = {imported}, [imported]
        while frontier:
            for nxt in graph.get(frontier.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        if importer in seen:
            found.append((importer, imported))
    return found


def test_no_module_imports_itself_round_a_cycle(graph: dict[str, set[str]]) -> None:
    assert {"core.manifest", "service.engine", "service.v2.router", "cli.main"} <= set(graph)
    assert cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
    ]


def test_readme_shows_the_generated_picture(graph: dict[str, set[str]]) -> None:
    readme = (ROOT / "README.md").read_text()
    expected = import_graph.readme_with_picture(readme, import_graph.mermaid(graph))
    assert readme == expected, "run `python scripts/import_graph.py --write` to refresh README"
