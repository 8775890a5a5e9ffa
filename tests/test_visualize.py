"""Graph drawing: the DOT text's structure, labels, freed and constant nodes, big graphs,
and files (.dot always; .svg parsed when Graphviz's `dot` is installed; the matplotlib
drawing with `dot` hidden)."""
import itertools
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import mibun
import mibun.functions as F
from mibun import Function, Variable, utils, visualize
from mibun.visualize import GraphvizNotFoundError, get_dot_graph, plot_dot_graph

HAS_DOT = shutil.which("dot") is not None


def parse_dot(text):
    """-> (nodes {id: attribute text}, edges [(a, b)]); checks the overall shape too."""
    lines = text.strip().splitlines()
    assert lines[0] == "digraph g {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        m = re.fullmatch(r"(\w+) -> (\w+)", line)
        if m:
            edges.append(m.groups())
            continue
        m = re.fullmatch(r"([vf]\d+) \[(.*)\]", line)
        if m:
            assert m.group(1) not in nodes, f"node {m.group(1)} declared twice"
            nodes[m.group(1)] = m.group(2)
            continue
        assert re.fullmatch(r"(graph|node) \[.*\]|rankdir=\w+", line), line
    for a, b in edges:
        assert a in nodes and b in nodes, (a, b)
        assert a[0] != b[0], "edges alternate between variables and functions"
    return nodes, edges


def label(attrs):
    m = re.search(r'label="((?:[^"\\]|\\.)*)"', attrs)
    return m.group(1)


def is_acyclic(nodes, edges):
    succ = {n: [] for n in nodes}
    indeg = {n: 0 for n in nodes}
    for a, b in edges:
        succ[a].append(b)
        indeg[b] += 1
    queue = [n for n in nodes if indeg[n] == 0]
    seen = 0
    while queue:
        n = queue.pop()
        seen += 1
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                queue.append(m)
    return seen == len(nodes)


def seed_graph():
    x = Variable(np.array(0.5), name="x")
    y = F.exp(x ** 2) ** 2
    y.name = "y"
    return x, y


# --- structure --------------------------------------------------------------------------
def test_seed_graph_structure():
    x, y = seed_graph()
    nodes, edges = parse_dot(get_dot_graph(y, verbose=False))
    funcs = sorted(label(a) for n, a in nodes.items() if n[0] == "f")
    assert funcs == ["Exp", "Pow", "Pow"]
    assert len([n for n in nodes if n[0] == "v"]) == 4  # x, x**2, exp(.), y
    assert len(edges) == 6
    by_label = {label(a): n for n, a in nodes.items() if n[0] == "v" and label(a)}
    # the output has no outgoing edge; the input x has no incoming one
    assert not any(a == by_label["y"] for a, _ in edges)
    assert not any(b == by_label["x"] for _, b in edges)
    assert is_acyclic(nodes, edges)
    # DeZero's colours and shapes
    assert all("shape=box" in a and "lightblue" in a for n, a in nodes.items() if n[0] == "f")
    assert all("orange" in a for n, a in nodes.items() if n[0] == "v")


def test_output_is_deterministic_and_stable():
    x, y = seed_graph()
    assert get_dot_graph(y) == get_dot_graph(y)
    x2, y2 = seed_graph()
    assert get_dot_graph(y) == get_dot_graph(y2)


def test_verbose_labels_show_name_shape_dtype_value_and_grad():
    x = Variable(np.array([1.0, 2.0], dtype=np.float32), name="x")
    W = Variable(np.ones((2, 3), dtype=np.float32), name="W")
    y = F.sum(F.matmul(F.reshape(x, (1, 2)), W))
    y.name = "y"
    before = get_dot_graph(y)
    assert "x: (2,) float32" in before  # DeZero's verbose label comes first
    assert "W: (2, 3) float32" in before
    assert "= [1., 2.]" in before  # a small array shows its value
    assert "grad" not in before
    y.backward()
    nodes, _ = parse_dot(get_dot_graph(y))
    labels = {label(a).split(":")[0]: label(a) for a in nodes.values()}
    assert "grad: [3., 3.]" in labels["x"]  # small: values
    assert re.search(r"grad: \|g\|=3\.873", labels["W"])  # 6 elements: the norm, sqrt(15)
    assert "grad: 1" in labels["y"]
    # values and grads can be switched off
    plain = get_dot_graph(y, values=False, grads=False)
    assert "grad" not in plain and "= [1., 2.]" not in plain


