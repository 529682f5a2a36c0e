#!/usr/bin/env python3
"""Finds import cycles between the top-level modules of each crate.

A module is a crate's `src/<name>.rs` or `src/<name>/` folder. Module A depends on module B
when a file of A names `crate::B` (in a `use` or a path). A cycle (A needs B, B needs A, or
longer) means neither can be read, tested or moved without the other: the script prints every
group of modules that depend on each other in a circle and exits with 1 if there is one.

    scripts/module-cycles.py            # every crate of the workspace
    scripts/module-cycles.py api        # one crate
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES = ["events", "commands", "projections", "ops", "api", "cli", "tests", "bench"]
REFERENCE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
GROUPED = re.compile(r"\buse\s+crate::\{([^}]*)\}", re.S)


def module_of(src: pathlib.Path, file: pathlib.Path) -> str | None:
    parts = file.relative_to(src).parts
    if len(parts) == 1:
        name = parts[0][:-3]
        return None if name in ("lib", "main") else name
    return parts[0]


def code_of(text: str) -> str:
    """The code that builds into the crate: no comments (they may name modules without
    depending on them) and no `#[cfg(test)]` items (tests may use any module)."""
    kept, skipping, depth, opened = [], False, 0, False
    for line in text.splitlines():
        line = line.split("//", 1)[0]
        if not skipping and line.strip().startswith("#[cfg(test)]"):
            skipping, depth, opened = True, 0, False
            continue
        if skipping:
            depth += line.count("{") - line.count("}")
            opened = opened or "{" in line
            if (opened and depth <= 0) or (not opened and line.rstrip().endswith(";")):
                skipping = False
            continue
        kept.append(line)
    return "\n".join(kept)


def graph(crate: str) -> dict[str, set[str]]:
    src = ROOT / crate / "src"
    edges: dict[str, set[str]] = {}
    for file in sorted(src.rglob("*.rs")):
        module = module_of(src, file)
        if module is None:
            continue
        code = code_of(file.read_text())
        targets = set(REFERENCE.findall(code))
        for group in GROUPED.findall(code):
            targets.update(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
        edges.setdefault(module, set()).update(t for t in targets if t != module)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    status = 0
    for crate in sys.argv[1:] or CRATES:
        edges = graph(crate)
        for component in cycles(edges):
            status = 1
            inside = {m: sorted(edges[m] & set(component)) for m in component}
            detail = "; ".join(f"{m} -> {', '.join(t)}" for m, t in inside.items())
            print(f"{crate}: {' <-> '.join(component)}  ({detail})")
    if status == 0:
        print("no import cycles between modules")
    return status


if __name__ == "__main__":
    sys.exit(main())
