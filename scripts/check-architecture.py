#!/usr/bin/env python3
"""Holds the README's architecture sketch to the code (run by scripts/test.sh).

- Every file and folder the sketch names exists.
- The dependency list between src/ modules ("**Dependencies run one way**") is exactly
  the `crate::<module>` references the code has: nothing listed that the code lacks,
  nothing in the code that is not listed.
- Neither the modules nor the submodules of src/login/ import each other in a circle.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
problems = []


def sketch_paths():
    """The paths of the sketch's entries: `src/login/` then `  mod.rs` → src/login/mod.rs."""
    block = README.split("## Architecture", 1)[1].split("```", 2)[1]
    stack = []  # (indent, folder)
    for line in block.splitlines():
        match = re.match(r"^( *)([\w.\-/]+/?|[\w.\-]+\.\w+)(\s{2,}|$)", line)
        if not match or len(match.group(1)) > 8:
            continue
        indent, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (stack[-1][1] if stack else "") + name
        if name.endswith("/"):
            stack.append((indent, path))
        yield path


def module_of(path):
    rel = os.path.relpath(path, os.path.join(ROOT, "src"))
    return rel.split(os.sep)[0].removesuffix(".rs")


def rust_files(folder):
    for root, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".rs"):
                yield os.path.join(root, name)


def code_dependencies():
    deps = {}
    for path in rust_files(os.path.join(ROOT, "src")):
        module = module_of(path)
        if module in ("lib", "main"):
            continue
        for used in re.findall(r"\bcrate::(\w+)", open(path, encoding="utf-8").read()):
            if used != module:
                deps.setdefault(module, set()).add(used)
    return deps


def readme_dependencies():
    paragraph = README.split("**Dependencies run one way**", 1)[1].split("\n\n", 1)[0]
    deps = {}
    for source, targets in re.findall(r"`(\w+) → ([\w, ]+)`", paragraph):
        deps[source] = {target.strip() for target in targets.split(",") if target.strip()}
    return deps


def cycle(graph):
    """One circle in `graph`, as a list of nodes, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
            if nxt not in state:
                found = visit(nxt, trail + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def login_submodule_graph():
    """Edges between the children of src/login (by file or folder), re-exports resolved."""
    folder = os.path.join(ROOT, "src", "login")
    mod_rs = open(os.path.join(folder, "mod.rs"), encoding="utf-8").read()
    owner = {}
    for module, names in re.findall(r"pub use (\w+)::\{?([\w, ]+)\}?;", mod_rs):
        for name in names.split(","):
            owner[name.strip()] = module
    children = {name.removesuffix(".rs") for name in os.listdir(folder) if name != "mod.rs"}
    graph = {}
    for path in rust_files(folder):
        rel = os.path.relpath(path, folder)
        if rel == "mod.rs":
            continue
        child = rel.split(os.sep)[0].removesuffix(".rs")
        text = open(path, encoding="utf-8").read()
        text = text.split("#[cfg(test)]\nmod tests", 1)[0]
        used = set(re.findall(r"crate::login::(\w+)", text))
        if rel.count(os.sep) == 0 or rel == os.path.join(child, "mod.rs"):  # `super::` is src/login
            for group in re.findall(r"\bsuper::\{([^}]*)\}", text):
                used.update(re.findall(r"(\w+)", group))
            used.update(re.findall(r"\bsuper::(\w+)", text))
        for name in used:
            target = name if name in children else owner.get(name)
            if target and target != child:
                graph.setdefault(child, set()).add(target)
    return graph


for path in sketch_paths():
    if not os.path.exists(os.path.join(ROOT, path)):
        problems.append(f"the README's architecture sketch names {path}, which does not exist")

code, listed = code_dependencies(), readme_dependencies()
for module in sorted(set(code) | set(listed)):
    for missing in sorted(code.get(module, set()) - listed.get(module, set())):
        problems.append(f"src/{module} uses crate::{missing}, which the README's dependency list does not say")
    for extra in sorted(listed.get(module, set()) - code.get(module, set())):
        problems.append(f"the README says {module} → {extra}, but src/{module} does not use crate::{extra}")

for name, graph in [("src/ modules", code), ("src/login/ submodules", login_submodule_graph())]:
    circle = cycle(graph)
    if circle:
        problems.append(f"{name} import each other in a circle: {' → '.join(circle)}")

for problem in problems:
    print(f"architecture: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"architecture: the README's sketch and dependency list match the code ({sum(map(len, code.values()))} module dependencies)")
