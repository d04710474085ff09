#!/usr/bin/env python3
"""Check batond's layering from its object files.

Usage: python3 tests/layers.py OBJDIR [README]

OBJDIR holds the supervisor's objects (build/obj/supervisor).  A file uses
another when one of its undefined symbols is defined there (nm).  README
(supervisor/README.md) gives every supervisor/*.c file a floor in a table
row "| N | `file.c` | ... |", or marks it as part of batonctl with
"| batonctl | `file.c` | ... |" (batonctl.c always is).  The check fails when:

- a supervisor/*.c file has no floor, or the table names a missing file;
- a file uses a file on a higher floor (calls go down, or sideways);
- the use graph has a cycle other than pool.c <-> dispatch.c, the engine's
  pair that may call each other;
- a file of batonctl (a separate program) uses a file of batond, or the
  other way round;
- a supervisor/*.c file has more than MAX_LINES lines.

Prints one line per problem and a closing "N passed, N failed" line.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MAX_LINES = 800
PAIR = {"pool.c", "dispatch.c"}


def floors_from(readme):
    """({file: floor} of batond's files, {files of batonctl})."""
    floors, ctl = {}, {"batonctl.c"}
    with open(readme) as f:
        for line in f:
            m = re.match(r"^\|\s*(\d+|batonctl)\s*\|\s*`([\w.]+\.c)`\s*\|", line)
            if m and m.group(1) == "batonctl":
                ctl.add(m.group(2))
            elif m:
                floors[m.group(2)] = int(m.group(1))
    return floors, ctl


def symbols(obj):
    """(defined globals, undefined) of one object file."""
    out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            undefined.add(name)
        elif kind in "TDBRCGSV" and kind.isupper():
            defined.add(name)
    return defined, undefined


def uses(objdir, sources):
    defs, undefs = {}, {}
    for src in sources:
        obj = os.path.join(objdir, src[:-2] + ".o")
        if not os.path.exists(obj):
            sys.exit(f"layers: {obj} missing: build first (make)")
        d, u = symbols(obj)
        undefs[src] = u
        for name in d:
            defs[name] = src
    graph = {src: {} for src in sources}
    for src in sources:
        for name in undefs[src]:
            other = defs.get(name)
            if other and other != src:
                graph[src].setdefault(other, set()).add(name)
    return graph


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    objdir = sys.argv[1]
    readme = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "supervisor", "README.md")
    srcdir = os.path.join(ROOT, "supervisor")
    sources = sorted(f for f in os.listdir(srcdir) if f.endswith(".c"))
    floors, ctl = floors_from(readme)
    problems = []
    checks = 0

    for src in sources:
        checks += 1
        if src not in ctl and src not in floors:
            problems.append(f"{src}: no floor in {readme}")
    for name in [*floors, *sorted(ctl)]:
        checks += 1
        if name not in sources:
            problems.append(f"{readme}: names {name}, which does not exist")
    for src in sources:
        checks += 1
        with open(os.path.join(srcdir, src)) as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            problems.append(f"{src}: {n} lines (at most {MAX_LINES})")

    graph = uses(objdir, sources)
    for src in sources:
        for other, names in sorted(graph[src].items()):
            checks += 1
            what = ", ".join(sorted(names)[:4]) + (" ..." if len(names) > 4 else "")
            if (src in ctl) != (other in ctl):
                problems.append(f"{src} uses {other} ({what}): batonctl is a separate program")
            elif src in ctl or {src, other} == PAIR:
                continue
            elif src in floors and other in floors and floors[other] > floors[src]:
                problems.append(f"{src} (floor {floors[src]}) calls up to {other} "
                                f"(floor {floors[other]}): {what}")
    for comp in cycles(graph):
        checks += 1
        if comp != PAIR:
            problems.append("cycle: " + " <-> ".join(sorted(comp)))

    for p in problems:
        print("layers: " + p)
    print(f"layers: {checks - len(problems)} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
