"""mytorch.tape_picture: the DOT text and the SVG describe exactly the recorded tape, and the gradient norms."""
import re
import shutil
import subprocess
import types
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mytorch import Autograd, TapePicture, nn, tape_picture

SVG = "{http://www.w3.org/2000/svg}"
NODE = re.compile(r'^  op(\d+) \[label="((?:[^"\\]|\\.)*)", fillcolor="#[0-9a-f]{6}", tooltip="([^"]*)"\];$')
EDGE = re.compile(r'^  op(\d+) -> op(\d+) \[label="(\d+)", fontsize=8\];$')


def mlp_step(engine, rng):
    """Record a 2-layer MLP's forward pass and loss (6 operations); return the loss module and layers."""
    first, second = nn.Linear(5, 4, engine, rng=rng), nn.Linear(4, 3, engine, rng=rng)
    loss = nn.SoftmaxCrossEntropy(engine)
    x = rng.standard_normal((2, 5))
    loss(np.eye(3)[[0, 2]], second(nn.ReLU(engine)(first(x))))
    return loss, (first, second), x


def tape_edges(engine):
    """(producer, consumer, position) from the tape itself: an input that is an earlier operation's output."""
    edges = []
    for i, operation in enumerate(engine.operation_list):
        for k, array in enumerate(operation.inputs):
            producers = [p for p, earlier in enumerate(engine.operation_list[:i]) if earlier.output is array]
            edges += [(producers[-1], i, k)] if producers else []
    return edges


def parse_dot(text):
    """{index: (label, tooltip)} and [(producer, consumer, position)] of the picture's DOT text."""
    lines = text.splitlines()
    assert lines[0] == "digraph tape {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line.startswith(("  graph ", "  node ", "  edge ")):
            continue
        node, edge = NODE.match(line), EDGE.match(line)
        assert node or edge, f"not a node or edge statement: {line!r}"
        if node:
            nodes[int(node[1])] = (node[2], node[3])
        else:
            edges.append((int(edge[1]), int(edge[2]), int(edge[3])))
    return nodes, edges


def parse_svg(text):
    root = ET.fromstring(text)
    assert root.tag == SVG + "svg"
    ops = [g for g in root.iter(SVG + "g") if g.get("class") == "op"]
    edges = [p for p in root.iter(SVG + "path") if p.get("class") == "edge"]
    return root, ops, edges


def op_text(g):
    return "\n".join(t.text or "" for t in g.iter(SVG + "text"))


def gru_engine(steps=30):
    engine = Autograd()
    seq = nn.Recurrent(nn.GRUCell(3, 4, engine, rng=np.random.default_rng(0)))
    out = seq(np.random.default_rng(1).standard_normal((2, steps, 3)))
    return engine, out


@pytest.fixture
def recorded(rng):
    engine = Autograd()
    loss, layers, x = mlp_step(engine, rng)
    return engine, loss, layers, x


def test_dot_has_one_node_per_operation_and_one_edge_per_produced_input(recorded):
    engine = recorded[0]
    nodes, edges = parse_dot(tape_picture.to_dot(engine))
    assert sorted(nodes) == list(range(len(engine.operation_list))) == list(range(6))
    assert edges == tape_edges(engine) and len(edges) == 5
    for i, operation in enumerate(engine.operation_list):
        label, tooltip = nodes[i]
        assert tooltip == operation.name
        shapes = ", ".join("(" + ",".join(map(str, a.shape)) + ")" for a in operation.inputs)
        assert re.sub(r"(#\d+|leaf|given) ", "", label.split("\\l")[1]) == "in: " + shapes


def test_svg_has_one_element_per_operation_and_one_arrow_per_edge(recorded):
    engine = recorded[0]
    root, ops, edges = parse_svg(tape_picture.to_svg(engine))
    assert [g.get("id") for g in ops] == [f"op{i}" for i in range(6)]
    assert len(edges) == len(tape_edges(engine))
    for g, operation in zip(ops, engine.operation_list):
        assert g.find(SVG + "title").text == operation.name
        assert "(" + ",".join(map(str, operation.output.shape)) + ")" in op_text(g)
    assert "no gradients yet" in "".join(root.itertext())


