#!/usr/bin/env python3
"""The workspace's module import graph, and its cycles.

Each `.rs` file is a module node, named `crate::path`. An edge is a path the
file names (`use crate::a::b`, `super::x`, `other_crate::m::f(..)`) that
resolves to another module of the workspace. Edges between a module and its
own ancestors or descendants are left out: a parent declares its children and
children use their parent's items, which Rust requires and which is no cycle
between layers. Test modules (`#[cfg(test)]` blocks and fuzz files) are left
out too: a test may reach anywhere.

Usage: import_graph.py [--dot FILE] — prints the cycles (strongly connected
components of more than one module) and exits 1 if there is one.
"""

import argparse
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def crates():
    """(crate name as used in paths, src dir) for each workspace member."""
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    for member in workspace["workspace"]["members"]:
        manifest = tomllib.loads((ROOT / member / "Cargo.toml").read_text())
        lib = manifest.get("lib", {})
        name = lib.get("name", manifest["package"]["name"]).replace("-", "_")
        src = ROOT / member / ("src" if (ROOT / member / "src").is_dir() else "")
        yield name, ROOT / member, src


def module_of(crate, src, path):
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple([crate] + parts)


TEST_BLOCK = re.compile(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", re.M)
PATH = re.compile(r"\b((?:crate|super|self|[a-z_][a-z0-9_]*)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)::\{([^;]*)\};", re.S)


def strip_tests(text):
    """The text without `#[cfg(test)] mod x { ... }` blocks (brace-matched)."""
    out, pos = [], 0
    for m in TEST_BLOCK.finditer(text):
        if m.start() < pos:
            continue
        out.append(text[pos:m.start()])
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        pos = i
    out.append(text[pos:])
    return "".join(out)


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def referenced_paths(text):
    """Every `a::b::c` path in the text, with `use a::{b, c::d}` groups expanded."""
    for m in USE_GROUP.finditer(text):
        prefix = m.group(1)
        for item in re.split(r"[,{}\s]+", m.group(2)):
            if item and item not in ("self", "*"):
                yield f"{prefix}::{item}"
        yield prefix
    for m in PATH.finditer(text):
        yield m.group(1)


REEXPORT = re.compile(r"^pub use ([a-z_]+)::\{?([a-z_, ]+)\}?;", re.M)


def reexports(crate_roots):
    """`(crate, module)` -> the module path it re-exports (`pub use other::{m}`)."""
    aliases = {}
    for crate, root in crate_roots:
        for m in REEXPORT.finditer(root.read_text()):
            for name in m.group(2).split(","):
                name = name.strip()
                if name:
                    aliases[(crate, name)] = (m.group(1), name)
    return aliases


def resolve(path, here, modules, crate_names, aliases):
    parts = path.split("::")
    if len(parts) > 1 and (parts[0], parts[1]) in aliases:
        parts = list(aliases[(parts[0], parts[1])]) + parts[2:]
    if parts[0] == "crate":
        base = [here[0]] + parts[1:]
    elif parts[0] == "super":
        base = list(here)
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
        base += parts
    elif parts[0] == "self":
        base = list(here) + parts[1:]
    elif parts[0] in crate_names:
        base = parts
    else:
        # a child module named without `self::`
        base = list(here) + parts
    for n in range(len(base), 0, -1):
        if tuple(base[:n]) in modules:
            return tuple(base[:n])
    return None


def graph():
    files = {}
    roots = []
    for crate, _, src in crates():
        for root in ("lib.rs", "main.rs"):
            if (src / root).exists():
                roots.append((crate, src / root))
        for path in sorted(src.rglob("*.rs")):
            if "fuzz" in path.stem or "/benches/" in str(path):
                continue
            files[module_of(crate, src, path)] = path
    crate_names = {m[0] for m in files}
    aliases = reexports(roots)
    edges = {m: set() for m in files}
    for module, path in files.items():
        text = strip_comments(strip_tests(path.read_text()))
        for ref in referenced_paths(text):
            target = resolve(ref, module, files, crate_names, aliases)
            if target is None or target == module:
                continue
            if target[: len(module)] == module or module[: len(target)] == target:
                continue
            edges[module].add(target)
    return edges


def cycles(edges):
    """Tarjan's strongly connected components of more than one node."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def name(module):
    return "::".join(module)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dot", help="write the graph in Graphviz form")
    args = parser.parse_args()
    edges = graph()
    if args.dot:
        lines = ["digraph imports {"]
        for v, ws in sorted(edges.items()):
            lines += [f'  "{name(v)}" -> "{name(w)}";' for w in sorted(ws)]
        pathlib.Path(args.dot).write_text("\n".join(lines + ["}"]) + "\n")
    # The same graph with each module folded into its crate's top-level
    # module: `config -> adapters::dynamodb` and `adapters -> config` are a
    # loop between two layers though neither file names the other's file.
    layers = {}
    for v, ws in edges.items():
        layers.setdefault(v[:2], set()).update(w[:2] for w in ws if w[:2] != v[:2])
    found = cycles(edges) + [c for c in cycles(layers) if c not in cycles(edges)]
    count = sum(len(ws) for ws in edges.values())
    print(f"import graph: {len(edges)} modules, {count} edges, {len(layers)} top-level modules, {len(found)} cycles")
    for component in found:
        members = set(component)
        print("  cycle: " + ", ".join(name(m) for m in component))
        graph_of = edges if all(v in edges for v in component) and len(component[0]) > 2 else layers
        for v in component:
            for w in sorted(graph_of.get(v, set()) & members):
                print(f"    {name(v)} -> {name(w)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
