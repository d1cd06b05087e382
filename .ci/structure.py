#!/usr/bin/env python3
"""House rules on the code's shape, checked by .ci/run:

- no function longer than 100 lines (body included), outside constant
  tables (a function that builds one says so on the line above it:
  `// structure: a table ...`), in the crates' sources;
- no `too_many_arguments` allowance;
- no import cycle between the modules of a crate (`use crate::a` in
  module b is an edge b -> a; a module's children count as the module).

Prints what breaks a rule and exits 1, or prints a summary and exits 0.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["triage-core", "tower-triage", "triage-cli"]
MAX_LINES = 100

FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def sources(crate):
    src = os.path.join(ROOT, "crates", crate, "src")
    for dirpath, _, files in os.walk(src):
        for name in sorted(files):
            if name.endswith(".rs"):
                yield os.path.join(dirpath, name), src


def strip(line):
    """The line without string/char literals and comments (roughly)."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//", 1)[0]


def long_functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    found = []
    in_tests = False
    i = 0
    while i < len(lines):
        if re.match(r"^\s*mod tests\b|^\s*mod \w*tests?\s*\{", lines[i]):
            in_tests = True
        m = FN.match(lines[i])
        table = i > 0 and "structure: a table" in lines[i - 1]
        if m and not in_tests and not table:
            depth = 0
            opened = False
            j = i
            while j < len(lines):
                text = strip(lines[j])
                if not opened and ";" in text and "{" not in text:
                    break  # a declaration without a body
                depth += text.count("{") - text.count("}")
                if "{" in text:
                    opened = True
                if opened and depth <= 0:
                    break
                j += 1
            length = j - i + 1
            if opened and length > MAX_LINES:
                found.append((m.group(6), i + 1, length))
            i = j + 1 if opened else i + 1
            continue
        i += 1
    return found


def module_of(path, src):
    rel = os.path.relpath(path, src)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts[0] if parts else ""


def edges(crate):
    graph = {}
    for path, src in sources(crate):
        if os.path.basename(path) == "tests.rs":
            continue  # a test module (`#[cfg(test)] mod tests;`)
        me = module_of(path, src)
        text = open(path, encoding="utf-8").read()
        # Leave out test modules.
        text = re.split(r"#\[cfg\(test\)\]\s*\n\s*mod ", text)[0]
        for m in re.finditer(r"\buse crate::\{?\s*([a-z_0-9]+)", text):
            target = m.group(1)
            if target != me and me:
                graph.setdefault(me, set()).add(target)
        for m in re.finditer(r"\bcrate::([a-z_0-9]+)::", text):
            target = m.group(1)
            if target != me and me:
                graph.setdefault(me, set()).add(target)
    return graph


def cycles(graph):
    found = []
    state = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node)
    return found


def main():
    problems = []
    functions = 0
    for crate in CRATES:
        for path, _ in sources(crate):
            rel = os.path.relpath(path, ROOT)
            text = open(path, encoding="utf-8").read()
            functions += sum(1 for line in text.split("\n") if FN.match(line))
            for name, line, length in long_functions(path):
                problems.append(f"{rel}:{line}: fn {name} is {length} lines (at most {MAX_LINES})")
            for n, line in enumerate(text.split("\n"), 1):
                if "too_many_arguments" in line:
                    problems.append(f"{rel}:{n}: a too_many_arguments allowance")
        for cycle in cycles(edges(crate)):
            problems.append(f"{crate}: import cycle {' -> '.join(cycle)}")
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"structure: {functions} functions, none over {MAX_LINES} lines; no import cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
