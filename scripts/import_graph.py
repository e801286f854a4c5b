"""The picture of the project's layout, drawn from its real imports.

    python scripts/import_graph.py            # print the Mermaid picture
    python scripts/import_graph.py --write    # refresh it in README.md

grimp (import-linter's graph library) reads every import, lazy ones inside functions
included, those under `if TYPE_CHECKING:` excluded. The rule the picture shows lives in
pyproject.toml ([tool.importlinter]); tests/test_layout.py checks both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "model", "service", "benchmarks", "cli", "container")  # lowest first
README = ROOT / "README.md"
BEGIN, END = "<!-- import-graph:begin -->", "<!-- import-graph:end -->"


def module_graph() -> dict[str, set[str]]:
    """Each module of the project and the project modules it imports."""
    if str(ROOT) not in sys.path:  # container/ is repo tooling, not installed with the rest
        sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def component(module: str) -> str:
    """The box a module is drawn in: its package, or its subpackage for the larger ones."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def mermaid(graph: dict[str, set[str]]) -> str:
    """A Mermaid flowchart: one box per (sub)package, an arrow for 'imports'."""
    lines = ["```mermaid", "flowchart TD"]
    for package in reversed(PACKAGES):
        members = sorted({component(m) for m in graph if m.split(".")[0] == package})
        lines.append(f"  subgraph {package}_package [{package}/]")
        lines.extend(f'    {m.replace(".", "_")}["{m}"]' for m in members)
        lines.append("  end")
    edges = {(component(a), component(b)) for a, targets in graph.items() for b in targets} - {
        (c, c) for c in map(component, graph)
    }
    lines += [f"  {a.replace('.', '_')} --> {b.replace('.', '_')}" for a, b in sorted(edges)]
    lines.append("```")
    return "\n".join(lines)


def readme_with_picture(text: str, picture: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{picture}\n{END}{tail}"


def main(argv: list[str]) -> int:
    picture = mermaid(module_graph())
    if "--write" not in argv:
        print(picture)
        return 0
    text = README.read_text()
    if BEGIN not in text or END not in text:
        print(f"README.md has no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    README.write_text(readme_with_picture(text, picture))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