def test_non_verbose_is_names_only():
    x, y = seed_graph()
    nodes, _ = parse_dot(get_dot_graph(y, verbose=False))
    assert sorted(label(a) for n, a in nodes.items() if n[0] == "v") == ["", "", "x", "y"]


def test_freed_intermediates_are_drawn_dashed_from_recorded_shape():
    x = Variable(np.ones((2, 3)), name="x")
    y = F.sum(F.exp(x * 2.0))  # the Variables x * 2.0 and exp(...) are already freed
    nodes, edges = parse_dot(get_dot_graph(y))
    dashed = [a for a in nodes.values() if "dashed" in a]
    assert len(dashed) == 2 and all(label(a) == "(2, 3) float64" for a in dashed)
    e = F.exp(x * 2.0)  # keep exp(...) alive: drawn solid, with its shape
    nodes, edges = parse_dot(get_dot_graph(F.sum(e)))
    assert len([a for a in nodes.values() if "dashed" in a]) == 1
    assert len([n for n in nodes if n[0] == "f"]) == 3


def test_constant_array_input_is_grey():
    x = Variable(np.array([1.0, 2.0]), name="x")
    y = x * np.array([3.0, 4.0])  # the ndarray becomes a constant input of Mul
    nodes, edges = parse_dot(get_dot_graph(y))
    const = [n for n, a in nodes.items() if "lightgrey" in a]
    assert len(const) == 1 and "const" in label(nodes[const[0]])
    assert any(a == const[0] for a, _ in edges)


def test_shared_input_and_several_outputs():
    x = Variable(np.array(2.0), name="x")
    a = x * x  # the same variable twice
    b = F.sin(x)
    nodes, edges = parse_dot(get_dot_graph([a, b], verbose=False))
    xv = [n for n, at in nodes.items() if label(at) == "x"]
    assert len(xv) == 1
    assert sum(1 for s, _ in edges if s == xv[0]) == 3  # Mul twice, Sin once
    assert sum("penwidth=2" in at for at in nodes.values()) == 2  # both outputs marked


class TwoOut(Function):
    def forward(self, x):
        return x + 1, x - 1

    def backward(self, g0, g1):
        return g0 + g1


def test_multi_output_function_draws_used_outputs():
    x = Variable(np.array(1.0), name="x")
    y0, y1 = TwoOut()(x)
    z = y0 * 3.0
    del y0
    nodes, edges = parse_dot(get_dot_graph([z, y1]))
    f = [n for n, a in nodes.items() if label(a) == "TwoOut"]
    assert len(f) == 1
    assert sum(1 for a, _ in edges if a == f[0]) == 2
    del y1  # now output 1 is dead and nothing below uses it: not drawn
    nodes, edges = parse_dot(get_dot_graph(z))
    f = [n for n, a in nodes.items() if label(a) == "TwoOut"]
    assert sum(1 for a, _ in edges if a == f[0]) == 1


def test_function_label_shows_scalar_constant():
    x = Variable(np.array(2.0))
    text = get_dot_graph(x ** 3)
    assert 'label="Pow(3)"' in text
    assert 'label="Pow"' in get_dot_graph(x ** 3, verbose=False)


def test_names_are_escaped():
    x = Variable(np.array(1.0), name='a "quoted" \\ name')
    nodes, _ = parse_dot(get_dot_graph(F.sin(x), verbose=False))
    assert any(label(a) == r'a \"quoted\" \\ name' for a in nodes.values())


def test_leaf_alone_and_type_error():
    x = Variable(np.array(1.0), name="x")
    nodes, edges = parse_dot(get_dot_graph(x, verbose=False))
    assert list(nodes) == ["v0"] and edges == []
    with pytest.raises(TypeError, match="get_dot_graph: output must be a Variable"):
        get_dot_graph(np.ones(3))


