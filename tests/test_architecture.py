"""The architecture holds (docs/ARCHITECTURE.md): each layer imports only the layers below it, no module
imports itself back through others, imports sit at the top of modules, no module is over the house limit
and each word is stated once."""

from __future__ import annotations

import ast
import re
from functools import lru_cache

import pytest

from tests.helpers import REPO

# package -> layer; a module may import its own package and packages of a lower layer only
LAYERS = {"graph": 0, "etl": 1, "app": 1, "posguard": 2}
# the optional heavy dependency that may be imported inside a function (with a one-line reason)
LAZY = ("pyspark",)


@lru_cache(maxsize=None)
def _modules(root=REPO, packages=tuple(LAYERS)) -> dict[str, ast.Module]:
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return out


def _imports(tree: ast.Module):
    """(imported module, line, inside a function) of every absolute import of a first-party package."""
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            yield name, node.lineno, id(node) in inside


def _first_party(name: str, modules: dict) -> str | None:
    """The module ``name`` refers to (``pkg.mod.attr`` -> ``pkg.mod``), or None when not first-party."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def layer_violations(modules: dict) -> list[str]:
    """``module:line imports target`` for every import of a higher layer or of a sibling package."""
    out = []
    for name, tree in modules.items():
        package = name.split(".")[0]
        for target, line, _ in _imports(tree):
            top = target.split(".")[0]
            if top in LAYERS and top != package and LAYERS[top] >= LAYERS[package]:
                out.append(f"{name}:{line} imports {target}")
    return sorted(set(out))


def import_cycles(modules: dict) -> list[list[str]]:
    """The strongly connected components (more than one module) of the module-level import graph."""
    edges = {name: set() for name in modules}
    for name, tree in modules.items():
        for target, _, lazy in _imports(tree):
            module = _first_party(target, modules)
            if module and module != name and not lazy and not name.startswith(module + "."):
                edges[name].add(module)
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def lazy_imports(root=REPO) -> list[str]:
    """Imports inside functions (anywhere in the code and the tests), except of ``LAZY`` packages."""
    out = []
    for path in sorted(p for d in (*LAYERS, "tests") for p in (root / d).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for f in ast.walk(tree):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for n in ast.walk(f):
                    if isinstance(n, (ast.Import, ast.ImportFrom)):
                        name = n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
                        if not (name or "").startswith(LAZY):
                            out.append(f"{path.relative_to(root)}:{n.lineno}")
    return sorted(set(out))


def test_each_layer_imports_only_the_layers_below_it():
    assert layer_violations(_modules()) == []


def test_no_import_cycle_between_modules():
    assert import_cycles(_modules()) == []


def test_imports_sit_at_the_top_of_modules_except_pyspark_with_a_reason():
    assert lazy_imports() == []
    for path in sorted(p for d in LAYERS for p in (REPO / d).rglob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.match(r"\s+(from|import) pyspark", line):
                assert "#" in line, f"{path.relative_to(REPO)}: a lazy pyspark import without its reason: {line}"


MAX_LINES = 400  # STYLE.md: one small module per concern, well under ~400 lines


def long_modules(root=REPO) -> list[str]:
    """The modules of the packages over ``MAX_LINES`` lines, with their length."""
    paths = sorted(p for d in LAYERS for p in (root / d).rglob("*.py"))
    return [f"{path.relative_to(root)}: {n} lines" for path in paths
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES]


def test_no_module_is_over_the_house_limit_a_family_grows_parts_instead():
    assert long_modules() == []


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The checks above fail on a tree that breaks each rule (so that passing means something)."""
    for package, text in {"graph": "from etl import b\n", "etl": "from graph import a\nimport app.c\n",
                          "app": "def f():\n    import json\n", "posguard": ""}.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "graph" / "a.py").write_text("from etl import b\n")
    (tmp_path / "etl" / "b.py").write_text("from graph import a\nimport app.c\n")
    (tmp_path / "app" / "c.py").write_text("def f():\n    import json\n")
    modules = _modules(tmp_path)
    assert layer_violations(modules) == ["etl.b:2 imports app.c", "graph.a:1 imports etl", "graph.a:1 imports etl.b"]
    assert import_cycles(modules) == [["etl.b", "graph.a"]]
    assert lazy_imports(tmp_path) == ["app/c.py:2"]
    (tmp_path / "posguard" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert long_modules(tmp_path) == [f"posguard/big.py: {MAX_LINES + 1} lines"]


# words that must be stated in exactly one module: a literal tuple or list holding these strings in this order
_ONE_PLACE = {
    "entry modes": ("chip", "contactless", "magstripe"),
    "transaction types": ("purchase", "refund", "void"),
    "fraud types": ("counterfeit", "lost_stolen"),
    "terminal events": ("heartbeat", "boot", "firmware_update"),
    "severities": ("critical", "high", "medium"),
    "statuses": ("open", "in_progress"),
    "card decisions": ("reissue", "watch", "dismiss"),
    "terminal finding kinds": ("trace_gap", "unapproved_firmware", "relocation", "mcc_mismatch"),
    "the staged transaction columns": ("txn_id", "ts", "card_token"),
}
# path names that only the catalog may spell
_ONE_PATH = ("staging", "runs")


def _literal_sequences(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List)):
            yield tuple(e.value if isinstance(e, ast.Constant) else None for e in node.elts)


def _states(tree: ast.Module, words: tuple) -> bool:
    n = len(words)
    return any(seq[i:i + n] == words for seq in _literal_sequences(tree) for i in range(len(seq) - n + 1))


@pytest.mark.parametrize("what", sorted(_ONE_PLACE))
def test_each_word_is_stated_in_one_module(what):
    found = sorted(name for name, tree in _modules().items() if _states(tree, _ONE_PLACE[what]))
    assert len(found) == 1 and found[0] in {"graph.vocabulary", "graph.catalog"}, f"{what} stated in {found}"


@pytest.mark.parametrize("name", _ONE_PATH)
def test_the_home_layout_is_spelled_by_the_catalog_only(name):
    def joined(tree):  # the name used as a path part: ``x / "runs"`` or ``Path(x, "runs")``
        for n in ast.walk(tree):
            if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div):
                yield n.right
            elif isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", "")) in ("Path", "joinpath"):
                yield from n.args
    found = sorted(module for module, tree in _modules().items()
                   if any(isinstance(n, ast.Constant) and n.value == name for n in joined(tree)))
    assert found == ["graph.catalog"]
