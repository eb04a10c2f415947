#!/usr/bin/env python3
"""Finds circles in the imports between the files of a Rust crate's `src/`.

A file imports another when its code (comments, strings and `#[cfg(test)]` items left
out) names a path into it: `crate::a::b`, `super::x`, or a child module it declares
(`mod checks;` then `checks::run`). Paths are resolved to the deepest file that exists
(`crate::smoke::checks::run` is src/smoke/checks.rs; `crate::smoke::Verdict` is
src/smoke.rs). Files named tests.rs are left out.

Usage: import-cycles.py SRC_DIR...   prints each circle (a strongly connected set of
files) and exits 1 when there is one; prints the number of files and imports otherwise.
"""
import os
import re
import sys


def strip_code(text):
    """The text without comments, string and char literals, and #[cfg(test)] items."""
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    out = []
    for line in text.split('\n'):
        line = re.sub(r'r#*"(?:[^"\\]|\\.)*"#*', '""', line)
        line = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line)
        line = re.sub(r"'(?:[^'\\]|\\.)'", "''", line)
        out.append(line.split('//', 1)[0])
    lines = out
    kept, i = [], 0
    while i < len(lines):
        if re.match(r'\s*#\[cfg\(test\)\]', lines[i]):
            j, depth, started = i + 1, 0, False
            while j < len(lines):
                depth += lines[j].count('{') - lines[j].count('}')
                started = started or '{' in lines[j]
                if (started and depth <= 0) or (not started and lines[j].rstrip().endswith(';')):
                    break
                j += 1
            i = j + 1
            continue
        kept.append(lines[i])
        i += 1
    return '\n'.join(kept)


def module_of(root, path):
    """['a', 'b'] for src/a/b.rs or src/a/b/mod.rs; [] for lib.rs/main.rs."""
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] == 'mod':
        rel = rel[:-1]
    if rel in (['lib'], ['main']):
        return []
    return rel


def file_of(root, module):
    """The file that holds `module` (a list of names), or None."""
    if not module:
        return None
    base = os.path.join(root, *module)
    for candidate in (base + '.rs', os.path.join(base, 'mod.rs')):
        if os.path.isfile(candidate):
            return candidate
    return None


def deepest(root, module):
    """The deepest existing file along `module`'s path."""
    for n in range(len(module), 0, -1):
        found = file_of(root, module[:n])
        if found:
            return found
    return None


def imports(root, path):
    code = strip_code(open(path, encoding='utf-8').read())
    here = module_of(root, path)
    children = set(re.findall(r'^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_0-9]+)\s*;', code, re.M))
    found = set()
    # Expand `use crate::a::{b, c::d}` one level so each branch resolves on its own.
    for m in re.finditer(r'\b(crate|super|self)((?:::[A-Za-z_0-9]+)+)(?:::\{([^}]*)\})?', code):
        head, tail, group = m.group(1), m.group(2), m.group(3)
        names = [n for n in tail.split('::') if n]
        if head == 'crate':
            base = names
        elif head == 'super':
            base = here[:-1] + names
        else:
            base = here + names
        branches = [base]
        if group:
            branches = [base + [p for p in g.strip().split('::') if p and p != 'self']
                        for g in group.split(',') if g.strip()]
        for branch in branches:
            target = deepest(root, branch)
            if target and os.path.abspath(target) != os.path.abspath(path):
                found.add(target)
    for child in children:
        if re.search(r'(?<![:\w])' + re.escape(child) + r'::', code):
            target = file_of(root, here + [child])
            if target:
                found.add(target)
    return found


def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    circles, files, edges = [], 0, 0
    for root in sys.argv[1:]:
        graph = {}
        for d, _, names in os.walk(root):
            for name in names:
                if name.endswith('.rs') and name != 'tests.rs':
                    path = os.path.join(d, name)
                    graph[path] = imports(root, path)
        files += len(graph)
        edges += sum(len(v) for v in graph.values())
        for comp in sccs(graph):
            if len(comp) > 1:
                circles.append(sorted(os.path.relpath(p, root)[:-3] for p in comp))
    for circle in circles:
        print(f'import circle of {len(circle)} files: {", ".join(circle)}')
    if circles:
        sys.exit(1)
    print(f'no import circles: {files} files, {edges} imports')


main()