def test_higher_order_graph_of_tanh_is_compact_and_well_formed():
    # DeZero step 35: the graph of the n-th derivative of tanh
    x = Variable(np.array(1.0), name="x")
    y = F.tanh(x)
    y.backward(create_graph=True)
    for _ in range(4):
        gx = x.grad
        x.cleargrad()
        gx.backward(create_graph=True)
    gx = x.grad
    gx.name = "gx5"
    text = get_dot_graph(gx, verbose=False)
    nodes, edges = parse_dot(text)
    n_funcs = sum(1 for n in nodes if n[0] == "f")
    assert n_funcs > visualize.COMPACT_ABOVE
    assert is_acyclic(nodes, edges)
    assert "shape=point" in text  # unnamed intermediates are dots
    labels = [label(a) for a in nodes.values()]
    assert "x" in labels and "gx5" in labels  # named ones keep their labels
    # every function reaches the output: nothing unrelated was drawn
    pred = {}
    for a, b in edges:
        pred.setdefault(b, []).append(a)
    out = [n for n, a in nodes.items() if label(a) == "gx5"][0]
    seen, stack = {out}, [out]
    while stack:
        for p in pred.get(stack.pop(), ()):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    assert seen == set(nodes)
    # compact can be forced either way
    assert "shape=point" not in get_dot_graph(gx, verbose=False, compact=False)
    assert "shape=point" in get_dot_graph(F.sin(F.sin(x)), compact=True)


def test_deep_chain_has_no_recursion_limit():
    x = Variable(np.array(0.1), name="x")
    y = x
    for _ in range(3000):
        y = F.sin(y)
    nodes, edges = parse_dot(get_dot_graph(y, verbose=False))
    assert len(edges) == 6000


def test_rankdir():
    x, y = seed_graph()
    assert "\nrankdir=LR\n" in get_dot_graph(y, rankdir="LR")


# --- files ------------------------------------------------------------------------------
def test_plot_to_dot_file_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    x, y = seed_graph()
    path = tmp_path / "g.dot"
    assert plot_dot_graph(y, verbose=True, to_file=str(path)) is None
    assert path.read_text() == get_dot_graph(y, verbose=True)


def test_render_dot_without_graphviz_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    x, y = seed_graph()
    with pytest.raises(GraphvizNotFoundError, match="graphviz") as e:
        visualize.render_dot(get_dot_graph(y), str(tmp_path / "g.svg"))
    assert "apt-get install graphviz" in str(e.value) and ".dot" in str(e.value)
    assert isinstance(e.value, RuntimeError)
    assert not (tmp_path / "g.svg").exists()