def test_norms_after_backward_are_the_gradients_norms(recorded):
    """Captured before backward, read after: buffer gradients and the layers' own dW/db."""
    engine, loss, (first, second), x = recorded
    picture = TapePicture(engine)
    loss.backward()
    picture.read_gradients()
    buffer = engine.gradient_buffer
    matmul = picture.steps[0]
    assert matmul.input_norms[0] == pytest.approx(np.linalg.norm(buffer.get_param(x)), rel=1e-12)
    assert matmul.input_norms[1] == pytest.approx(np.linalg.norm(first.dW), rel=1e-12)
    assert picture.steps[4].input_norms[1] == pytest.approx(np.linalg.norm(second.db), rel=1e-12)
    assert matmul.output_norm == pytest.approx(np.linalg.norm(buffer.get_param(engine.operation_list[0].output)))
    assert picture.steps[-1].output_norm is None  # the last operation's gradient is the divergence
    _, ops, _ = parse_svg(picture.to_svg())
    assert f"in {np.linalg.norm(buffer.get_param(x)):.3g}, {np.linalg.norm(first.dW):.3g} given" in op_text(ops[0])
    assert "gradient norms after backward" in picture.to_dot()


def test_to_svg_after_backward_shows_norms_and_after_zero_grad_none(recorded):
    engine, loss, _, _ = recorded
    loss.backward()
    _, ops, _ = parse_svg(tape_picture.to_svg(engine))
    assert all("|grad| out" in op_text(g) for g in ops)
    picture = TapePicture(engine)
    engine.zero_grad()
    assert not picture.read_gradients().has_gradients
    assert all(v is None for step in picture.steps for v in step.input_norms)


def test_only_the_public_engine_attributes_are_needed(recorded):
    engine, loss, _, _ = recorded
    loss.backward()
    public = types.SimpleNamespace(operation_list=engine.operation_list, gradient_buffer=engine.gradient_buffer)
    assert tape_picture.to_svg(public) == tape_picture.to_svg(engine)
    assert tape_picture.to_dot(public) == tape_picture.to_dot(engine)


def test_a_long_unroll_is_compact_and_still_exact():
    """30 GRU steps (630 operations): one line per operation, 16 px each."""
    engine, out = gru_engine(30)
    engine.backward(np.ones(out.shape))
    picture = TapePicture(engine).read_gradients()
    root, ops, edges = parse_svg(picture.to_svg())
    assert len(ops) == len(engine.operation_list) == 30 * 21
    assert len(edges) == len(tape_edges(engine))
    assert all(len(list(g.iter(SVG + "text"))) == 1 for g in ops)
    assert int(root.get("height")) < 16 * len(ops) + 100
    nodes, dot_edges = parse_dot(picture.to_dot())
    assert len(nodes) == len(ops) and dot_edges == tape_edges(engine)


@pytest.mark.parametrize("compact, lines", [(False, 3), (True, 1)])
def test_compact_can_be_chosen(recorded, compact, lines):
    engine, loss, _, _ = recorded
    loss.backward()
    _, ops, _ = parse_svg(tape_picture.to_svg(engine, compact=compact))
    assert all(len(list(g.iter(SVG + "text"))) == lines for g in ops)


def test_odd_names_and_options_are_escaped():
    """Quotes, <, & and backslashes in a primitive's options give valid XML and DOT."""
    def odd_backward(grad_output, a, note=None):
        return (grad_output,)

    engine = Autograd()
    a = np.ones(3)
    engine.add_operation([a], a * 2, [None], odd_backward, note='<b>"x" & \\y</b>')
    _, ops, _ = parse_svg(tape_picture.to_svg(engine))
    assert "<b>" in op_text(ops[0])
    nodes, _ = parse_dot(tape_picture.to_dot(engine))
    assert '\\"x\\"' in nodes[0][0]


def test_an_empty_tape_is_an_empty_picture():
    _, ops, edges = parse_svg(tape_picture.to_svg(Autograd()))
    assert ops == [] and edges == []
    assert parse_dot(tape_picture.to_dot(Autograd())) == ({}, [])


def test_save_writes_svg_or_dot_by_suffix(recorded, tmp_path):
    picture = TapePicture(recorded[0])
    assert picture.save(str(tmp_path / "t.svg")) == str(tmp_path / "t.svg")
    assert len(parse_svg((tmp_path / "t.svg").read_text())[1]) == 6
    picture.save(str(tmp_path / "t.gv"))
    assert len(parse_dot((tmp_path / "t.gv").read_text())[0]) == 6
    with pytest.raises(ValueError, match=r"'t.png' must end in .svg, .dot or .gv"):
        picture.save("t.png")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_graphviz_reads_the_dot_text(recorded):
    """Graphviz itself (when installed) lays out every node and edge."""
    engine, loss, _, _ = recorded
    loss.backward()
    plain = subprocess.run(["dot", "-Tplain"], input=tape_picture.to_dot(engine), capture_output=True,
                           text=True, check=True, timeout=60).stdout.splitlines()
    assert sum(line.startswith("node ") for line in plain) == 6
    assert sum(line.startswith("edge ") for line in plain) == 5
