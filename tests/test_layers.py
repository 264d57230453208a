"""The code's shape: no import cycles inside engine/ and app/, short functions, no unreachable code, docstrings.

Both are read from the source with Python's `ast` (the modules' own imports, function-level
ones included), so a cycle or an overlong function fails here before a reader trips on it.
Run this file with `-s` to see the ten longest functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "app", "tools")
LONGEST_FUNCTION = 80  # lines, decorators excluded
LONGEST_TRAIN = 60  # the training loop's `train()` fits on one screen


def module_files() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that `path` imports anywhere in its body (`from pkg import mod` counts as mod)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found.update(c for c in candidates if c in modules)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_engine_and_app():
    modules = module_files()
    graph = {m: imports_of(p, modules) - {m} for m, p in modules.items()}
    assert cycles(graph) == []


def function_lengths() -> list[tuple[int, str]]:
    """(lines, module.function) of every function, longest first: its code from `def` to its end, the docstring
    left out (documenting a function never pushes it over the limit)."""
    rows = []
    for name, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = node.body[0] if ast.get_docstring(node) is not None else None
                words = doc.end_lineno - doc.lineno + 1 if doc is not None else 0
                rows.append((node.end_lineno - node.lineno + 1 - words, f"{name}.{node.name}"))
    return sorted(rows, reverse=True)


def test_functions_are_short():
    rows = function_lengths()
    print("\nthe ten longest functions (lines):")
    for n, where in rows[:10]:
        print(f"  {n:4d}  {where}")
    too_long = [(n, w) for n, w in rows if n >= LONGEST_FUNCTION]
    assert not too_long, f"functions of {LONGEST_FUNCTION} lines or more: {too_long}"
    train_len = next(n for n, w in rows if w == "engine.train.train")
    assert train_len < LONGEST_TRAIN


def unreachable(tree: ast.AST) -> list[int]:
    """Line numbers of statements that follow a return, raise, continue or break in the same block."""
    lines = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                lines += [block[i + 1].lineno for i, s in enumerate(block[:-1])
                          if isinstance(s, (ast.Return, ast.Raise, ast.Continue, ast.Break))]
    return lines


def test_no_code_sits_after_a_return():
    """A method indented under a module-level function's `return` is dead: SubReporter.should_stop sat so
    under another function, and a stop never reached the smaller model's fine-tune."""
    assert unreachable(ast.parse("def f():\n    return 1\n\n    def g():\n        pass\n")) == [4]
    assert unreachable(ast.parse("for x in y:\n    if x:\n        break\n    z()\n")) == []
    found = {name: lines for name, path in module_files().items() if (lines := unreachable(ast.parse(path.read_text())))}
    assert not found, f"unreachable statements (module: lines): {found}"


def defined_twice(tree: ast.Module) -> list[str]:
    """Names a module defines at its top level (functions, classes) more than once: the later one wins silently."""
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return sorted({n for n in names if names.count(n) > 1})


def test_no_module_defines_a_name_twice():
    """A second `title_lines` in app.charts replaced the per-layer charts' one for every caller."""
    assert defined_twice(ast.parse("def f():\n    pass\n\n\ndef f():\n    pass\n")) == ["f"]
    found = {name: twice for name, path in module_files().items() if (twice := defined_twice(ast.parse(path.read_text())))}
    assert not found, f"defined twice (module: names): {found}"


@pytest.mark.parametrize("package", ["engine"])
def test_the_engine_never_imports_streamlit(package):
    modules = module_files()
    for name, path in modules.items():
        if name.startswith(package):
            tree = ast.parse(path.read_text())
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not any(n.split(".")[0] == "streamlit" for n in names), name


def undocumented(tree: ast.Module) -> list[str]:
    """Public names without a docstring: top-level functions and classes, and the methods of public classes
    except those that override a method their class's bases document in the same module set (`documented`
    below passes those in). Names starting with "_" are private."""
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            if ast.get_docstring(node) is None:
                out.append(node.name)
            if isinstance(node, ast.ClassDef):
                out += [f"{node.name}.{m.name}" for m in node.body
                        if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and not m.name.startswith("_")
                        and ast.get_docstring(m) is None]
    return out


def documented_methods(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Class name -> its methods that have a docstring, over every module (a base's words cover an override)."""
    out: dict[str, set[str]] = {}
    for tree in trees.values():
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                out.setdefault(node.name, set()).update(
                    m.name for m in node.body if isinstance(m, ast.FunctionDef) and ast.get_docstring(m))
    return out


def test_public_functions_have_docstrings():
    """Every public function, class and method of the engine and the app says what it takes and gives (shapes,
    units, errors raised): 144 names had none. An override of a method its base class documents (a
    MethodHook's `on_epoch_end`, a Reporter's `progress`) may rely on the base's words."""
    assert undocumented(ast.parse("def f():\n    pass\n\n\nclass A:\n    def g(self):\n        pass\n")) == ["f", "A", "A.g"]
    trees = {name: ast.parse(path.read_text()) for name, path in module_files().items()
             if name.split(".")[0] in ("engine", "app")}
    docs, bases = documented_methods(trees), {}
    for tree in trees.values():
        bases.update({n.name: [ast.unparse(b).split(".")[-1] for b in n.bases] for n in tree.body
                      if isinstance(n, ast.ClassDef)})
    found = {}
    for name, tree in trees.items():
        left = [q for q in undocumented(tree)
                if "." not in q or not any(q.split(".")[1] in docs.get(b, ()) for b in bases.get(q.split(".")[0], []))]
        if left:
            found[name] = left
    assert not found, f"public names without a docstring (module: names): {found}"
