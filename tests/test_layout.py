"""The package's layout: no import cycle among mibun's modules, imports at the top.

The module graph is read from the source with ``ast`` (nothing is imported): an edge
``a -> b`` for every import of mibun module ``b`` in module ``a``, at the top level and
inside functions alike (a function-level import is still a dependency; it only hides a
cycle until the function runs). Importing ``mibun.functions.conv`` also runs the package
``mibun.functions``; that implicit step is not an edge (a package's ``__init__`` importing
its own submodules is what a package is), but an explicit import of the package is.

An import inside a function must say why in a comment on its line or the line above: an
optional dependency (mpi4py is imported only by a data-parallel run) or its import cost.
A cycle is no reason any more.
"""
from __future__ import annotations

import ast
import itertools
import pathlib
import re

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "mibun"
REASON = re.compile(r"#.*\b(optional|import cost|costly to import|slow to import)", re.IGNORECASE)


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The mibun module an imported dotted name stands for (its longest module prefix)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(module: str):
    """``(target module, line number, in a function)`` for each mibun import of ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # never runs: no dependency at import or call time
            inner = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "mibun" or alias.name.startswith("mibun."):
                        found.append((_resolve(alias.name), child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from the package, up level - 1 packages
                    up = package.split(".")[:len(package.split(".")) - (child.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                if base == "mibun" or base.startswith("mibun."):
                    for alias in child.names:
                        sub = f"{base}.{alias.name}"
                        found.append((sub if sub in MODULES else _resolve(base),
                                      child.lineno, in_function))
            visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), False)
    return [(t, line, f) for t, line, f in found if t != module]


def _graph():
    return {m: sorted({t for t, _, _ in _imports(m)}) for m in MODULES}


def _find_cycle(graph):
    """One cycle as a list of modules ``[a, b, ..., a]``, or None (iterative DFS)."""
    state = {}  # module -> 1 on the current path, 2 done
    for root in graph:
        if root in state:
            continue
        path, stack = [root], [iter(graph[root])]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return None


def _where(a, b):
    lines = [f"{MODULES[a].relative_to(SRC)}:{line}" + (" (in a function)" if f else "")
             for t, line, f in _imports(a) if t == b]
    return ", ".join(lines)


def test_the_graph_sees_known_modules():
    graph = _graph()
    assert len(MODULES) > 30
    assert "mibun.core" in graph["mibun.functions.arithmetic"]
    assert "mibun.functions._helpers" in graph["mibun.functions.conv"]
    assert "mibun.layers" in graph["mibun.models"]


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None


def test_no_import_cycle():
    cycle = _find_cycle(_graph())
    if cycle is not None:
        steps = "\n".join(f"  {a} -> {b}   ({_where(a, b)})"
                          for a, b in itertools.pairwise(cycle))
        raise AssertionError("import cycle among mibun's modules:\n" + steps)


def test_function_level_imports_say_why():
    missing = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for _, line, in_function in _imports(module):
            if in_function and not REASON.search(_comment_of(lines, line)):
                missing.append(f"{path.relative_to(SRC)}:{line}: {lines[line - 1].strip()}")
    assert not missing, ("an import of a mibun module inside a function needs a comment "
                         "saying why (an optional dependency, or its import cost), on its "
                         "line or in the comment lines right above it:\n  "
                         + "\n  ".join(missing))


def _comment_of(lines, line):
    """The import's line (1-based ``line``) and the comment lines right above it."""
    first = line - 1
    while first > 0 and lines[first - 1].lstrip().startswith("#"):
        first -= 1
    return "\n".join(lines[first:line])


def test_a_function_level_import_needs_its_reason():
    lines = ["def f():", "    # mpi4py is an optional dependency:", "    # loaded when asked",
             "    from mibun import distributed", "    from mibun import cli  # a cycle"]
    assert REASON.search(_comment_of(lines, 4))
    assert not REASON.search(_comment_of(lines, 5))


# --- the split modules keep their names (DeZero's code and saved objects still work) -----
def test_layers_keeps_every_public_name_and_dezeros():
    import mibun
    import mibun as dezero
    import mibun.layers as L

    names = ["GRU", "LSTM", "RNN", "BatchNorm", "Conv2d", "Deconv2d", "Dropout", "EmbedID",
             "Layer", "Linear"]
    assert sorted(L.__all__) == sorted(names)
    for name in names:
        assert getattr(dezero.layers, name) is getattr(mibun, name)
    assert L.Parameter is mibun.Parameter  # dezero.layers has Parameter too
    assert L.Linear.__module__ == "mibun.layers.linear"


def test_an_object_pickled_before_the_split_loads():
    import pickle

    import numpy as np

    import mibun.layers as L

    np.random.seed(0)
    cell = L.LSTM(3, in_size=2)
    raw = pickle.dumps(cell, protocol=2)  # protocol 2 names classes as "module\nname\n"
    old = raw.replace(b"mibun.layers.recurrent\nLSTM\n", b"mibun.layers\nLSTM\n")
    old = old.replace(b"mibun.layers.linear\nLinear\n", b"mibun.layers\nLinear\n")
    assert old != raw and b"mibun.layers.recurrent" not in old
    back = pickle.loads(old)
    assert type(back) is L.LSTM
    x = np.full((1, 2), 0.5, dtype=np.float32)
    cell.reset_state()
    back.reset_state()
    np.testing.assert_array_equal(back(x).data, cell(x).data)


def test_datasets_visualize_and_functions_keep_their_names():
    import mibun.functions as F
    from mibun import datafiles, datasets, visualize

    assert datasets.load_idx is datafiles.load_idx
    for name in ["Graph", "GraphvizNotFoundError", "draw_graph", "get_dot_graph", "graph",
                 "plot_dot_graph", "render_dot", "SMALL", "COMPACT_ABOVE",
                 "QUICK_LAYOUT_ABOVE", "DOT_TIMEOUT", "FONT_SIZE"]:
        assert hasattr(visualize, name), name
    for name in ["get_item", "embed_id", "GetItem", "GetItemGrad", "concat", "split",
                 "stack", "reshape", "astype"]:
        assert hasattr(F, name), name
    assert F.get_item.__module__ == "mibun.functions.indexing"


def test_the_error_classes_below_the_commands_are_shared():
    from mibun import cli, errors

    assert cli.UsageError is errors.UsageError
    assert issubclass(cli.ExpressionError, errors.UsageError)


def test_the_engine_has_its_gradient_rules():
    import mibun
    from mibun import autograd, core

    assert core.autograd is autograd  # installed when mibun is imported
    x = mibun.Variable(__import__("numpy").array(2.0))
    (x * x).backward()
    assert float(x.grad.data) == 4.0