# --- without Graphviz: matplotlib draws the same nodes ------------------------------------
@pytest.fixture
def no_dot(monkeypatch):
    """Hide Graphviz's `dot`, and forget whether the fallback has warned already."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(visualize.dot, "_warned_no_dot", False)
    monkeypatch.setattr(visualize.dot.subprocess, "run", None)  # dot is never run


def goldstein_graph():
    # DeZero step 26
    x, y = Variable(np.array(1.0), name="x"), Variable(np.array(1.0), name="y")
    z = (1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x ** 2 - 14 * y + 6 * x * y + 3 * y ** 2)) \
        * (30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x ** 2 + 48 * y - 36 * x * y
                                        + 27 * y ** 2))
    z.name = "z"
    z.backward()
    return z


def tanh_graph(iters):
    # DeZero step 35 / examples/tanh.py: the graph of a higher derivative of tanh
    x = Variable(np.array(1.0), name="x")
    y = F.tanh(x)
    y.backward(create_graph=True)
    for _ in range(iters):
        gx = x.grad
        x.cleargrad()
        gx.backward(create_graph=True)
    gx = x.grad
    gx.name = f"gx{iters + 1}"
    return gx


def test_without_graphviz_png_is_drawn_with_matplotlib(tmp_path, no_dot):
    import matplotlib.image
    path = tmp_path / "goldstein.png"
    with pytest.warns(UserWarning, match="Graphviz's `dot` is not installed.*matplotlib"):
        assert plot_dot_graph(goldstein_graph(), verbose=False, to_file=path) is None
    img = matplotlib.image.imread(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and img.shape[0] > 300
    rgb = img[..., :3].reshape(-1, 3)
    def share(color, tol=0.08):  # fraction of pixels of about this colour
        return float((np.abs(rgb - color).max(axis=1) < tol).mean())
    assert share((1.0, 1.0, 1.0)) < 0.97  # not blank
    assert share((0.0, 0.0, 0.0), 0.3) > 0.005  # lines and text
    assert share((1.0, 0.647, 0.0)) > 0.005  # orange variables
    assert share((0.678, 0.847, 0.902)) > 0.005  # light blue functions


def test_without_graphviz_svg_and_pdf_hold_the_labels(tmp_path, no_dot):
    _, y = seed_graph()
    y.backward()
    with pytest.warns(UserWarning) as record:
        utils.plot_dot_graph(y, to_file=tmp_path / "g.svg")  # DeZero's import path
        plot_dot_graph(y, verbose=False, to_file=str(tmp_path / "g.pdf"))
    assert len(record) == 1  # warned once, at the caller's line
    assert record[0].filename == __file__
    root = ET.parse(tmp_path / "g.svg").getroot()
    assert root.tag.endswith("svg")
    text = (tmp_path / "g.svg").read_text()
    nodes, _ = parse_dot(get_dot_graph(y))
    for attrs in nodes.values():  # every DOT label is in the drawing (SVG text as comments)
        for line in label(attrs).split(r"\n"):  # DOT escapes the newlines
            if line:
                assert line in text, line
    assert (tmp_path / "g.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("make", [goldstein_graph, lambda: tanh_graph(1),
                                  lambda: tanh_graph(3)], ids=["step26", "step35", "tanh"])
@pytest.mark.parametrize("verbose", [False, True])
def test_matplotlib_layout_has_no_overlaps_and_edges_go_down(make, verbose):
    y = make()
    g = visualize.walk.walk([y])
    nodes, paths = visualize.draw.layout(g, verbose, True, True, len(g.funcs) > 40)
    real = [n for n in nodes if n.shape != "dummy"]
    assert len(real) == len(g.vars) + len(g.funcs) and len(paths) == len(g.edges)
    boxes = sorted((n.x - n.w / 2, n.x + n.w / 2, n.y - n.h / 2, n.y + n.h / 2)
                   for n in nodes)
    for i, a in enumerate(boxes):  # no two nodes (nor edge bends) overlap
        for b in boxes[i + 1:]:
            if b[0] >= a[1]:
                break
            assert b[2] >= a[3] or a[2] >= b[3], (a, b)
    for path in paths:  # inputs above the function, outputs below it, one layer a step
        assert all(u.layer + 1 == w.layer and u.y > w.y for u, w in itertools.pairwise(path))
    out, = (n for n in real if n.label.split(":")[0] == y.name)
    assert out.bold and out.layer == max(n.layer for n in real)  # the output at the bottom


def test_with_graphviz_dot_is_used(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, input, capture_output, timeout):
        calls.append(cmd)
        return type("P", (), {"returncode": 0})()

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(visualize.dot.subprocess, "run", fake_run)
    monkeypatch.setattr(visualize.draw, "draw_graph", None)  # the fallback is never used
    _, y = seed_graph()
    plot_dot_graph(y, to_file=str(tmp_path / "g.png"))
    assert calls == [["/usr/bin/dot", "-Tpng", "-o", str(tmp_path / "g.png")]]


def test_file_name_without_extension_is_refused(tmp_path):
    x, y = seed_graph()
    with pytest.raises(ValueError, match="no extension"):
        plot_dot_graph(y, to_file=str(tmp_path / "graph"))


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")
def test_svg_parses_and_holds_every_node(tmp_path):
    x, y = seed_graph()
    y.backward()
    path = tmp_path / "g.svg"
    plot_dot_graph(y, to_file=str(path))
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    ns = {"s": "http://www.w3.org/2000/svg"}
    titles = {t.text for t in root.iterfind(".//s:g[@class='node']/s:title", ns)}
    nodes, _ = parse_dot(get_dot_graph(y))
    assert titles == set(nodes)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "Exp" in texts and "x: () float64" in texts


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")
def test_png_is_written(tmp_path):
    x, y = seed_graph()
    path = tmp_path / "g.png"
    plot_dot_graph(y, verbose=False, to_file=path)  # a PathLike works too
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")
def test_unknown_format_reports_graphviz_error(tmp_path):
    x, y = seed_graph()
    with pytest.raises(RuntimeError, match="Graphviz dot could not write"):
        plot_dot_graph(y, to_file=str(tmp_path / "g.nosuchformat"))


def test_dezero_names_in_utils(tmp_path):
    # DeZero: from dezero.utils import plot_dot_graph
    x, y = seed_graph()
    assert utils.get_dot_graph(y, verbose=False) == get_dot_graph(y, verbose=False)
    utils.plot_dot_graph(y, verbose=False, to_file=str(tmp_path / "g.dot"))
    assert (tmp_path / "g.dot").read_text() == get_dot_graph(y, verbose=False)
    assert mibun.visualize.plot_dot_graph is plot_dot_graph


def test_very_big_graph_asks_graphviz_for_a_quick_layout():
    # the 8th derivative of tanh has ~1,700 functions: dot's default crossing
    # minimisation takes minutes there, so such graphs ask for less of it
    x = Variable(np.array(0.1), name="x")
    y = x
    for _ in range(visualize.QUICK_LAYOUT_ABOVE):
        y = F.sin(y)
    assert "mclimit" not in get_dot_graph(y, verbose=False)
    text = get_dot_graph(F.sin(y), verbose=False)
    assert "graph [mclimit=0.1, nslimit=1, nslimit1=1, remincross=false]" in text
    parse_dot(text)


def test_graphviz_timeout_is_a_clear_error(tmp_path, monkeypatch):
    import subprocess

    def too_slow(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(subprocess, "run", too_slow)
    x, y = seed_graph()
    with pytest.raises(RuntimeError, match=r"did not finish .* within 300 s \(the graph has "
                                           r"3 functions\).*\.dot file name"):
        plot_dot_graph(y, to_file=str(tmp_path / "g.svg"))


# --- inline in Jupyter: graph(y) --------------------------------------------------------
def svg_texts(svg):
    """Every text of an SVG drawing, whether it is Graphviz's or matplotlib's."""
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter() if t.tag.endswith("text") and t.text]
    # matplotlib draws each text as glyph paths, after an XML comment holding the string.
    return texts + re.findall(r"<!-- (.*?) -->", svg)


def check_graph_object(x_name="x"):
    _, y = seed_graph()
    g = visualize.graph(y)
    assert g.format == "svg" and g._repr_png_() is None  # only the chosen format is drawn
    svg = g._repr_svg_()
    assert isinstance(svg, str) and "<svg" in svg
    assert any(x_name in t for t in svg_texts(svg)), svg_texts(svg)
    assert g.svg() is svg or g.svg() == svg  # drawn once, then kept
    p = visualize.graph(y, format="png")
    assert p._repr_svg_() is None
    png = p._repr_png_()
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "Exp" in g.source and g.source == get_dot_graph(y)
    return g


@pytest.mark.skipif(not HAS_DOT, reason="needs Graphviz's dot")
def test_graph_shows_inline_drawn_by_graphviz():
    g = check_graph_object()
    assert "Generated by graphviz" in g.svg()


def test_graph_shows_inline_drawn_by_matplotlib_without_graphviz(no_dot):
    with pytest.warns(UserWarning, match=r"^graph: Graphviz's `dot` is not installed, so "
                                         r"this graph \(and later"):
        g = check_graph_object()
    assert "Generated by graphviz" not in g.svg() and "matplotlib" in g.svg()


def test_graph_is_displayed_by_ipython_as_an_image():
    formatters = pytest.importorskip("IPython.core.formatters")
    _, y = seed_graph()
    fmt = formatters.DisplayFormatter()
    data, _ = fmt.format(visualize.graph(y))
    assert "<svg" in data["image/svg+xml"] and "image/png" not in data
    data, _ = fmt.format(visualize.graph(y, format="png"))
    assert data["image/png"][:4] == b"\x89PNG" and "image/svg+xml" not in data


def test_graph_arguments_are_checked_and_saved(tmp_path):
    _, y = seed_graph()
    with pytest.raises(ValueError, match="format must be 'svg' or 'png', got 'jpg'"):
        visualize.graph(y, format="jpg")
    with pytest.raises(TypeError, match="graph: output must be a Variable"):
        visualize.graph(np.ones(3))
    g = visualize.graph(y, verbose=False, rankdir="LR")
    assert "rankdir=LR" in g.source and g.source == get_dot_graph(y, False, rankdir="LR")
    g.save(tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == g.source
    assert repr(g) == "<mibun.visualize.Graph: 3 function(s), format='svg'>"


def test_a_setting_set_on_the_package_is_set_where_it_is_read(monkeypatch):
    # visualize became a package (walk, dot, draw); its settings stayed settable on it
    for name, module in (("SMALL", visualize.walk), ("COMPACT_ABOVE", visualize.walk),
                         ("QUICK_LAYOUT_ABOVE", visualize.dot),
                         ("DOT_TIMEOUT", visualize.dot), ("FONT_SIZE", visualize.draw)):
        old = getattr(module, name)
        monkeypatch.setattr(module, name, old)  # restores it after the test
        setattr(visualize, name, old + 7)
        assert getattr(module, name) == old + 7 and getattr(visualize, name) == old + 7
    with pytest.raises(AttributeError, match="no attribute 'NOPE'"):
        visualize.NOPE
